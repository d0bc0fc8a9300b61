"""What a host's datapath needs, computed from the replicated tables.

Values:
- `LocalEndpointSpec`: an endpoint owned by this host's agent (persisted in its state
  directory); `netns` / `pid` name the container to plug it into (None: record only);
- `OverlaySnapshot`: the desired overlay for this host: the networks with a local endpoint
  (record and effective VNI from `assign_vnis` over every known network), the local
  endpoints, and the endpoints other agents published in those networks.

Rules: `build_snapshot` is pure (tables in, snapshot out); a network appears only if this
agent has a local endpoint in it and the network's record is known; remote endpoints come
only from networks in the snapshot, are never our own entries, and undecodable entries are
skipped (counted by the caller). The agent produces snapshots, the datapath driver
(`swimnet.datapath.driver`) consumes them: both depend on this module, not on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from swimnet.overlay.model import EndpointRecord, NetworkRecord
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


@attrs.frozen
class OverlaySnapshot:
    """Everything the datapath needs, computed from the tables."""

    networks: dict[str, tuple[NetworkRecord, int]]
    """name -> (record, effective vni) for networks with a local endpoint."""
    local: tuple[LocalEndpointSpec, ...]
    remote: tuple[tuple[str, str, EndpointRecord], ...]
    """(network, endpoint id, record) of OTHER agents' endpoints."""


def build_snapshot(
    networks: Mapping[str, NetworkRecord],
    local: Iterable[LocalEndpointSpec],
    peers: Mapping[str, Iterable[tuple[str, EndpointRecord, str]]],
    me: str,
    extra_networks: Iterable[str] = (),
) -> OverlaySnapshot:
    """The snapshot for this host.

    `networks`: every known network record (VNIs are assigned over all of them); `local`:
    this agent's endpoints; `peers`: network -> (endpoint id, record, owner) of the visible
    overlay_peer entries; `me`: this agent's name; `extra_networks`: networks to include
    even without a local endpoint yet (an endpoint about to be attached).
    """
    vnis, _ = assign_vnis(networks.values())
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
    )
