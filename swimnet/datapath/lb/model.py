"""What each container namespace's load balancer should do, computed purely from services.

    desired = desired_lb(snapshot)          # {netns ref: Ruleset}, one per attached container

Rules:
- a container namespace is "attached" to a network when a local endpoint of that network
  names it (`netns` or `pid`); endpoints that name no container are not load balanced;
- every attached namespace gets a Ruleset (an empty one when its networks have no VIP
  services, which tells the reconciler to remove whatever an earlier run put there);
- the Ruleset of a namespace holds, for every service in vip mode of every network it is
  attached to, one frontend per port: (VIP, protocol, published port) -> the service's
  backends as (address, target port), sorted by address, each address once; dnsrr
  services and services without a VIP contribute nothing;
- every VIP of those services is in `vips`, with or without ports or backends (traffic to
  a VIP that no frontend translates is refused, see swimnet.datapath.lb.table);
- the backends are the addresses the caller passes (the snapshot's visible backends): the
  model never decides who is alive;
- conflicts resolve deterministically: when two services claim the same frontend, the one
  first by (network, service name) wins and the other's claim is skipped (counted in
  `Ruleset.skipped`, not compared);
- every value is checked by swimnet.values' parsers; a service with a bad value is skipped
  whole (in `skipped`), never half-programmed.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import attrs

from swimnet import values

if TYPE_CHECKING:
    from swimnet.overlay.snapshot import OverlaySnapshot, ServiceSpec

NetnsRef = str | int
"""A namespace name, an absolute path, or a process id (as LocalEndpoint.netns)."""
Frontend = tuple[str, str, int]
"""(VIP, protocol, published port)."""
Backend = tuple[str, int]
"""(address, target port)."""


@attrs.frozen
class Ruleset:
    """The load balancing of one namespace (hashable: the table layout is memoised on it)."""

    frontends: tuple[tuple[Frontend, tuple[Backend, ...]], ...] = ()
    """Sorted by frontend; a frontend may have no backends."""
    vips: frozenset[str] = frozenset()
    skipped: tuple[str, ...] = attrs.field(default=(), eq=False)
    """Why services or ports were left out (conflicts, bad values)."""

    @property
    def empty(self) -> bool:
        return not self.frontends and not self.vips

    def backends(self, vip: str, protocol: str, port: int) -> tuple[Backend, ...]:
        for frontend, targets in self.frontends:
            if frontend == (vip, protocol, port):
                return targets
        return ()


@functools.lru_cache(maxsize=1 << 16)
def _ip_key(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


_address = functools.lru_cache(maxsize=1 << 16)(values.address)
"""values.address (~40 us) once per address: a snapshot repeats every backend each time."""


@functools.lru_cache(maxsize=1 << 14)
def _checked(spec: ServiceSpec) -> tuple[str, tuple[tuple[Frontend, tuple[Backend, ...]], ...]] | str:
    """(VIP, frontends) of a vip-mode service, or why it is skipped (memoised: specs are
    frozen, and a snapshot repeats every unchanged one)."""
    try:
        vip = _address(spec.vip or "", "vip")
        ports = [values.port_mapping(*p, "ports") for p in spec.ports]
        addresses = sorted({_address(b, "backends") for b in spec.backends}, key=_ip_key)
    except values.InvalidValue as exc:
        return f"service {spec.network}/{spec.name}: {exc}"
    frontends = tuple(
        ((vip, proto, published), tuple((a, target) for a in addresses)) for proto, published, target in ports
    )
    return vip, frontends


def rulesets(
    services: Iterable[ServiceSpec], attachments: Iterable[tuple[str, NetnsRef]]
) -> dict[NetnsRef, Ruleset]:
    """The Ruleset of every attached namespace; `attachments` are (network, namespace) pairs."""
    by_network: dict[str, list[ServiceSpec]] = {}
    for spec in services:
        if spec.mode == "vip" and spec.vip is not None:
            by_network.setdefault(spec.network, []).append(spec)
    networks_of: dict[NetnsRef, set[str]] = {}
    for network, ref in attachments:
        networks_of.setdefault(ref, set()).add(network)
    out: dict[NetnsRef, Ruleset] = {}
    cache: dict[tuple[str, ...], Ruleset] = {}
    for ref, networks in networks_of.items():
        key = tuple(sorted(networks))
        if key not in cache:
            cache[key] = _ruleset(
                [s for n in key for s in sorted(by_network.get(n, ()), key=lambda s: s.name)]
            )
        out[ref] = cache[key]
    return out


def _ruleset(specs: list[ServiceSpec]) -> Ruleset:
    frontends: dict[Frontend, tuple[Backend, ...]] = {}
    owner: dict[Frontend, str] = {}
    vips: set[str] = set()
    skipped: list[str] = []
    for spec in specs:
        checked = _checked(spec)
        if isinstance(checked, str):
            skipped.append(checked)
            continue
        vip, wanted = checked
        vips.add(vip)
        for frontend, targets in wanted:
            if frontend in frontends:
                skipped.append(f"service {spec.network}/{spec.name}: {frontend} is {owner[frontend]}'s")
                continue
            frontends[frontend] = targets
            owner[frontend] = f"{spec.network}/{spec.name}"
    ordered = tuple(sorted(frontends.items(), key=lambda kv: (_ip_key(kv[0][0]), kv[0][1], kv[0][2])))
    return Ruleset(ordered, frozenset(vips), tuple(skipped))


def attachments_of(snapshot: OverlaySnapshot) -> list[tuple[str, NetnsRef]]:
    """(network, namespace) of every local endpoint that names a container."""
    out: list[tuple[str, NetnsRef]] = []
    for spec in snapshot.local:
        ref: NetnsRef | None = spec.netns if spec.netns else spec.pid if spec.pid else None
        if ref is not None:
            out.append((spec.network, ref))
    return out


def desired_lb(snapshot: OverlaySnapshot) -> dict[NetnsRef, Ruleset]:
    """The Ruleset of every container namespace the snapshot attaches (see the rules)."""
    return rulesets(snapshot.services, attachments_of(snapshot))


def summary(desired: Mapping[NetnsRef, Ruleset]) -> dict[str, int]:
    """Counts for logs and metrics."""
    return {
        "namespaces": len(desired),
        "frontends": sum(len(r.frontends) for r in desired.values()),
        "backends": sum(len(t) for r in desired.values() for _, t in r.frontends),
    }
