"""The pure diff: the ops that turn what the kernel holds into what this host should hold.

Order (each phase sorted by namespace, then by key, so equal inputs give equal lists):
1. devices: leftover host `swv<vni>` links are deleted first (they hold nothing but may
   hold the VNI a new device needs); then per desired sandbox the missing namespace,
   bridge and VXLAN device are created, a VXLAN device whose identity (VNI, port, local
   VTEP, learning off, proxy on) is wrong is deleted and re-created, and wrong MTU, state,
   master or bridge address are set;
2. entry writes: FDB and neighbour replaces (a MAC that moved to another VTEP is one
   replace, rewritten in place by the kernel), flood-entry appends;
3. entry deletes: FDB pairs, neighbours and learned bridge rows on the VXLAN port that are
   not desired (a learned row of a desired remote MAC is harmless and kept);
4. stale sandboxes: every namespace with this node's prefix that is not desired (a
   crashed earlier run's leftovers, a network whose last local endpoint left).
A VXLAN device that is (re)created starts with no entries, so all of its entries are
written. Creating before deleting keeps traffic flowing while the state converges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swimnet.datapath.actual import ActualState, SandboxState
from swimnet.datapath.model import FLOOD_MAC, DesiredSandbox, DesiredState, Sandbox
from swimnet.datapath.ops import (
    AppendFdb,
    CreateBridge,
    CreateNamespace,
    CreateVxlan,
    DeleteFdb,
    DeleteHostLink,
    DeleteLearned,
    DeleteLink,
    DeleteNamespace,
    DeleteNeigh,
    Op,
    ReplaceFdb,
    ReplaceNeigh,
    SetBridge,
    SetVxlan,
)
from swimnet.errors import LocalProtocolError


def diff(desired: DesiredState, actual: ActualState) -> list[Op]:
    """Ops, in the module's order, that make `actual` equal to `desired`."""
    if desired.node_tag != actual.node_tag:
        raise LocalProtocolError(f"diff of node {desired.node_tag!r} against a dump of {actual.node_tag!r}")
    devices: list[Op] = [DeleteHostLink(name) for name in sorted(actual.host_vxlans)]
    writes: list[Op] = []
    deletes: list[Op] = []
    for netns, want in sorted(desired.sandboxes.items()):
        have = actual.sandboxes.get(netns)
        fresh = _devices(want.sandbox, have, devices)
        current = SandboxState(netns) if fresh or have is None else have
        _fdb(netns, want, current, writes, deletes)
        _neighbours(netns, want.neighbours, current.neighbours, writes, deletes)
        wanted_macs = {mac for mac, _ in want.fdb}
        deletes.extend(DeleteLearned(netns, mac) for mac in sorted(current.learned - wanted_macs))
    stale: list[Op] = [DeleteNamespace(n) for n in sorted(actual.sandboxes) if n not in desired.sandboxes]
    return devices + writes + deletes + stale


def _devices(box: Sandbox, have: SandboxState | None, out: list[Op]) -> bool:
    """Append device ops; True when the VXLAN device will be new (so it has no entries)."""
    if have is None or not have.usable:
        if have is not None:
            out.append(DeleteNamespace(box.netns))
        out += [CreateNamespace(box.netns), CreateBridge(box), CreateVxlan(box)]
        return True
    bridge = have.bridge
    want_addresses = frozenset([box.bridge_address] if box.bridge_address else [])
    if bridge is None:
        out.append(CreateBridge(box))
    elif bridge.mtu != box.mtu or not bridge.up or bridge.addresses != want_addresses:
        out.append(SetBridge(box))
    vx = have.vxlan
    if vx is None:
        out.append(CreateVxlan(box))
        return True
    identity = (vx.vni, vx.port, vx.local, vx.learning, vx.proxy)
    if identity != (box.vni, box.port, box.local_vtep, False, True):
        out += [DeleteLink(box.netns, box.vxlan), CreateVxlan(box)]
        return True
    if vx.master != box.bridge or vx.mtu != box.mtu or not vx.up:
        out.append(SetVxlan(box))
    return False


def _by_mac(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for mac, vtep in pairs:
        grouped.setdefault(mac, set()).add(vtep)
    return grouped


def _fdb(netns: str, want: DesiredSandbox, have: SandboxState, writes: list[Op], deletes: list[Op]) -> None:
    missing = want.fdb - have.fdb
    extra_by = _by_mac(have.fdb - want.fdb)
    for mac, vtep in sorted(missing):
        if mac == FLOOD_MAC:
            writes.append(AppendFdb(netns, mac, vtep))
            continue
        # A unicast MAC wants one VTEP, so every VTEP it has now is extra. Replace rewrites
        # the first of them in place: with exactly one, nothing is left to delete.
        writes.append(ReplaceFdb(netns, mac, vtep))
        if len(extra_by.get(mac, ())) == 1:
            del extra_by[mac]
    for mac in sorted(extra_by):
        deletes.extend(DeleteFdb(netns, mac, vtep) for vtep in sorted(extra_by[mac]))


def _neighbours(
    netns: str, want: Mapping[str, str], have: Mapping[str, str], writes: list[Op], deletes: list[Op]
) -> None:
    changed = [ip for ip, mac in want.items() if have.get(ip) != mac]
    writes.extend(ReplaceNeigh(netns, ip, want[ip]) for ip in sorted(changed, key=_ip_key))
    extra = [ip for ip in have if ip not in want]
    deletes.extend(DeleteNeigh(netns, ip) for ip in sorted(extra, key=_ip_key))


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in ip.split("."))
    except ValueError:
        return (1 << 16, *(ord(c) for c in ip))
