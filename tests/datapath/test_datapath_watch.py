"""Watching a datapath: what counts as drift, netlink notification decoding, the in-memory
datapath's changes and QueueWatch (no kernel needed)."""

from __future__ import annotations

import socket
import struct

import attrs
import pytest
import trio

from swimnet.datapath import LocalEndpoint, MemoryDatapath, NetworkSpec, RemoteEndpoint, desired_state
from swimnet.datapath import netlink as nl
from swimnet.datapath.kwatch import RTM_DELLINK, Devices, parse
from swimnet.datapath.memory import changes
from swimnet.datapath.names import sandbox_name
from swimnet.datapath.watch import (
    Change,
    FdbChange,
    LinkChange,
    Lost,
    NeighChange,
    QueueWatch,
    SandboxGone,
    drifted,
)

TAG = "n1"
SB = sandbox_name(TAG, 4097)
OTHER = sandbox_name(TAG, 4098)
NET = NetworkSpec("ovnet", 4097, "10.1.0.0/24")
WEB = LocalEndpoint("ovnet", "ovnet-web", "web", "10.1.0.1/24", "02:42:0a:01:00:01", "c1")
R2 = RemoteEndpoint("ovnet", "ovnet-r2", "10.1.0.2/24", "02:42:0a:01:00:02", "192.0.2.12")
DESIRED = desired_state(TAG, "192.0.2.11", 1500, [NET], [WEB], [R2])
M2 = "02:42:0a:01:00:02"
MTU = 1450


@pytest.mark.parametrize(
    ("change", "drift"),
    [
        (FdbChange(SB, M2, "192.0.2.12", deleted=True), True),  # bridge fdb del
        (FdbChange(SB, M2, "192.0.2.12", deleted=False), False),  # our own write
        (FdbChange(SB, M2, "192.0.2.99", deleted=False), True),  # moved by hand
        (FdbChange(SB, M2, "192.0.2.99", deleted=True), False),  # our delete of that
        (FdbChange(SB, "02:00:00:00:00:99", "192.0.2.12", deleted=False), True),  # added by hand
        (NeighChange(SB, "10.1.0.2", "", permanent=False, deleted=True), True),  # ip neigh del
        (NeighChange(SB, "10.1.0.2", "", permanent=False, deleted=False), True),  # on its way out
        (NeighChange(SB, "10.1.0.2", M2, permanent=True, deleted=False), False),
        (NeighChange(SB, "10.1.0.2", "02:00:00:00:00:99", permanent=True, deleted=False), True),
        (NeighChange(SB, "10.1.0.9", M2, permanent=True, deleted=False), True),  # added by hand
        (NeighChange(SB, "10.1.0.9", M2, permanent=False, deleted=False), False),  # not ours to manage
        (NeighChange(SB, "10.1.0.9", M2, permanent=True, deleted=True), False),  # our delete
        (LinkChange(SB, "vxlan0", deleted=True), True),
        (LinkChange(SB, "br0", deleted=True), True),
        (LinkChange(SB, "vxlan0", False, up=True, mtu=MTU, enslaved=True), False),
        (LinkChange(SB, "vxlan0", False, up=True, mtu=MTU, enslaved=False), True),
        (LinkChange(SB, "vxlan0", False, up=False, mtu=MTU, enslaved=True), True),
        (LinkChange(SB, "br0", False, up=True, mtu=MTU), False),  # a port came or went
        (LinkChange(SB, "br0", False, up=True, mtu=1400), True),
        (LinkChange(SB, "eth9", deleted=True), False),
        (SandboxGone(SB), True),
        (Lost(SB, "No buffer space available"), True),
        (SandboxGone(OTHER), False),  # not desired: the full pass removes what is left of it
        (FdbChange(OTHER, M2, "192.0.2.12", deleted=True), False),
        (Lost(OTHER, "x"), False),
    ],
)
def test_what_counts_as_drift(change: Change, drift: bool) -> None:
    assert drifted(change, DESIRED) is drift


def _msg(kind: int, body: bytes, attrs: list[tuple[int, bytes]]) -> bytes:
    for atype, value in attrs:
        body += struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * (-len(value) % 4)
    return nl.HDR.pack(16 + len(body), kind, 0, 0, 0) + body


def link(kind: int, index: int, name: str, *, up: bool = True, master: int = 0, family: int = 0) -> bytes:
    attrs = [(nl.IFLA_IFNAME, name.encode() + b"\0"), (4, struct.pack("=I", MTU))]
    if master:
        attrs.append((10, struct.pack("=I", master)))
    return _msg(kind, nl.IFINFOMSG.pack(family, 1, index, 0x1003 if up else 0x1002, 0), attrs)


def neigh(kind: int, family: int, index: int, state: int, flags: int, dst: bytes | None, mac: bytes) -> bytes:
    attrs = [(nl.NDA_LLADDR, mac)] + ([(nl.NDA_DST, dst)] if dst else [])
    return _msg(kind, nl.NDMSG.pack(family, index, state, flags, 0), attrs)


MAC2 = bytes.fromhex("02420a010002")


