"""What a host's datapath needs, computed from the replicated tables.

Values:
- `LocalEndpointSpec`: an endpoint owned by this host's agent (persisted in its state
  directory); `netns` / `pid` name the container to plug it into (None: record only); with `handoff`,
  the container end is left in the host namespace under that name for the container
  runtime to move into `netns`;
- `ServiceSpec`: a service of a network in the snapshot, as the load balancer needs it:
  VIP, mode, ports, and the IPv4 addresses of its backends that are visible now;
- `OverlaySnapshot`: the desired overlay for this host: the networks with a local endpoint
  (record and effective VNI from `assign_vnis` over every known network), the local
  endpoints, the endpoints other agents published in those networks, and the services of
  those networks (`services`, empty unless the caller passes the services tables: a
  snapshot built without them means "no load balancing", as before services existed).

Rules: `build_snapshot` is pure (tables in, snapshot out); a network appears only if this
agent has a local endpoint in it and the network's record is known; remote endpoints come
only from networks in the snapshot, are never our own entries, and undecodable entries are
skipped (counted by the caller). A service's backends are the endpoint ids of its record
that name a visible endpoint of the same network (a peer entry of any owner, or one of
this agent's endpoints), as addresses without prefix, in the record's order, each once;
an id that names nothing visible (its owner failed, its entry is hidden) is no backend.
The agent produces snapshots, the datapath driver (`swimnet.datapath.driver`) consumes
them: both depend on this module, not on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from swimnet.overlay.model import EndpointRecord, NetworkRecord, ServiceRecord
from swimnet.overlay.vni import assign_vnis


@attrs.frozen
class LocalEndpointSpec:
    """An endpoint owned by this agent."""

    endpoint_id: str
    network: str
    name: str
    ip: str
    mac: str
    netns: str | None = None
    pid: int | None = None
    ifname: str = "eth0"
    handoff: str | None = None
    """The host-side name of a container end another runtime moves into `netns` (Docker):
    see `swimnet.datapath.model.LocalEndpoint`."""


def _ports(ports: Iterable[Iterable[Any]]) -> tuple[tuple[str, int, int], ...]:
    return tuple((str(p), int(published), int(target)) for p, published, target in ports)


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


@attrs.frozen
class ServiceSpec:
    """A service of one network with its visible backends (see the module rules); hashable
    whatever sequences it is given (the load balancer memoises on it)."""

    network: str
    name: str
    vip: str | None
    """None in dnsrr mode."""
    mode: str
    """"vip" or "dnsrr"."""
    ports: tuple[tuple[str, int, int], ...] = attrs.field(converter=_ports)
    """(protocol, published port, target port)."""
    backends: tuple[str, ...] = attrs.field(converter=_strings)
    """IPv4 addresses (no prefix) of the visible backends."""


@attrs.frozen
class OverlaySnapshot:
    """Everything the datapath needs, computed from the tables."""

    networks: dict[str, tuple[NetworkRecord, int]]
    """name -> (record, effective vni) for networks with a local endpoint."""
    local: tuple[LocalEndpointSpec, ...]
    remote: tuple[tuple[str, str, EndpointRecord], ...]
    """(network, endpoint id, record) of OTHER agents' endpoints."""
    services: tuple[ServiceSpec, ...] = ()
    """The services of the networks above, sorted by (network, name)."""


def build_snapshot(
    networks: Mapping[str, NetworkRecord],
    local: Iterable[LocalEndpointSpec],
    peers: Mapping[str, Iterable[tuple[str, EndpointRecord, str]]],
    me: str,
    extra_networks: Iterable[str] = (),
    services: Mapping[str, Iterable[ServiceRecord]] | None = None,
) -> OverlaySnapshot:
    """The snapshot for this host.

    `networks`: every known network record (VNIs are assigned over all of them); `local`:
    this agent's endpoints; `peers`: network -> (endpoint id, record, owner) of the visible
    overlay_peer entries; `me`: this agent's name; `extra_networks`: networks to include
    even without a local endpoint yet (an endpoint about to be attached); `services`:
    network -> the visible records of its services table (None: no services).
    """
    vnis, _ = assign_vnis(networks.values())
    peers = {network: list(rows) for network, rows in peers.items()}  # read twice below
    local_list = sorted(local, key=lambda s: (s.network, s.endpoint_id))
    wanted = {s.network for s in local_list} | set(extra_networks)
    chosen = {name: (networks[name], vnis[name]) for name in sorted(wanted) if name in networks}
    remote = tuple(
        (network, endpoint_id, record)
        for network in sorted(chosen)
        for endpoint_id, record, owner in sorted(peers.get(network, ()), key=lambda p: p[0])
        if owner != me
    )
    return OverlaySnapshot(
        networks=chosen,
        local=tuple(s for s in local_list if s.network in chosen),
        remote=remote,
        services=service_specs(chosen, local_list, peers, services or {}),
    )


def service_specs(
    networks: Iterable[str],
    local: Iterable[LocalEndpointSpec],
    peers: Mapping[str, Iterable[tuple[str, EndpointRecord, str]]],
    services: Mapping[str, Iterable[ServiceRecord]],
) -> tuple[ServiceSpec, ...]:
    """The services of `networks` with their backends resolved (see the module rules)."""
    local_list = list(local)
    out: list[ServiceSpec] = []
    for network in sorted(networks):
        records = sorted(services.get(network, ()), key=lambda r: r.name)
        if not records:
            continue
        addresses = {eid: record.address for eid, record, _ in peers.get(network, ())}
        addresses.update((s.endpoint_id, s.ip.split("/")[0]) for s in local_list if s.network == network)
        for record in records:
            found = (addresses.get(eid) for eid in record.backends)
            backends = tuple(dict.fromkeys(a for a in found if a is not None))
            out.append(ServiceSpec(network, record.name, record.vip, record.mode, record.ports, backends))
    return tuple(out)
