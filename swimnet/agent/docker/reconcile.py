"""Reconciling the plugin's records with what dockerd knows (after restarts, missed calls).

A call Docker made while the agent was down (a container removed, a network removed, a
dockerd restarted with its containers gone) never reached the plugin: its endpoint would
stay published cluster-wide, with its FDB entries on every host and its VIP rules. The
reconcile finds those, both ways.

Rules:
- one pass: for every Docker network the plugin recorded, ask dockerd (`DockerApi.network`);
  an endpoint dockerd does not list in it (or the network itself unknown to dockerd) and
  recorded more than `grace` seconds ago is removed: its swimnet endpoint cluster-wide, its
  record, its address given back; an endpoint dockerd still lists is kept as it is; a network
  dockerd does not know, older than `grace` and without endpoints, is forgotten with its
  pool; a swimnet endpoint of this agent made by the plugin (it has a hand-off name) that no
  record names (a crash between its creation and the record) is removed;
- the grace covers Docker's own windows (an endpoint exists in the plugin a moment before
  dockerd stores it); nothing is removed while dockerd cannot be asked (the pass is skipped
  and logged): an unreachable dockerd is not an empty one;
- the pass holds the plugin's lock (no call runs meanwhile) and saves once at the end; the
  time is an input (`now`), the loop runs a pass at start and every `interval` seconds.
"""

from __future__ import annotations

import logging

import attrs
import trio

from swimnet.agent.docker.dockerd import DockerApiError, DockerNetwork
from swimnet.agent.docker.endpoint_calls import HANDOFF_PREFIX
from swimnet.agent.docker.plugin import DockerPlugin
from swimnet.agent.errors import OperationError
from swimnet.agent.logs import LOGGER, event

log = logging.getLogger(LOGGER)

DEFAULT_GRACE = 30.0
DEFAULT_INTERVAL = 30.0


@attrs.frozen
class Outcome:
    removed_endpoints: tuple[str, ...] = ()
    forgotten_networks: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()
    """Swimnet endpoint ids removed because no record named them."""
    skipped: str | None = None
    """Why the pass did nothing (dockerd unreachable), else None."""


async def reconcile(plugin: DockerPlugin, now: float, grace: float = DEFAULT_GRACE) -> Outcome:
    """One pass (see the module rules)."""
    async with plugin.lock:
        state = plugin.state
        known: dict[str, DockerNetwork | None] = {}
        try:
            for network_id in sorted(state.networks):
                known[network_id] = await plugin.docker.network(network_id)
        except DockerApiError as exc:
            event(
                log,
                "docker reconcile skipped",
                level=logging.WARNING,
                event="docker_reconcile_skipped",
                error=str(exc),
            )
            return Outcome(skipped=str(exc))
        removed: list[str] = []
        for endpoint_id, endpoint in sorted(state.endpoints.items()):
            docker = known.get(endpoint.network_id)
            listed = docker is not None and endpoint_id in docker.endpoints
            if listed or now - endpoint.created < grace:
                continue
            try:
                await plugin.forget_endpoint(endpoint_id)
            except OperationError as exc:
                event(
                    log,
                    "docker reconcile: cannot remove an endpoint",
                    level=logging.WARNING,
                    event="docker_reconcile_failed",
                    endpoint=endpoint_id[:12],
                    error=exc.message,
                )
                continue
            removed.append(endpoint_id)
        forgotten: list[str] = []
        for network_id, network in sorted(state.networks.items()):
            used = any(ep.network_id == network_id for ep in state.endpoints.values())
            if known.get(network_id) is None and not used and now - network.created >= grace:
                plugin.forget_network(network_id)
                forgotten.append(network_id)
        orphans = await _orphans(plugin)
        if removed or forgotten or orphans:
            plugin.save()
            event(
                log,
                "docker reconcile",
                event="docker_reconciled",
                endpoints=len(removed),
                networks=len(forgotten),
                orphans=len(orphans),
            )
        return Outcome(tuple(removed), tuple(forgotten), tuple(orphans))


async def _orphans(plugin: DockerPlugin) -> list[str]:
    recorded = {ep.swimnet_id for ep in plugin.state.endpoints.values()}
    out = []
    for spec in list(plugin.ops.overlay.local.values()):
        made_here = spec.handoff is not None and spec.handoff.startswith(HANDOFF_PREFIX)
        if made_here and spec.endpoint_id not in recorded:
            try:
                await plugin.ops.endpoints.remove(spec.endpoint_id)
            except OperationError:
                continue
            out.append(spec.endpoint_id)
    return out


async def reconcile_forever(
    plugin: DockerPlugin,
    *,
    grace: float = DEFAULT_GRACE,
    interval: float = DEFAULT_INTERVAL,
) -> None:
    """A pass at start, then every `interval` seconds, until cancelled."""
    while True:
        await reconcile(plugin, plugin.clock(), grace)
        await trio.sleep(interval)
