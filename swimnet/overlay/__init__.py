"""The overlay domain model: networks, endpoints and services as replicated table entries,
and the snapshot of them a host's datapath is driven from (`snapshot`)."""

from swimnet.overlay.model import (
    CLUSTER_SCOPE,
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
    NetworkRecord,
    ServiceRecord,
    mac_from_ip,
)
from swimnet.overlay.snapshot import LocalEndpointSpec, OverlaySnapshot, build_snapshot
from swimnet.overlay.vni import assign_vnis

__all__ = [
    "CLUSTER_SCOPE",
    "NETWORKS_TABLE",
    "PEERS_TABLE",
    "SERVICES_TABLE",
    "EndpointRecord",
    "LocalEndpointSpec",
    "NetworkRecord",
    "OverlaySnapshot",
    "ServiceRecord",
    "assign_vnis",
    "build_snapshot",
    "mac_from_ip",
]
