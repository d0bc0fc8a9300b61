"""The overlay domain model: networks, endpoints and services as replicated table entries."""

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
from swimnet.overlay.vni import assign_vnis

__all__ = [
    "CLUSTER_SCOPE",
    "NETWORKS_TABLE",
    "PEERS_TABLE",
    "SERVICES_TABLE",
    "EndpointRecord",
    "NetworkRecord",
    "ServiceRecord",
    "assign_vnis",
    "mac_from_ip",
]
