"""Deterministic VNI assignment, identical on every node that knows the same networks.

Rules: networks are considered oldest first (by `created`, then name); a network keeps the
VNI it asked for unless an older network holds it; networks without a request (or that
lost theirs) get the lowest free VNI >= VNI_MIN starting at a hash of their name, so
assignments rarely shift when networks come and go. Two nodes that know the same set of
networks compute the same map; a collision between different names is thus resolved the
same way everywhere, and `collisions` reports it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from swimnet.overlay.model import VNI_MAX, VNI_MIN, NetworkRecord

_SPAN = VNI_MAX - VNI_MIN + 1


def _start(name: str) -> int:
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
    return VNI_MIN + h % _SPAN


def assign_vnis(networks: Iterable[NetworkRecord]) -> tuple[dict[str, int], list[str]]:
    """(network name -> VNI, names whose requested VNI was taken by an older network)."""
    taken: dict[int, str] = {}
    result: dict[str, int] = {}
    collisions: list[str] = []
    ordered = sorted(networks, key=lambda n: (n.created, n.name))
    for net in ordered:
        if net.vni is not None and net.vni not in taken:
            taken[net.vni] = net.name
            result[net.name] = net.vni
    for net in ordered:
        if net.name in result:
            continue
        if net.vni is not None:
            collisions.append(net.name)
        vni = _start(net.name)
        while vni in taken:
            vni = VNI_MIN + (vni - VNI_MIN + 1) % _SPAN
        taken[vni] = net.name
        result[net.name] = vni
    return result, collisions
