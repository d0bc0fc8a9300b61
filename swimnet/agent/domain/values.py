"""What the domain's operations answer: frozen values, rendered by the front ends.

Rules: values hold records and facts (who owns what, which VNI, whether this agent holds a
network's scope), never key material and never presentation: the HTTP layer turns them
into JSON (`swimnet.agent.http.answers`), another front end may render them otherwise.
Lists are in the order the front ends show them.
"""

from __future__ import annotations

import attrs

from swimnet.agent.domain.conflicts import Conflict
from swimnet.membership.member import Member
from swimnet.overlay import EndpointRecord, LocalEndpointSpec, NetworkRecord, ServiceRecord


@attrs.frozen
class NetworkInfo:
    record: NetworkRecord
    owner: str
    """The agent that wrote the definition."""
    vni: int | None
    """The effective VNI (`assign_vnis` over every known network)."""
    held: bool
    """This agent holds the network's scope (knows its endpoints and services)."""
    collision: bool
    """The requested VNI went to an older network."""
    endpoints: int | None
    """Visible endpoints (None: not held, not known here)."""
    local_endpoints: int


@attrs.frozen
class EndpointInfo:
    """An endpoint as the tables show it (`local`: this agent's own spec, when it owns it)."""

    endpoint_id: str
    network: str
    record: EndpointRecord
    owner: str
    local: LocalEndpointSpec | None = None
    conflict: bool = False
    """Its IP or MAC is used by another endpoint of the network."""


@attrs.frozen
class LocalEndpointInfo:
    """An endpoint of this agent, from its own spec (published or not yet)."""

    spec: LocalEndpointSpec
    vtep: str
    owner: str
    published: bool
    """The tables show exactly this agent's record for it."""


@attrs.frozen
class ServiceInfo:
    network: str
    record: ServiceRecord
    owner: str


@attrs.frozen
class NetworkDetail:
    """`inspect`: the network, the agents attached to it and, if held, its contents."""

    info: NetworkInfo
    agents: list[str]
    endpoints: list[EndpointInfo] | None
    services: list[ServiceInfo] | None
    conflicts: list[Conflict] | None


@attrs.frozen
class EndpointListing:
    endpoints: list[EndpointInfo | LocalEndpointInfo]
    not_held: list[str]
    """Known networks (matching the filter) whose endpoints this agent does not know."""


@attrs.frozen
class ServiceListing:
    services: list[ServiceInfo]
    not_held: list[str]


@attrs.frozen
class MemberInfo:
    member: Member
    rtt: float | None
    """Estimated round trip in seconds (None for this agent itself, or not measured yet)."""
    local: bool


@attrs.frozen
class BackendState:
    """One backend of a service, as the tables show it here."""

    endpoint_id: str
    state: str
    """"visible" (answered and load-balanced), "hidden" (its owner failed: left out until
    it returns) or "unknown" (no such endpoint here, or deleted)."""
    record: EndpointRecord | None = None
    owner: str | None = None


@attrs.frozen
class ProgrammedNetns:
    """A container namespace of this host that gets a service's VIP rules."""

    endpoint_id: str
    netns: str
    state: str
    """"programmed" (the latest load-balancing pass succeeded there), "failed", or
    "attached" (the driver reports no load-balancing pass for it)."""


@attrs.frozen
class ServiceDetail:
    """`service inspect`: the service, its backends' states, and what this host programs."""

    info: ServiceInfo
    backends: tuple[BackendState, ...]
    programmed: tuple[ProgrammedNetns, ...] | None
    """None: no datapath on this agent; empty for a dnsrr service (no VIP rules)."""
