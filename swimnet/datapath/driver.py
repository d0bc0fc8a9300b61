"""The datapath driver: keeps the kernel equal to the replicated overlay, in the background.

    driver = DatapathDriver(node_tag, vtep, datapath=LinuxDatapath(node_tag))  # or MemoryDatapath
    await nursery.start(driver.run)
    driver.update(snapshot)                          # on every overlay change (cheap, sync)
    await driver.attach(endpoint) / detach(endpoint) # plug a container in / out
    await driver.fdb("net")                          # what the kernel holds for a network

Rules:
- one reconcile = dump the kernel, diff against the desired state, apply the ops; it never
  trusts what an earlier reconcile did (a restarted agent repairs and removes the leftovers
  of a crashed run, and hand-made changes are undone);
- reconciles run: after `update()` with a snapshot unlike the last one (debounced: the first
  update of a burst opens a window of `debounce` seconds, the latest snapshot at its end
  wins, so a burst costs one reconcile and latency stays bounded), every
  `reconcile_interval` seconds, on `attach()`, and again soon after a failure (backoff from
  0.5 s doubling up to the interval);
- changes made by others are repaired as they happen (with `watch=True`): `run()` opens the
  datapath's watch (swimnet.datapath.watch; netlink inside every sandbox for the kernel)
  and each reconcile makes it follow the desired sandboxes (sockets of sandboxes about to
  go are closed before the apply, those of new ones opened after it); a change that
  `drifted()` from the desired state of the latest plan (a desired entry or device deleted
  or rewritten, an undesired entry written, a sandbox gone, changes lost) marks its
  sandbox, and a debounced reconcile of the marked sandboxes only (dump and diff of those)
  follows, so a burst of changes costs one; the periodic pass stays the safety net;
- the driver's own writes are not repairs: every change read while a writing datapath call
  (reconcile, attach, detach) is in progress, and those queued when it returns (the kernel
  notifies before it acknowledges), are dropped unread; a change made by someone else in
  that window is left to the next reconcile (the periodic one at the latest);
- nothing is reconciled before the first `update()`: an empty desired state would tear
  down the sandboxes of endpoints the agent is about to restore from its state directory;
- network options honoured: `flood=true` (all-zeros FDB entries to every remote VTEP, for
  broadcast and unknown unicast; off by default, ARP is answered from the neighbour
  entries) and `vxlan_port=N` (default 4789);
- a snapshot that cannot be converted is never applied: a network or endpoint with a bad
  value is skipped (counted, logged), and if the whole desired state is refused the kernel
  is left as it is;
- `attach()` pins the endpoint into the desired state (so a debounced reconcile of an older
  snapshot never removes its sandbox) until a snapshot that lists it arrives or `detach()`;
  an endpoint that is already attached (same interface, same MAC, its veth on the bridge:
  a restarted agent re-attaching) is left as it is;
- when a reconcile (re)creates a sandbox, the local endpoints of that network are attached
  again (their veth pairs died with the old one); a hand-off endpoint (`handoff`, Docker)
  cannot be (its runtime moved the old end and will not move a new one): logged and counted
  in `handoffs_lost`;
- make before break at start: for `startup_grace` seconds from the first reconcile, FDB and
  neighbour entries and unwanted sandboxes are added and repaired but never removed; a
  restarted agent's first snapshots come before its tables have synced and list no remote
  endpoints yet, and deleting what they omit would cut its containers off for that moment;
  the held-back removals run when the grace ends (counted in `deletes_deferred`);
- every datapath call runs in a worker thread, one at a time (CapacityLimiter(1)); a kernel
  call is never abandoned half-way when the caller is cancelled; only `close()` abandons
  one that outlives its grace (`CLOSE_GRACE`: a thread stuck in the kernel must not keep
  the agent from exiting), and then makes no other call (they raise DatapathError);
- the driver knows datapaths only through the `Datapath` protocol (dump, apply, attach,
  attached, detach): it imports no kernel library; the caller chooses the datapath;
- with a load balancer (`lb=`, the `swimnet.datapath.lb.LoadBalancer` protocol), every
  reconcile also brings the VIP rules of each attached container namespace to the
  snapshot's services (swimnet.datapath.lb.sync: after the FDB, same snapshot, its own
  `lb_*` stats; the startup grace leaves existing tables alone);
- input is `swimnet.overlay`'s snapshot values (what the agent computes from its tables);
  log lines carry structured fields (`swimnet.logfields`) on the logger given (default
  `swimnet.datapath.driver`);
- `stats` counts: reconciles, ops_applied, op_errors, reconcile_failures, invalid (skipped
  networks / endpoints, once each), attaches, attach_errors, detaches, detach_errors,
  reattaches, handoffs_lost, deletes_deferred, abandoned (calls `close()` gave up on);
  from the watch: events (changes by others read),
  events_own (notifications dropped during the driver's own writes), events_drift (changes
  that drifted from the desired state), events_lost (reports of lost changes),
  event_reconciles (reconciles a change triggered) and repairs_from_events (those that
  applied ops); `errors` sums op_errors, reconcile_failures, attach_errors and
  detach_errors.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
from collections.abc import Callable
from typing import TypeVar

import attrs
import trio

from swimnet.datapath import names as dp_names
from swimnet.datapath.diff import diff
from swimnet.datapath.lb.ops import LbResult, LoadBalancer
from swimnet.datapath.lb.sync import LbPass, LbSync
from swimnet.datapath.model import (
    FLOOD_MAC,
    DesiredState,
    LocalEndpoint,
    NetworkSpec,
    RemoteEndpoint,
    Sandbox,
    desired_state,
)
from swimnet.datapath.ops import (
    ApplyResult,
    CreateBridge,
    CreateNamespace,
    Datapath,
    DeleteFdb,
    DeleteNamespace,
    DeleteNeigh,
    Op,
)
from swimnet.datapath.watch import Change, Lost, Watch, drifted
from swimnet.errors import ConfigError, DatapathError, LocalProtocolError, SwimnetError
from swimnet.logfields import event
from swimnet.overlay import LocalEndpointSpec, NetworkRecord, OverlaySnapshot
from swimnet.overlay.snapshot import ServiceSpec

LOGGER = "swimnet.datapath.driver"
T = TypeVar("T")
UNATTACHED = "unattached"
"""Placeholder namespace of a local endpoint that names no container (it still keeps its
network's sandbox and entries; it cannot be attached)."""
RETRY_MIN = 0.5
CLOSE_GRACE = 5.0
"""Seconds `close()` waits for the datapath call in progress before abandoning it."""
TRUE_WORDS = ("1", "true", "yes", "on")


@attrs.frozen
class _Plan:
    desired: DesiredState
    locals: tuple[LocalEndpoint, ...]
    """The local endpoints `desired` was computed from (attach and re-attach need them)."""
    services: tuple[ServiceSpec, ...] = ()
    """The snapshot's services (the load balancer's input)."""


@attrs.frozen
class _Reconciled:
    plan: _Plan
    ops: tuple[Op, ...]
    """The ops applied (without the deferred ones)."""
    result: ApplyResult
    deferred: int = 0
    """Removals held back during the startup grace."""
    lb: LbPass | None = None
    """The load balancing pass (None without a load balancer)."""


def network_spec(name: str, record: NetworkRecord, vni: int) -> NetworkSpec:
    """The datapath's view of a network record; options `vxlan_port` and `flood` are honoured."""
    options = record.options
    try:
        port = int(options.get("vxlan_port", "4789"))
    except ValueError:
        raise ConfigError("options.vxlan_port", "not a number", f"network {name!r}") from None
    flood = options.get("flood", "").lower() in TRUE_WORDS
    return NetworkSpec(
        name, vni, record.subnet, gateway=record.gateway, mtu=record.mtu, port=port, flood=flood
    )


def local_endpoint(spec: LocalEndpointSpec, subnet: str | None) -> LocalEndpoint:
    """A LocalEndpoint; a bare IP gets the network's prefix length (never a /32 by accident)."""
    ip = spec.ip
    if "/" not in ip and subnet is not None:
        ip = f"{ip}/{ipaddress.ip_network(subnet).prefixlen}"
    ref: str | int = spec.netns if spec.netns else spec.pid if spec.pid else UNATTACHED
    return LocalEndpoint(
        spec.network, spec.endpoint_id, spec.name, ip, spec.mac, ref, spec.ifname, handoff=spec.handoff
    )


class DatapathDriver:
    """Drives one host's datapath from overlay snapshots (see the module rules)."""

    def __init__(
        self,
        node_tag: str,
        vtep: str,
        underlay_mtu: int = 1500,
        *,
        datapath: Datapath,
        reconcile_interval: float = 30.0,
        debounce: float = 0.1,
        startup_grace: float = 5.0,
        threads: bool = True,
        watch: bool = True,
        log: logging.Logger | None = None,
        lb: LoadBalancer | None = None,
    ) -> None:
        dp_names.check_tag(node_tag)
        if not reconcile_interval > 0:
            raise ConfigError("reconcile_interval", f"must be > 0, got {reconcile_interval!r}")
        if not debounce >= 0:
            raise ConfigError("debounce", f"must be >= 0, got {debounce!r}")
        if not startup_grace >= 0:
            raise ConfigError("startup_grace", f"must be >= 0, got {startup_grace!r}")
        self.node_tag = node_tag
        self.vtep = vtep
        self.underlay_mtu = underlay_mtu
        self.datapath = datapath
        self.log = log if log is not None else logging.getLogger(LOGGER)
        self.reconcile_interval = reconcile_interval
        self.debounce = debounce
        self.startup_grace = startup_grace
        self.threads = threads
        """False: call the datapath inline (an in-memory datapath under a mock clock)."""
        self.watch_changes = watch
        """False: no watch; drift is repaired by the periodic reconcile only."""
        self.stats: collections.Counter[str] = collections.Counter()
        self.last_error: str | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._snapshot: OverlaySnapshot | None = None
        self._networks: dict[str, tuple[NetworkRecord, int]] = {}
        """Every network any snapshot named (latest wins): attach/detach may run ahead of it."""
        self._pinned: dict[str, LocalEndpointSpec] = {}
        self._dirty = False
        self._wake = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._closed = False
        self._skipped: set[str] = set()
        self._attaching: set[str] = set()
        self._grace_until: float | None = None
        """End of the startup grace (set by the first reconcile)."""
        self._deferred = False
        self._watch: Watch | None = None
        self._repair: set[str] = set()
        """Sandboxes a change by someone else took away from the desired state."""
        self._desired: DesiredState | None = None
        """The desired state of the latest plan (what changes are judged against)."""
        self._writing = 0
        self._in_call: trio.CancelScope | None = None
        """The scope of the datapath call in progress (close() cancels it to abandon it)."""
        self._abandoned = False
        self._lb = LbSync(lb, self.stats, self.log) if lb is not None else None

    # -- the agent's interface ----------------------------------------------------------

    @property
    def lb_last(self) -> LbResult | None:
        """The latest load-balancing pass's outcome per namespace (None: no pass yet, or no `lb`)."""
        return self._lb.last if self._lb is not None else None

    def update(self, snapshot: OverlaySnapshot) -> None:
        """Store the desired overlay and schedule a debounced reconcile."""
        if self._closed:
            return
        self._networks.update(snapshot.networks)
        listed = {ep.endpoint_id for ep in snapshot.local}
        for endpoint_id in [e for e in self._pinned if e in listed]:
            del self._pinned[endpoint_id]
        if snapshot == self._snapshot:
            return  # nothing new: the periodic reconcile covers drift
        self._snapshot = snapshot
        self._dirty = True
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reconcile after updates, changes by others, periodically and after failures, until
        cancelled or closed."""
        with trio.CancelScope() as scope:
            self._scope = scope
            watch = self.datapath.watch() if self.watch_changes and not self._closed else None
            self._watch = watch
            try:
                async with trio.open_nursery() as nursery:
                    if watch is not None:
                        nursery.start_soon(self._listen, watch)
                    task_status.started()
                    await self._loop()
                    nursery.cancel_scope.cancel()
            finally:
                self._watch = None
                if watch is not None:
                    watch.close()  # nothing waits on it any more; its sockets free their namespaces

    async def _loop(self) -> None:
        deadline = math.inf
        retry = RETRY_MIN
        while not self._closed:
            if not self._dirty and not self._repair:
                with trio.move_on_at(deadline):
                    await self._wake.wait()
                self._wake = trio.Event()
            if self._dirty or self._repair:
                await trio.sleep(self.debounce)  # updates and changes arriving meanwhile join in
            if self._snapshot is None and not self._pinned:
                self._dirty = False
                self._repair.clear()
                continue
            only = None
            if not self._dirty and self._repair and trio.current_time() < deadline:
                only = frozenset(self._repair)  # a repair of what changed, not a full pass
            self._dirty = False
            self._repair.clear()
            self._wake = trio.Event()
            ok = await self._reconcile_quietly(only)
            now = trio.current_time()
            if only is not None:
                if not ok:  # the next full pass comes soon, with the usual backoff
                    deadline = min(deadline, now + retry)
                    retry = min(retry * 2, self.reconcile_interval)
            elif ok:
                retry, deadline = RETRY_MIN, now + self.reconcile_interval
            else:
                deadline = now + min(retry, self.reconcile_interval)
                retry = min(retry * 2, self.reconcile_interval)
            if self._deferred and self._grace_until is not None:
                deadline = min(deadline, self._grace_until)  # run the held-back removals

    async def _listen(self, watch: Watch) -> None:
        """Read the watch; mark the sandboxes that drifted and wake the loop."""
        while True:
            await watch.wait()
            if self._writing:
                self.stats["events_own"] += watch.discard()
            else:
                self._take(watch.read())

    def _take(self, changes: list[Change]) -> None:
        desired = self._desired
        marked = False
        for change in changes:
            self.stats["events"] += 1
            if isinstance(change, Lost):
                self.stats["events_lost"] += 1
            if desired is None or not drifted(change, desired):
                continue
            self.stats["events_drift"] += 1
            if change.netns not in self._repair:
                event(
                    self.log,
                    "datapath: changed by someone else",
                    event="datapath_drift",
                    netns=change.netns,
                    change=repr(change),
                )
                self._repair.add(change.netns)
                marked = True
        if marked:
            self._wake.set()

    async def attach(self, endpoint: LocalEndpointSpec) -> None:
        """Reconcile with the endpoint included, then plug it into its network's bridge."""
        what = f"attach {endpoint.endpoint_id}"
        if not endpoint.netns and not endpoint.pid:
            raise DatapathError(f"{what}: the endpoint names no container (netns or pid)")
        if endpoint.network not in self._networks:
            raise DatapathError(f"{what}: network {endpoint.network!r} is unknown to the datapath")
        self._pinned[endpoint.endpoint_id] = endpoint
        self._attaching.add(endpoint.endpoint_id)
        try:
            done = await self._reconcile()
            sandbox = done.plan.desired.sandbox(endpoint.network)
            failed = [e for e in done.result.errors if _netns_of(e.op) == sandbox.netns]
            if failed:
                shown = "; ".join(f"{e.op}: {e.message}" for e in failed[:3])
                raise DatapathError(f"{what}: setting up network {endpoint.network!r} failed: {shown}")
            local = next(ep for ep in done.plan.locals if ep.endpoint_id == endpoint.endpoint_id)
            await self._call(lambda: self._attach_one(sandbox, local), writes=True)
        except BaseException as exc:
            self._pinned.pop(endpoint.endpoint_id, None)
            if isinstance(exc, Exception):
                self.stats["attach_errors"] += 1
                self.stats["errors"] += 1
                self.last_error = str(exc)
                if isinstance(exc, (ConfigError, LocalProtocolError)):
                    raise DatapathError(f"{what}: {exc}") from exc
                if not isinstance(exc, DatapathError):
                    raise DatapathError(f"{what}: {type(exc).__name__}: {exc}") from exc
            raise
        finally:
            self._attaching.discard(endpoint.endpoint_id)
        if self._snapshot is not None and any(
            ep.endpoint_id == endpoint.endpoint_id for ep in self._snapshot.local
        ):
            self._pinned.pop(endpoint.endpoint_id, None)  # the snapshot already governs it
        self.stats["attaches"] += 1

    async def detach(self, endpoint: LocalEndpointSpec) -> None:
        """Unplug the endpoint's veth (a missing sandbox or veth is fine); reconcile soon after."""
        self._pinned.pop(endpoint.endpoint_id, None)
        known = self._networks.get(endpoint.network)
        if known is not None:
            record, vni = known
            try:
                spec = network_spec(endpoint.network, record, vni)
                local = local_endpoint(endpoint, record.subnet)
                alone = desired_state(self.node_tag, self.vtep, self.underlay_mtu, [spec], [local], [])
                sandbox = alone.sandbox(endpoint.network)
                await self._call(lambda: self.datapath.detach(sandbox, local), writes=True)
            except Exception as exc:
                self.stats["detach_errors"] += 1
                self.stats["errors"] += 1
                self.last_error = f"detach {endpoint.endpoint_id}: {exc}"
                raise DatapathError(self.last_error) from exc
        self.stats["detaches"] += 1
        self._dirty = True
        self._wake.set()

    async def fdb(self, network: str) -> list[dict[str, str]]:
        """The kernel's entries for a network: one row per FDB entry (mac, vtep, ip), flood
        entries with ip "", neighbours without an FDB entry with vtep ""."""
        known = self._networks.get(network)
        if known is None:
            return []
        netns = dp_names.sandbox_name(self.node_tag, known[1])
        actual = await self._call(self.datapath.dump)
        box = actual.sandboxes.get(netns)
        if box is None:
            return []
        ips: dict[str, list[str]] = {}
        for ip, mac in box.neighbours.items():
            ips.setdefault(mac, []).append(ip)
        rows = []
        for mac, vtep in sorted(box.fdb):
            found = [] if mac == FLOOD_MAC else sorted(ips.get(mac, []), key=ipaddress.IPv4Address)
            rows.append({"mac": mac, "vtep": vtep, "ip": ",".join(found)})
        with_fdb = {mac for mac, _ in box.fdb}
        for ip, mac in sorted(box.neighbours.items(), key=lambda kv: ipaddress.IPv4Address(kv[0])):
            if mac not in with_fdb:
                rows.append({"mac": mac, "vtep": "", "ip": ip})
        return rows

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Stop `run()` and wait for the datapath call in progress, at most `grace` seconds;
        a call still running then (a thread stuck in the kernel) is abandoned: its thread
        runs on, and the driver makes no datapath call after it (logged, counted in
        `abandoned`). The kernel state stays: containers keep their connectivity, and the
        next start reconciles it. Calling it again is harmless."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
        with trio.move_on_after(grace):
            async with self._limiter:
                return
        call = self._in_call
        if call is not None and not self._abandoned:
            self._abandoned = True
            self.stats["abandoned"] += 1
            event(
                self.log,
                "datapath: a call did not finish; abandoned",
                level=logging.ERROR,
                event="datapath_call_abandoned",
                grace=grace,
            )
            call.cancel()

    # -- reconciling --------------------------------------------------------------------

    def desired(self) -> DesiredState:
        """The desired state from the latest snapshot plus the pinned endpoints."""
        return self._plan().desired

    def _plan(self) -> _Plan:
        snapshot = self._snapshot
        wanted = dict(snapshot.networks) if snapshot is not None else {}
        for pinned in self._pinned.values():
            if pinned.network not in wanted and pinned.network in self._networks:
                wanted[pinned.network] = self._networks[pinned.network]
        specs: dict[str, NetworkSpec] = {}
        subnets: dict[str, str] = {}
        for name, (record, vni) in sorted(wanted.items()):
            try:
                specs[name] = network_spec(name, record, vni)
                subnets[name] = record.subnet
            except (ConfigError, ValueError) as exc:
                self._invalid(f"network {name!r}: {exc}")
        listed = list(snapshot.local) if snapshot is not None else []
        ids = {ep.endpoint_id for ep in listed}
        listed += [ep for ep in self._pinned.values() if ep.endpoint_id not in ids]
        locals_: list[LocalEndpoint] = []
        for spec in listed:
            if spec.network in specs:
                try:
                    locals_.append(local_endpoint(spec, subnets[spec.network]))
                except (ConfigError, ValueError) as exc:
                    self._invalid(f"local endpoint {spec.endpoint_id!r}: {exc}")
        remotes: list[RemoteEndpoint] = []
        for network, endpoint_id, peer in snapshot.remote if snapshot is not None else ():
            if network in specs:
                try:
                    remotes.append(RemoteEndpoint(network, endpoint_id, peer.ip, peer.mac, peer.vtep))
                except (ConfigError, ValueError) as exc:
                    self._invalid(f"remote endpoint {endpoint_id!r}: {exc}")
        try:
            desired = desired_state(
                self.node_tag, self.vtep, self.underlay_mtu, specs.values(), locals_, remotes
            )
        except ConfigError as exc:
            raise DatapathError(f"the overlay cannot be programmed: {exc}") from exc
        return _Plan(desired, tuple(locals_), snapshot.services if snapshot is not None else ())

    def _invalid(self, message: str) -> None:
        """Count and log a skipped value once (plans are recomputed on every reconcile)."""
        if message not in self._skipped:
            self._skipped.add(message)
            self.stats["invalid"] += 1
            event(
                self.log,
                "datapath: skipped a bad value",
                level=logging.WARNING,
                event="datapath_skipped",
                detail=message,
            )

    async def _reconcile(self, only: frozenset[str] | None = None) -> _Reconciled:
        """Reconcile everything, or (`only`) those sandboxes alone."""
        plan = self._plan()
        self._desired = plan.desired
        now = trio.current_time()
        if self._grace_until is None:
            self._grace_until = now + self.startup_grace
        hold = now < self._grace_until
        done = await self._call(lambda: self._reconcile_sync(plan, hold, only), writes=True)
        self.stats["reconciles"] += 1
        self.stats["ops_applied"] += done.result.applied
        self.stats["op_errors"] += len(done.result.errors)
        self.stats["errors"] += len(done.result.errors)
        self.stats["deletes_deferred"] += done.deferred
        lb_deferred = done.lb is not None and done.lb.deferred > 0
        if only is None:
            self._deferred = done.deferred > 0 or lb_deferred
        else:
            self._deferred = self._deferred or done.deferred > 0 or lb_deferred
            self.stats["event_reconciles"] += 1
            if done.ops:
                self.stats["repairs_from_events"] += 1
        if done.result.errors:
            self.last_error = "; ".join(f"{e.op}: {e.message}" for e in done.result.errors[:3])
        if done.ops or done.deferred:
            event(
                self.log,
                "datapath: reconciled",
                level=logging.WARNING if done.result.errors else logging.INFO,
                event="datapath_reconciled",
                ops=len(done.ops),
                failed=len(done.result.errors),
                deferred=done.deferred,
                scope="all" if only is None else ",".join(sorted(only)),
            )
        return done

    async def _reconcile_quietly(self, only: frozenset[str] | None = None) -> bool:
        """A background reconcile: True when everything applied; failures are logged, counted."""
        try:
            done = await self._reconcile(only)
        except Exception as exc:  # the background loop must survive anything; it retries
            self.stats["reconcile_failures"] += 1
            self.stats["errors"] += 1
            self.last_error = f"reconcile: {exc}"
            expected = isinstance(exc, (SwimnetError, OSError))
            event(
                self.log,
                "datapath: reconcile failed",
                level=logging.WARNING,
                event="reconcile_failed",
                error=str(exc),
            )
            if not expected:
                self.log.warning("datapath: unexpected reconcile failure", exc_info=exc)
            return False
        return done.result.ok and (done.lb is None or done.lb.ok)

    def _reconcile_sync(self, plan: _Plan, hold_deletes: bool, only: frozenset[str] | None) -> _Reconciled:
        desired = plan.desired
        watch = self._watch
        if watch is not None:
            watch.track(desired.sandboxes)  # before the apply: a socket keeps a namespace alive
        target = desired
        if only is not None:
            boxes = {n: box for n, box in desired.sandboxes.items() if n in only}
            target = DesiredState(desired.node_tag, boxes)
        ops = diff(target, self.datapath.dump(only))
        deferred = 0
        if hold_deletes:
            kept = [op for op in ops if not _removal(op, desired)]
            deferred, ops = len(ops) - len(kept), kept
        result = self.datapath.apply(ops)
        created = {
            op.netns if isinstance(op, CreateNamespace) else op.sandbox.netns
            for op in ops
            if isinstance(op, (CreateNamespace, CreateBridge))
        }
        for netns in sorted(created):
            box = desired.sandboxes[netns].sandbox
            for ep in plan.locals:
                busy = ep.endpoint_id in self._attaching  # attach() plugs those in itself
                if ep.network == box.network and ep.netns != UNATTACHED and not busy:
                    if ep.handoff is not None:
                        self._handoff_lost(ep)
                    else:
                        self._reattach(box, ep)
        if watch is not None:
            watch.track(desired.sandboxes)  # and the sandboxes just made
        return _Reconciled(plan, tuple(ops), result, deferred, self._balance(plan, hold_deletes))

    def _balance(self, plan: _Plan, hold: bool) -> LbPass | None:
        """The load balancing pass (see swimnet.datapath.lb.sync)."""
        if self._lb is None:
            return None
        attached = [(ep.network, ep.netns) for ep in plan.locals if ep.netns != UNATTACHED]
        return self._lb.sync(plan.services, attached, hold=hold)

    def _reattach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
        try:
            self._attach_one(sandbox, endpoint)
            self.stats["reattaches"] += 1
        except Exception as exc:
            self.stats["attach_errors"] += 1
            self.stats["errors"] += 1
            self.last_error = str(exc)
            event(
                self.log,
                "datapath: re-attach failed",
                level=logging.WARNING,
                event="reattach_failed",
                endpoint=endpoint.endpoint_id,
                error=str(exc),
            )

    def _handoff_lost(self, endpoint: LocalEndpoint) -> None:
        """A hand-off endpoint's pair died with its sandbox: a new one would stay in the host
        namespace (the runtime moves an end only when it connects the container)."""
        self.stats["handoffs_lost"] += 1
        event(
            self.log,
            "datapath: a hand-off endpoint lost its veth with its sandbox; reconnect the container",
            level=logging.WARNING,
            event="handoff_lost",
            endpoint=endpoint.endpoint_id,
        )

    def _attach_one(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
        if not self.datapath.attached(sandbox, endpoint):
            self.datapath.attach(sandbox, endpoint)

    async def _call(self, fn: Callable[[], T], *, writes: bool = False) -> T:
        """Run a datapath call (one at a time); `writes`: its changes are our own (dropped)."""
        async with self._limiter:
            if self._abandoned:
                raise DatapathError("the datapath driver closed with a call stuck in the kernel")
            if writes:
                self._writing += 1
            try:
                if not self.threads:
                    return fn()
                # a cancelled caller waits for the call (shielded); only close() abandons it
                with trio.CancelScope(shield=True) as call:
                    self._in_call = call
                    try:
                        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)
                    finally:
                        self._in_call = None
                raise DatapathError("the datapath call was abandoned: the driver closed")
            finally:
                if writes:
                    watch = self._watch
                    if watch is not None:  # the kernel queued them before its last ACK
                        self.stats["events_own"] += watch.discard()
                    self._writing -= 1


def _removal(op: Op, desired: DesiredState) -> bool:
    """An entry delete, or the removal of a sandbox that is not desired (what the startup
    grace defers); the delete of an unusable sandbox before its re-creation is not."""
    if isinstance(op, DeleteNamespace):
        return op.netns not in desired.sandboxes
    return isinstance(op, (DeleteFdb, DeleteNeigh))


def _netns_of(op: Op) -> str | None:
    netns = getattr(op, "netns", None)
    if isinstance(netns, str):
        return netns
    sandbox = getattr(op, "sandbox", None)
    return sandbox.netns if isinstance(sandbox, Sandbox) else None
