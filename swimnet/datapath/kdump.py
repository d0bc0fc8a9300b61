"""Decoding of rtnetlink dumps into the pieces of an ActualState.

Rules:
- only what the diff compares is decoded; every message of another type, family or device
  is skipped after its fixed header, so a large host or sandbox costs little;
- FDB: AF_BRIDGE entries of the VXLAN device with NTF_SELF are its forwarding table (MAC,
  VTEP); the others are the bridge's rows for that port (dumped without NTF_MASTER), and
  those with neither PERMANENT nor NOARP are rows the bridge learned;
- neighbours: NUD_PERMANENT IPv4 entries of the VXLAN device only.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import attrs

from swimnet.datapath import netlink as nl
from swimnet.datapath.actual import BridgeState, SandboxState, VxlanState
from swimnet.datapath.model import Fdb

IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_EXT_MASK = 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_VXLAN_ID = 1
IFLA_VXLAN_LOCAL = 4
IFLA_VXLAN_LEARNING = 7
IFLA_VXLAN_PROXY = 11
IFLA_VXLAN_PORT = 15
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFF_UP = 0x1
_TYPE_MASK = 0x3FFF

_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_NDHEAD = struct.Struct("=BxxxiHBB")


@attrs.frozen
class Link:
    index: int
    name: str
    kind: str
    mtu: int
    up: bool
    master: int
    """ifindex of the master device, 0 when none."""
    vxlan: dict[int, bytes] = attrs.field(factory=dict)
    """Raw IFLA_VXLAN_* attributes of a VXLAN device."""


def attributes(data: bytes, pos: int, end: int) -> dict[int, bytes]:
    """The netlink attributes in data[pos:end], by type (nested-flag bits cleared)."""
    out: dict[int, bytes] = {}
    while pos + 4 <= end:
        alen, atype = _ATTR.unpack_from(data, pos)
        if alen < 4:
            break
        out[atype & _TYPE_MASK] = data[pos + 4 : pos + alen]
        pos += (alen + 3) & ~3
    return out


def _messages(datagrams: list[bytes], kind: int) -> list[tuple[bytes, int, int]]:
    out = []
    for data in datagrams:
        offset = 0
        n = len(data)
        while offset + 16 <= n:
            length, mtype = struct.unpack_from("=IH", data, offset)
            if length < 16:
                break
            if mtype == kind:
                out.append((data, offset + 16, offset + length))
            offset += (length + 3) & ~3
    return out


def link_request() -> bytes:
    ext = _ATTR.pack(8, IFLA_EXT_MASK) + _U32.pack(RTEXT_FILTER_SKIP_STATS)
    return nl.IFINFOMSG.pack(0, 0, 0, 0, 0) + ext


def links(datagrams: list[bytes], wanted: Callable[[str], bool] | None = None) -> dict[int, Link]:
    """Devices by ifindex; with `wanted`, only those whose name it accepts."""
    out: dict[int, Link] = {}
    for data, pos, end in _messages(datagrams, nl.RTM_NEWLINK):
        _, _, index, flags, _ = nl.IFINFOMSG.unpack_from(data, pos)
        top = attributes(data, pos + 16, end)
        name = top.get(nl.IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
        if wanted is not None and not wanted(name):
            continue
        info = attributes(top.get(IFLA_LINKINFO, b""), 0, len(top.get(IFLA_LINKINFO, b"")))
        kind = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode(errors="replace")
        data_attrs = info.get(IFLA_INFO_DATA, b"")
        out[index] = Link(
            index=index,
            name=name,
            kind=kind,
            mtu=_U32.unpack(top[IFLA_MTU])[0] if IFLA_MTU in top else 0,
            up=bool(flags & IFF_UP),
            master=_U32.unpack(top[IFLA_MASTER])[0] if IFLA_MASTER in top else 0,
            vxlan=attributes(data_attrs, 0, len(data_attrs)) if kind == "vxlan" else {},
        )
    return out


def vxlan_state(link: Link, by_index: dict[int, Link]) -> VxlanState:
    a = link.vxlan
    local = socket.inet_ntoa(a[IFLA_VXLAN_LOCAL][:4]) if IFLA_VXLAN_LOCAL in a else None
    return VxlanState(
        vni=_U32.unpack(a[IFLA_VXLAN_ID][:4])[0] if IFLA_VXLAN_ID in a else 0,
        port=struct.unpack("!H", a[IFLA_VXLAN_PORT][:2])[0] if IFLA_VXLAN_PORT in a else 0,
        local=local,
        learning=bool(a.get(IFLA_VXLAN_LEARNING, b"\0")[0]),
        proxy=bool(a.get(IFLA_VXLAN_PROXY, b"\0")[0]),
        mtu=link.mtu,
        up=link.up,
        master=by_index[link.master].name if link.master in by_index else None,
    )


def addr_request() -> bytes:
    return nl.IFADDRMSG.pack(nl.AF_INET, 0, 0, 0, 0)


def ipv4_addresses(datagrams: list[bytes], ifindex: int) -> frozenset[str]:
    out = set()
    for data, pos, end in _messages(datagrams, nl.RTM_NEWADDR):
        family, prefixlen, _, _, index = nl.IFADDRMSG.unpack_from(data, pos)
        if family != nl.AF_INET or index != ifindex:
            continue
        a = attributes(data, pos + 8, end)
        raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
        if raw:
            out.add(f"{socket.inet_ntoa(raw[:4])}/{prefixlen}")
    return frozenset(out)


def neigh_request(family: int) -> bytes:
    return nl.NDMSG.pack(family, 0, 0, 0, 0)


def dst_lladdr(data: bytes, pos: int, end: int) -> tuple[bytes | None, bytes | None]:
    """NDA_DST and NDA_LLADDR of a neighbour message (stops once both are found)."""
    dst = lladdr = None
    unpack_attr = _ATTR.unpack_from
    while pos + 4 <= end and (dst is None or lladdr is None):
        alen, atype = unpack_attr(data, pos)
        if alen < 4:
            break
        atype &= _TYPE_MASK
        if atype == nl.NDA_DST:
            dst = data[pos + 4 : pos + alen]
        elif atype == nl.NDA_LLADDR:
            lladdr = data[pos + 4 : pos + alen]
        pos += (alen + 3) & ~3
    return dst, lladdr


def ip_text(raw: bytes) -> str:
    """An IPv4 or IPv6 address from its 4 or 16 bytes."""
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def fdb_entries(datagrams: list[bytes], ifindex: int) -> tuple[Fdb, frozenset[str]]:
    """(`self` entries as (MAC, VTEP), MACs the bridge learned) of one VXLAN device."""
    fdb: set[tuple[str, str]] = set()
    learned: set[str] = set()
    static = nl.NUD_PERMANENT | nl.NUD_NOARP
    for data, pos, end in _messages(datagrams, nl.RTM_NEWNEIGH):
        family, index, state, flags, _ = _NDHEAD.unpack_from(data, pos)
        if family != nl.AF_BRIDGE or index != ifindex:
            continue
        if flags & nl.NTF_SELF:
            dst, lladdr = dst_lladdr(data, pos + 12, end)
            if lladdr is not None:
                fdb.add((lladdr.hex(":"), ip_text(dst) if dst else "0.0.0.0"))
        elif not state & static:  # a bridge row (the kernel leaves NTF_MASTER unset in dumps)
            _, lladdr = dst_lladdr(data, pos + 12, end)
            if lladdr is not None:
                learned.add(lladdr.hex(":"))
    return frozenset(fdb), frozenset(learned)


def neighbours(datagrams: list[bytes], ifindex: int) -> dict[str, str]:
    """Permanent IPv4 neighbours (IP -> MAC) of one device."""
    out: dict[str, str] = {}
    for data, pos, end in _messages(datagrams, nl.RTM_NEWNEIGH):
        family, index, state, _, _ = _NDHEAD.unpack_from(data, pos)
        if family == nl.AF_INET and index == ifindex and state & nl.NUD_PERMANENT:
            dst, lladdr = dst_lladdr(data, pos + 12, end)
            if dst is not None and lladdr is not None:
                out[socket.inet_ntoa(dst)] = lladdr.hex(":")
    return out


def sandbox_state(sock: nl.NetlinkSocket, netns: str, bridge: str, vxlan: str) -> SandboxState:
    """Everything the diff compares in one sandbox, from four dumps."""
    by_index = links(sock.dump(nl.RTM_GETLINK, link_request()))
    by_name = {link.name: link for link in by_index.values()}
    br = by_name.get(bridge)
    vx = by_name.get(vxlan)
    bridge_state = None
    if br is not None and br.kind == "bridge":
        addresses = ipv4_addresses(sock.dump(nl.RTM_GETADDR, addr_request()), br.index)
        bridge_state = BridgeState(mtu=br.mtu, up=br.up, addresses=addresses)
    if vx is None or vx.kind != "vxlan":
        return SandboxState(netns, bridge=bridge_state)
    fdb, learned = fdb_entries(sock.dump(nl.RTM_GETNEIGH, neigh_request(nl.AF_BRIDGE)), vx.index)
    neigh = neighbours(sock.dump(nl.RTM_GETNEIGH, neigh_request(nl.AF_INET)), vx.index)
    return SandboxState(
        netns,
        bridge=bridge_state,
        vxlan=vxlan_state(vx, by_index),
        fdb=fdb,
        neighbours=neigh,
        learned=learned,
    )
