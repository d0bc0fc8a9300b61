"""`swimnet-agent run`: the daemon's life, start to exit.

Start: lock the state directory, load the identity (name; incarnation = persisted + 1,
saved at once), remove the temporary files a crash left there, load the keyring file and
the persisted endpoints (every value checked: a bad one is a configuration error naming the
file and the field, before anything is opened or joined), open the control socket
(0600), start the node, the datapath driver (only when the datapath is on; imported lazily,
so `--no-datapath` works without it; with the service load balancer), the DNS resolver
pool (datapath on only: one resolver per attached container), the control API and the
metrics endpoint; then join the seeds (retrying with backoff while none answers),
re-publish the local endpoints and feed the driver.

While running: one log line per membership change; table changes wake the overlay refresh
(conflicts, adoption, re-publication, scope release, driver snapshot); the incarnation and
the keyring file are saved when they change (checked every second).

Signals (`daemon.shutdown`): SIGTERM / SIGINT close the driver (a datapath call stuck in
the kernel is abandoned after `driver.CLOSE_GRACE`; the close itself is bounded by
`DRIVER_CLOSE_LIMIT`), stop every task, stop the DNS resolvers (each cleanup bounded),
leave the cluster gracefully (others see "left"; bounded by `leave_timeout`), remove the
socket, exit 0; whatever could not be cleaned up is logged. Whatever hangs, the process
ends `SHUTDOWN_LIMIT` (30) seconds after the signal (exit 1, every thread's stack logged),
and at once at a second SIGTERM / SIGINT. SIGHUP reloads the keyring file (see
`domain.keys`).

Wiring: the node comes from `domain.cluster.open_agent_node` and reaches the domain only as
a `Cluster`; the domain (`OverlayAgent`, `KeysAdmin`, bundled as `Operations`) is served by
`http.routes.ControlApi` on the control socket; the driver is built by `driver_factory`
(default: `swimnet.datapath.driver.DatapathDriver` over a `LinuxDatapath`, with a
`LinuxLoadBalancer` for the service VIPs); the resolver pool
(`swimnet.dns.pool.open_resolver_pool` over the overlay's names index) runs in the
daemon's nursery and is handed to the overlay's `dns`; with `docker_plugin` set, the Docker
plugin (`swimnet.agent.docker.service`) serves the same `Operations` on its own socket.

Exit codes (`main_run`): 0 after a signal, 2 for a configuration error (file, key and
reason printed), 1 when the agent cannot start (socket or address taken), fails, or its
shutdown did not finish in time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from swimnet.agent.daemon import settings as settings_mod
from swimnet.agent.daemon.ipam_state import IpamFile
from swimnet.agent.daemon.metrics import metrics_handler, registry_for
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.agent.daemon.shutdown import SHUTDOWN_LIMIT, SignalState, Watchdog, serve_signals
from swimnet.agent.daemon.state_store import Identity, StateDir
from swimnet.agent.docker.service import serve_docker
from swimnet.agent.domain.cluster import Cluster, open_agent_node
from swimnet.agent.domain.dns import ResolverPoolProtocol
from swimnet.agent.domain.keys import KeysAdmin
from swimnet.agent.domain.operations import Operations
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.ports import DatapathDriverProtocol, SavedIpam
from swimnet.agent.errors import StartupError
from swimnet.agent.http.control_socket import ControlSocket, open_control_socket
from swimnet.agent.http.routes import ControlApi
from swimnet.agent.http.server import Limits, serve_http
from swimnet.agent.logs import LOGGER, NodeFilter, event, setup_logging
from swimnet.agent.probe_rtt import RttHistogram
from swimnet.config import format_address, parse_address
from swimnet.dns.limits import ResolverConfig
from swimnet.dns.upstream import RESOLV_CONF, Upstreams
from swimnet.errors import ConfigError, JoinError
from swimnet.io.keyfile import load_keyring_file
from swimnet.membership.events import (
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
)
from swimnet.overlay import LocalEndpointSpec, NetworkRecord
from swimnet.runtime import Node
from swimnet.runtime.resolve import default_name
from swimnet.security.keyring import Keyring
from swimnet.wire.messages import State

log = logging.getLogger(LOGGER)

DriverFactory = Callable[..., DatapathDriverProtocol]
PoolContext = contextlib.AbstractAsyncContextManager[ResolverPoolProtocol]
ResolverPoolFactory = Callable[[OverlayAgent], PoolContext]
PERSIST_PERIOD = 1.0
DRIVER_CLOSE_LIMIT = 10.0
JOIN_RETRY_MAX = 30.0
_MEMBER_EVENTS = {
    MemberJoined: "joined",
    MemberLeft: "left",
    MemberFailed: "failed",
    MemberSuspected: "suspected",
    MemberUpdated: "updated",
}


def default_driver_factory(**kwargs: Any) -> DatapathDriverProtocol:
    """The kernel datapath driver; imported lazily (pyroute2), so `--no-datapath` runs without it."""
    from swimnet.datapath.driver import DatapathDriver
    from swimnet.datapath.lb.linux import LinuxLoadBalancer
    from swimnet.datapath.linux import LinuxDatapath

    datapath = LinuxDatapath(kwargs["node_tag"])
    driver: DatapathDriverProtocol = DatapathDriver(
        **kwargs, datapath=datapath, lb=LinuxLoadBalancer(), log=logging.getLogger(f"{LOGGER}.datapath")
    )
    return driver


@attrs.define
class AgentRuntime:
    """What a running agent exposes (for /v1/status, and to in-process tests)."""

    settings: AgentSettings
    node: Node
    overlay: OverlayAgent
    keys: KeysAdmin
    socket_path: str
    state_dir: str
    stop: trio.Event = attrs.field(factory=trio.Event)
    joined: bool = False
    join_error: str | None = None
    metrics_address: str | None = None
    started_wall: float = attrs.field(factory=time.time)

    def status(self) -> dict[str, Any]:
        node, overlay = self.node, self.overlay
        counts = {s.label: 0 for s in State}
        for m in node.members():
            counts[m.state.label] += 1
        ring = node.keyring
        driver = overlay.driver
        driver_stats = getattr(driver, "stats", None)
        return {
            "name": node.name,
            "address": format_address(node.address),
            "advertise": format_address(node.advertise_address),
            "vtep": overlay.vtep,
            "incarnation": node.local_member.incarnation,
            "health_score": node.health_score,
            "ready": overlay.started,
            "joined": self.joined,
            "join_error": self.join_error,
            "cluster_synced": overlay.cluster_synced,
            "members": counts,
            "networks_held": overlay.view.held(),
            "local_endpoints": len(overlay.local),
            "conflicts": sum(len(c) for c in overlay.conflicts.values()),
            "datapath": driver is not None,
            "datapath_stats": dict(driver_stats) if isinstance(driver_stats, dict) else None,
            "label": self.settings.label,
            "keyring": None if ring is None else {"primary": ring.primary_id, "keys": len(ring)},
            "metrics": self.metrics_address,
            "socket": self.socket_path,
            "state_dir": self.state_dir,
            "uptime_s": round(time.time() - self.started_wall, 3),
            "stats": dict(sorted(node.stats.items())),
            "agent_stats": dict(sorted(overlay.stats.items())),
        }


def resolve_identity(settings: AgentSettings, store: StateDir) -> Identity:
    """The node name and the incarnation to start with (persisted + 1)."""
    saved = store.load_identity()
    if saved is not None and settings.name is not None and settings.name != saved.name:
        raise ConfigError(
            store.path,
            f"the state directory belongs to node {saved.name!r}, not {settings.name!r} "
            "(use another --state-dir for another node)",
        )
    if settings.name is not None:
        name = settings.name
    elif saved is not None:
        name = saved.name
    else:
        name = default_name()
        settings_mod.check_node_name(name, "host name", "name")  # a host name that cannot be a node name
    return Identity(name, saved.incarnation + 1 if saved is not None else 1)


def _load_keyring(settings: AgentSettings) -> Keyring | None:
    if settings.keyring is None:
        return None
    try:
        return load_keyring_file(settings.keyring)
    except ConfigError as exc:
        raise ConfigError("keyring", str(exc), settings.source) from None


async def _log_members(node: Node) -> None:
    async with node.subscribe() as events:
        async for e in events:
            kind = _MEMBER_EVENTS.get(type(e), "changed")
            m = e.member
            level = logging.WARNING if kind in ("failed", "suspected") else logging.INFO
            event(
                log,
                f"member {m.name} {kind}",
                level=level,
                event=f"member_{kind}",
                member=m.name,
                address=format_address(m.address),
                incarnation=m.incarnation,
            )


async def _persist(runtime: AgentRuntime, store: StateDir, saved: int) -> None:
    while True:
        await trio.sleep(PERSIST_PERIOD)
        incarnation = runtime.node.local_member.incarnation
        if incarnation != saved:
            try:
                store.save_identity(Identity(runtime.node.name, incarnation))
                saved = incarnation
            except OSError as exc:
                event(log, "cannot save state", level=logging.ERROR, event="state_error", error=str(exc))
        runtime.keys.save_if_changed()


async def _join(runtime: AgentRuntime, seeds: tuple[str, ...]) -> None:
    node, overlay = runtime.node, runtime.overlay
    if not seeds:
        runtime.joined = True
        await overlay.start(alone=True, bootstrap=True)
        return
    delay, started = 1.0, False
    while True:
        try:
            reached = await node.join(list(seeds))
        except JoinError as exc:
            runtime.join_error = str(exc)
            event(
                log,
                "cannot join the cluster; retrying",
                level=logging.WARNING,
                event="join_failed",
                error=str(exc),
                retry_in=delay,
            )
            if not started:
                await overlay.start(alone=True)
                started = True
            await trio.sleep(delay)
            delay = min(delay * 2, JOIN_RETRY_MAX)
            continue
        runtime.joined, runtime.join_error = True, None
        event(log, "joined the cluster", event="cluster_joined", seeds_reached=reached)
        if not started:
            await overlay.start(alone=False)
        await overlay.cluster_joined()
        return


async def _serve_metrics(runtime: AgentRuntime, nursery: trio.Nursery, address: str) -> str:
    host, port = parse_address(address, "metrics", default_port=settings_mod.METRICS_PORT)
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise StartupError(f"metrics: cannot listen on {address}: {exc.strerror or exc}") from None
    bound = listeners[0].socket.getsockname()
    handler = metrics_handler(registry_for(runtime.overlay))
    await nursery.start(serve_http, listeners, handler, Limits(max_body=0, idle_timeout=30.0))
    return format_address((str(bound[0]), int(bound[1])))


async def run_agent(
    settings: AgentSettings,
    *,
    driver_factory: DriverFactory | None = None,
    resolver_pool: ResolverPoolFactory | None = None,
    handle_signals: bool = True,
    log_filter: NodeFilter | None = None,
    shutdown_limit: float = SHUTDOWN_LIMIT,
    task_status: trio.TaskStatus[AgentRuntime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the agent until a signal (or `runtime.stop`); see the module docstring.

    The signal receiver is installed first, so a signal during the start is not lost (it is
    acted on once the agent runs); with `handle_signals`, the process ends at the latest
    `shutdown_limit` seconds after SIGTERM / SIGINT (see `daemon.shutdown`).
    `resolver_pool` opens the DNS resolver pool (default: `default_resolver_pool`); like
    `driver_factory`, tests give an in-memory one."""
    wiring = (driver_factory, resolver_pool)
    stop = trio.Event()
    if not handle_signals:
        await _run_agent(settings, wiring, stop, None, log_filter, task_status)
        return
    watchdog = Watchdog(shutdown_limit)
    signals = SignalState(stop)
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as received:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_signals, signals, received, watchdog)
                await _run_agent(settings, wiring, stop, signals, log_filter, task_status)
                nursery.cancel_scope.cancel()
    finally:
        watchdog.disarm()


