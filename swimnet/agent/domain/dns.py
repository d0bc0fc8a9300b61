"""The agent's embedded DNS: the names index kept equal to the tables, the per-container
resolvers, and the `dns` operation (resolve as a container would).

    dns = AgentDns(cluster)          # owned by the OverlayAgent (`agent.dns`)
    dns.load(); dns.apply(change)    # from the overlay's table subscription
    dns.resolvers = pool             # the daemon's ResolverPool (datapath on only)
    await dns.attach(spec) / await dns.detach(spec)

Rules:
- the index (`swimnet.dns.NamesIndex`) is loaded from the node's tables (through the
  `Cluster`) when the overlay's table subscription opens, with no await in between, so no
  change is missed; again whenever the subscription dropped changes; every TableChange the
  overlay receives is applied; a network scope the agent leaves is forgotten;
- resolvers: `resolvers` is the daemon's pool (`swimnet.dns.pool.ResolverPool`; None
  without a datapath): a local endpoint with a netns or pid joins its container's resolver
  once the datapath attached it, and leaves it when the datapath detached it; a resolver
  that fails to start is logged and counted (`dns_attach_failures`), never fatal;
- the counters (`metrics`, a `swimnet.dns.DnsMetrics`) are shared by every resolver and
  exported by the daemon's metrics;
- `Dns.resolve` answers (name, type) as the container of a local endpoint would (its
  networks, in attach order), or as a container attached only to the network given; it
  sends nothing (a name that is not the overlay's says "forwarded").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

from swimnet.agent.domain.cluster import Cluster
from swimnet.agent.errors import invalid, not_found
from swimnet.agent.logs import LOGGER, event
from swimnet.dns import DnsMetrics, NamesIndex, Resolution, resolve
from swimnet.errors import SwimnetError
from swimnet.overlay import LocalEndpointSpec
from swimnet.tables.changes import TableChange

if TYPE_CHECKING:
    from swimnet.agent.domain.overlay import OverlayAgent

log = logging.getLogger(LOGGER)

QTYPES = ("A", "AAAA", "PTR")


class ResolverPoolProtocol(Protocol):
    """What the agent asks of the resolver pool (`swimnet.dns.pool.ResolverPool`)."""

    async def attach(self, netns: str, endpoint_id: str, network: str) -> object: ...

    async def detach(self, endpoint_id: str) -> None: ...

    def networks_of(self, netns: str) -> tuple[str, ...]: ...


def container_of(spec: LocalEndpointSpec) -> str | None:
    """The namespace a resolver serves an endpoint's container in (None: no container)."""
    if spec.netns:
        return spec.netns
    if spec.pid:
        return f"/proc/{spec.pid}/ns/net"
    return None


class AgentDns:
    def __init__(self, cluster: Cluster, stats: Counter[str]) -> None:
        self.cluster = cluster
        self.stats = stats
        """The overlay agent's counters (`dns_attaches`, `dns_attach_failures`)."""
        self.index = NamesIndex()
        self.metrics = DnsMetrics()
        self.resolvers: ResolverPoolProtocol | None = None

    # -- the index ------------------------------------------------------------------------

    def load(self) -> None:
        self.index.load_tables(self.cluster.tables)

    def apply(self, change: TableChange) -> None:
        self.index.apply(change)

    def forget(self, network: str) -> None:
        self.index.forget(network)

    # -- resolvers ------------------------------------------------------------------------

    async def attach(self, spec: LocalEndpointSpec) -> None:
        netns = container_of(spec)
        if self.resolvers is None or netns is None:
            return
        try:
            await self.resolvers.attach(netns, spec.endpoint_id, spec.network)
            self.stats["dns_attaches"] += 1
        except (SwimnetError, OSError) as exc:
            self.stats["dns_attach_failures"] += 1
            event(
                log,
                "dns resolver not started",
                level=logging.ERROR,
                event="dns_attach_failed",
                endpoint=spec.endpoint_id,
                netns=netns,
                error=str(exc),
            )

    async def detach(self, spec: LocalEndpointSpec) -> None:
        if self.resolvers is not None:
            await self.resolvers.detach(spec.endpoint_id)


@attrs.frozen
class DnsAnswer:
    """What `Dns.resolve` found, and for whom."""

    network: str
    name: str
    qtype: str
    endpoint: str | None
    """The endpoint id the query was asked as (None: a container on `network` only)."""
    networks: tuple[str, ...]
    """The networks the query was scoped to, first one first."""
    resolution: Resolution


class Dns:
    """The `dns` operation over an overlay agent's index and local endpoints."""

    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def _endpoint(self, network: str, ref: str) -> LocalEndpointSpec:
        local = self.agent.local
        spec = local.get(ref)
        if spec is None or spec.network != network:
            named = [s for s in local.values() if s.network == network and s.name == ref]
            spec = named[0] if len(named) == 1 else None
        if spec is None:
            raise not_found(f"from: no local endpoint {ref!r} in network {network!r}", "from")
        return spec

    def _scope(self, spec: LocalEndpointSpec) -> tuple[str, ...]:
        netns = container_of(spec)
        resolvers = self.agent.dns.resolvers
        if netns is not None and resolvers is not None:
            known = resolvers.networks_of(netns)
            if known:
                return known
        local = self.agent.local.values()
        same = [s.network for s in local if netns is not None and container_of(s) == netns]
        return tuple(dict.fromkeys([spec.network, *same]))

    def resolve(self, network: str, name: str, *, source: str | None = None, qtype: str = "A") -> DnsAnswer:
        qtype = qtype.upper()
        if qtype not in QTYPES:
            raise invalid(f"type: must be one of {', '.join(QTYPES)}, got {qtype!r}", "type")
        if self.agent.view.network(network) is None:
            raise not_found(f"network {network!r} not found", "network")
        spec = self._endpoint(network, source) if source is not None else None
        networks: Sequence[str] = self._scope(spec) if spec is not None else (network,)
        try:
            found = resolve(self.agent.dns.index.view(), networks, name, qtype)
        except ValueError as exc:
            raise invalid(f"name: {exc}", "name") from None
        return DnsAnswer(network, name, qtype, spec.endpoint_id if spec else None, tuple(networks), found)
