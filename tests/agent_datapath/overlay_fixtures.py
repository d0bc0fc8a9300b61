"""Snapshots for the driver tests, built from the agent's value types."""

from __future__ import annotations

from swimnet.overlay import EndpointRecord, LocalEndpointSpec, NetworkRecord, OverlaySnapshot, mac_from_ip

__all__ = ["LocalEndpointSpec", "OverlaySnapshot", "local", "network", "remote", "snapshot"]


def network(name: str = "ovnet", subnet: str = "10.1.0.0/24", **options: str) -> NetworkRecord:
    return NetworkRecord(name=name, subnet=subnet, options=dict(options))


def _mac(ip: str) -> str:
    """Docker's MAC for IPv4; a made-up one for IPv6 (tests of values the datapath skips)."""
    return mac_from_ip(ip) if ":" not in ip else "02:66:00:00:00:" + ip.split("/")[0][-2:].replace(":", "0")


def local(
    name: str, ip: str, network: str = "ovnet", netns: str | None = "c1", **kw: object
) -> LocalEndpointSpec:
    return LocalEndpointSpec(
        endpoint_id=f"{network}-{name}",
        network=network,
        name=name,
        ip=ip,
        mac=_mac(ip),
        netns=netns,
        **kw,  # type: ignore[arg-type]
    )


def remote(name: str, ip: str, vtep: str, network: str = "ovnet") -> tuple[str, str, EndpointRecord]:
    return (network, f"{network}-{name}", EndpointRecord(name=name, ip=ip, mac=_mac(ip), vtep=vtep))


def snapshot(
    networks: dict[str, tuple[NetworkRecord, int]],
    locals_: list[LocalEndpointSpec] | tuple[LocalEndpointSpec, ...] = (),
    remotes: list[tuple[str, str, EndpointRecord]] | tuple[tuple[str, str, EndpointRecord], ...] = (),
) -> OverlaySnapshot:
    return OverlaySnapshot(networks=dict(networks), local=tuple(locals_), remote=tuple(remotes))