async def _run_agent(
    settings: AgentSettings,
    wiring: tuple[DriverFactory | None, ResolverPoolFactory | None],
    stop: trio.Event,
    signals: SignalState | None,
    log_filter: NodeFilter | None,
    task_status: trio.TaskStatus[AgentRuntime],
) -> None:
    store = StateDir(settings.state_dir)
    store.open()
    control: ControlSocket | None = None
    try:
        identity = resolve_identity(settings, store)
        if log_filter is not None:
            log_filter.node = identity.name
        store.remove_leftovers()
        keyring = _load_keyring(settings)
        local, cache = store.load_endpoints()
        ipam_file = IpamFile(store)
        ipam_saved, ipam_left = ipam_file.load_ipam()
        config = settings.node_config(identity.name, keyring)
        tables_config = settings.tables_config()
        control = await open_control_socket(settings.socket)
        rtt = RttHistogram()
        async with contextlib.AsyncExitStack() as stack:
            try:
                opening = open_agent_node(
                    config, incarnation=identity.incarnation, tables_config=tables_config, rtt=rtt
                )
                node = await stack.enter_async_context(opening)
            except OSError as exc:
                raise StartupError(f"bind: cannot listen on {settings.bind}: {exc.strerror or exc}") from None
            store.save_identity(Identity(node.name, node.local_member.incarnation))
            await _run_node(
                settings,
                node,
                store,
                control,
                rtt=rtt,
                local=local,
                cache=cache,
                ipam=(ipam_file, ipam_saved, ipam_left),
                wiring=wiring,
                stop=stop,
                signals=signals,
                task_status=task_status,
            )
        event(log, "left the cluster", event="left")
    finally:
        if control is not None:
            control.close()
        store.close()