def test_netlink_notifications_of_our_devices_are_decoded() -> None:
    dev = Devices(SB)
    assert parse(dev, link(nl.RTM_NEWLINK, 2, "br0") + link(nl.RTM_NEWLINK, 3, "vxlan0", master=2)) == [
        LinkChange(SB, "br0", False, True, MTU, False),
        LinkChange(SB, "vxlan0", False, True, MTU, True),
    ]
    assert dev.by_index == {2: "br0", 3: "vxlan0"}
    ip = socket.inet_aton
    datagram = b"".join(
        [
            neigh(nl.RTM_DELNEIGH, 7, 3, 0xC0, nl.NTF_SELF, ip("192.0.2.12"), MAC2),  # bridge fdb del
            neigh(nl.RTM_NEWNEIGH, 7, 3, 0xC0, nl.NTF_SELF, None, bytes(6)),  # no dst
            neigh(nl.RTM_NEWNEIGH, 7, 3, 0x02, 0, None, MAC2),  # a row the bridge learned: not ours
            neigh(nl.RTM_NEWNEIGH, 7, 9, 0xC0, nl.NTF_SELF, ip("192.0.2.12"), MAC2),  # another device
            neigh(nl.RTM_NEWNEIGH, 2, 3, 0x20, 0, ip("10.1.0.2"), MAC2),  # ip neigh del: FAILED first
            neigh(nl.RTM_DELNEIGH, 2, 3, 0x20, 0, ip("10.1.0.2"), b""),
            neigh(nl.RTM_NEWNEIGH, 2, 2, 0x80, 0, ip("10.1.0.9"), MAC2),  # on the bridge: not ours
            neigh(nl.RTM_NEWNEIGH, 10, 3, 0x40, 0, bytes(16), MAC2),  # IPv6: not ours
        ]
    )
    assert parse(dev, datagram) == [
        FdbChange(SB, "02:42:0a:01:00:02", "192.0.2.12", True),
        FdbChange(SB, "00:00:00:00:00:00", "0.0.0.0", False),
        NeighChange(SB, "10.1.0.2", "02:42:0a:01:00:02", False, False),
        NeighChange(SB, "10.1.0.2", "", False, True),
    ]
    assert parse(dev, datagram, decode=False) == []


def test_device_identities_follow_the_link_messages() -> None:
    dev = Devices(SB, {2: "br0", 3: "vxlan0"})
    # a port message (AF_BRIDGE) removing vxlan0 from the bridge: not a deleted device
    assert parse(dev, link(RTM_DELLINK, 3, "vxlan0", master=2, family=7)) == [
        LinkChange(SB, "vxlan0", False, True, MTU, False)
    ]
    assert dev.by_index == {2: "br0", 3: "vxlan0"}
    assert parse(dev, link(RTM_DELLINK, 3, "vxlan0")) == [LinkChange(SB, "vxlan0", deleted=True)]
    assert dev.by_index == {2: "br0"}
    parse(dev, link(nl.RTM_NEWLINK, 7, "vxlan0", master=2), decode=False)  # re-made, while we discard
    assert dev.by_index == {2: "br0", 7: "vxlan0"}
    assert parse(dev, neigh(nl.RTM_DELNEIGH, 7, 7, 0xC0, nl.NTF_SELF, None, MAC2)) == [
        FdbChange(SB, "02:42:0a:01:00:02", "0.0.0.0", True)
    ]
    assert parse(dev, link(nl.RTM_NEWLINK, 2, "brX")) == [LinkChange(SB, "br0", deleted=True)]  # renamed
    assert parse(dev, link(nl.RTM_NEWLINK, 5, "veth1")) == []
    assert dev.by_index == {7: "vxlan0"}
    assert parse(dev, b"\x08\x00\x00\x00" + b"garbage!") == []  # a bad length stops the walk


def test_the_memory_datapath_reports_what_changed() -> None:
    mem = MemoryDatapath(TAG)
    assert mem.reconcile(DESIRED).ok
    before = mem.dump()
    with mem.by_hand() as boxes:
        box = boxes[SB]
        box.fdb["02:00:00:00:00:99"] = ["192.0.2.99"]
        box.neighbours["10.1.0.2"] = "02:00:00:00:00:99"
        assert box.vxlan is not None
        box.vxlan = attrs.evolve(box.vxlan, up=False)
    assert changes(before, mem.dump()) == [
        LinkChange(SB, "vxlan0", False, up=False, mtu=MTU, enslaved=True),
        FdbChange(SB, "02:00:00:00:00:99", "192.0.2.99", False),
        NeighChange(SB, "10.1.0.2", "02:00:00:00:00:99", True, False),
    ]
    after = mem.dump()
    with mem.by_hand() as boxes:
        del boxes[SB]
    assert changes(after, mem.dump()) == [SandboxGone(SB)]
    assert [type(c) for c in changes(mem.dump(), after)][:2] == [LinkChange, LinkChange]


async def test_queue_watch_delivers_the_changes_of_tracked_namespaces() -> None:
    watch = QueueWatch()
    watch.track([SB])
    watch.push([FdbChange(OTHER, M2, "192.0.2.12", True), FdbChange(SB, M2, "192.0.2.12", True)])
    with trio.fail_after(5):
        await watch.wait()
    assert watch.read() == [FdbChange(SB, M2, "192.0.2.12", True)]
    watch.push([Lost(SB, "a"), Lost(SB, "b"), Lost(SB, "c")])
    assert watch.read(limit=2) == [Lost(SB, "a"), Lost(SB, "b")]
    with trio.fail_after(5):
        await watch.wait()  # what is left is still there
    assert watch.read() == [Lost(SB, "c")]
    watch.push([SandboxGone(SB), Lost(SB, "after")])  # gone: no longer watched
    assert watch.read() == [SandboxGone(SB)]
    watch.track([SB])
    watch.push([Lost(SB, "x"), Lost(SB, "y")])
    assert watch.discard() == 2 and watch.read() == []
    with trio.move_on_after(0.05) as waited:
        await watch.wait()
    assert waited.cancelled_caught  # nothing queued: wait() blocks
    watch.close()
    watch.push([Lost(SB, "z")])
    assert watch.read() == [] and watch.discard() == 0
    await watch.wait()  # a checkpoint, no error
