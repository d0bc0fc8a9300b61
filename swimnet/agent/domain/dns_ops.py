"""The `dns` operation: answer (name, type) as the container of a local endpoint would (its
networks, in attach order), or as a container attached only to the network given; it sends
nothing (a name that is not the overlay's says "forwarded"). Reads the overlay agent's
names index (`agent.dns`, see `domain.dns`) and local endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from swimnet.agent.domain.dns import QTYPES, container_of
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.errors import invalid, not_found
from swimnet.dns import Resolution, resolve
from swimnet.overlay import LocalEndpointSpec


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