async def _run_node(
    settings: AgentSettings,
    node: Node,
    store: StateDir,
    control: ControlSocket,
    *,
    rtt: RttHistogram,
    local: list[LocalEndpointSpec],
    cache: dict[str, NetworkRecord],
    ipam: tuple[IpamFile, dict[str, SavedIpam], bool],
    wiring: tuple[DriverFactory | None, ResolverPoolFactory | None],
    stop: trio.Event,
    signals: SignalState | None,
    task_status: trio.TaskStatus[AgentRuntime],
) -> None:
    vtep = node.advertise_address[0]
    driver_factory, resolver_pool = wiring
    driver: DatapathDriverProtocol | None = None
    if settings.datapath:
        factory = driver_factory if driver_factory is not None else default_driver_factory
        driver = factory(
            node_tag=node.name,
            vtep=vtep,
            underlay_mtu=settings.underlay_mtu,
            reconcile_interval=settings.reconcile_interval,
        )
    ipam_file, ipam_saved, ipam_left = ipam
    overlay = OverlayAgent(
        Cluster(node, rtt),
        store,
        ipam_store=ipam_file,
        driver=driver,
        local=local,
        cache=cache,
        ipam_saved=ipam_saved,
        ipam_left=ipam_left,
    )
    keys = KeysAdmin(node, settings.keyring)
    runtime = AgentRuntime(settings, node, overlay, keys, control.path, store.path, stop=stop)
    if signals is not None:
        signals.running(keys.reload)
    event(
        log,
        "agent started",
        event="agent_started",
        address=format_address(node.address),
        advertise=format_address(node.advertise_address),
        incarnation=node.local_member.incarnation,
        socket=control.path,
        datapath=driver is not None,
    )
    try:
        async with trio.open_nursery() as nursery:
            if driver is not None:
                await nursery.start(driver.run)
                upstream = functools.partial(
                    default_resolver_pool, resolv_conf=settings.resolv_conf, config=settings.resolver_config()
                )
                pools = resolver_pool or upstream
                await nursery.start(_serve_resolvers, overlay, pools)
            ops = Operations.over(overlay, keys)
            api = ControlApi(ops, runtime.status)
            await nursery.start(serve_http, [control.listener], api.handle, Limits())
            if settings.docker_plugin is not None:
                await nursery.start(serve_docker, ops, settings)
            if settings.metrics is not None:
                runtime.metrics_address = await _serve_metrics(runtime, nursery, settings.metrics)
            nursery.start_soon(_log_members, node)
            nursery.start_soon(overlay.watch)
            nursery.start_soon(overlay.refresher)
            nursery.start_soon(overlay.ipam.run)
            nursery.start_soon(_persist, runtime, store, node.local_member.incarnation)
            nursery.start_soon(_join, runtime, settings.join)
            task_status.started(runtime)
            await runtime.stop.wait()
            overlay.ipam.stopping()  # we leave gracefully: our claims are voted on again at restart
            if driver is not None:  # first: a datapath call stuck in the kernel is abandoned
                await _close_driver(driver)
            nursery.cancel_scope.cancel()
    finally:
        if driver is not None:
            with trio.CancelScope(shield=True):
                await _close_driver(driver)
        control.close()  # no new control requests while we leave
    event(log, "leaving the cluster", event="leaving")


async def _close_driver(driver: DatapathDriverProtocol) -> None:
    """Close the driver, bounded (the kernel driver abandons a call stuck in the kernel
    after its own grace, shorter than this); a driver that does not close in time is logged
    and left behind."""
    with trio.move_on_after(DRIVER_CLOSE_LIMIT) as bound:
        await driver.close()
    if bound.cancelled_caught:
        event(
            log,
            "the datapath driver did not close in time; left behind",
            level=logging.ERROR,
            event="driver_close_timeout",
            limit=DRIVER_CLOSE_LIMIT,
        )


def default_resolver_pool(
    overlay: OverlayAgent, resolv_conf: str = RESOLV_CONF, config: ResolverConfig | None = None
) -> PoolContext:
    """The kernel resolvers (one per container namespace) over the overlay's names index,
    forwarding to the `nameserver`s of `resolv_conf` (the `resolv_conf` setting), configured
    by `config` (`AgentSettings.resolver_config()`; None: the defaults)."""
    from swimnet.dns.pool import open_resolver_pool

    upstreams = Upstreams(resolv_conf)
    return open_resolver_pool(
        overlay.dns.index.view, metrics=overlay.dns.metrics, upstreams=upstreams, config=config
    )


async def _serve_resolvers(
    overlay: OverlayAgent, factory: ResolverPoolFactory, *, task_status: trio.TaskStatus[None]
) -> None:
    """The DNS resolver pool, handed to the overlay until cancelled (every resolver then stops)."""
    dns = overlay.dns
    async with factory(overlay) as pool:
        dns.resolvers = pool
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            dns.resolvers = None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main_run(
    settings: AgentSettings,
    *,
    driver_factory: DriverFactory | None = None,
    resolver_pool: ResolverPoolFactory | None = None,
    shutdown_limit: float = SHUTDOWN_LIMIT,
) -> int:
    """Run the daemon in this process; the exit code (see the module docstring). The
    keywords are `run_agent`'s (the defaults are the real ones)."""
    node_filter = setup_logging(settings.log_format, settings.log_level)
    run = functools.partial(
        run_agent,
        settings,
        driver_factory=driver_factory,
        resolver_pool=resolver_pool,
        log_filter=node_filter,
        shutdown_limit=shutdown_limit,
    )
    try:
        trio.run(run)
    except BaseException as exc:  # classify, report once, exit with the documented code
        leaf = _leaf(exc)
        if isinstance(leaf, ConfigError):
            print(f"swimnet-agent: configuration error: {leaf}", file=sys.stderr)
            return 2
        if isinstance(leaf, StartupError):
            print(f"swimnet-agent: cannot start: {leaf}", file=sys.stderr)
            return 1
        if not isinstance(leaf, KeyboardInterrupt):
            log.error("agent failed", exc_info=leaf)
        return 1
    return 0
