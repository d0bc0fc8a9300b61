"""The pure diff as a case table: desired state x what the kernel holds -> exact op lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from swimnet.datapath import ActualState, DesiredState, SandboxState, desired_state, diff, mac_from_ip
from swimnet.datapath.actual import BridgeState, VxlanState
from swimnet.datapath.model import FLOOD_MAC, LocalEndpoint, NetworkSpec, RemoteEndpoint
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

TAG = "n1"
VTEP = "192.0.2.11"
NS = "swn-n1-4097"
NET = NetworkSpec("a", 4097, "10.1.0.0/24", gateway="10.1.0.254")
LOCAL = LocalEndpoint("a", "ep1", "c1", "10.1.0.1/24", mac_from_ip("10.1.0.1"), "c1")
R2 = RemoteEndpoint("a", "ep2", "10.1.0.2/24", mac_from_ip("10.1.0.2"), "192.0.2.12")
R3 = RemoteEndpoint("a", "ep3", "10.1.0.3/24", mac_from_ip("10.1.0.3"), "192.0.2.13")
MAC2, MAC3 = R2.mac, R3.mac


def want(
    remotes: tuple[RemoteEndpoint, ...] = (R2, R3),
    net: NetworkSpec = NET,
    locals_: tuple[LocalEndpoint, ...] = (LOCAL,),
) -> DesiredState:
    return desired_state(TAG, VTEP, 1500, [net], locals_, remotes)


def held(desired: DesiredState) -> ActualState:
    """A dump of a kernel that holds exactly `desired`."""
    boxes = {}
    for name, w in desired.sandboxes.items():
        s = w.sandbox
        addresses = frozenset([s.bridge_address] if s.bridge_address else [])
        boxes[name] = SandboxState(
            name,
            bridge=BridgeState(s.mtu, True, addresses),
            vxlan=VxlanState(s.vni, s.port, s.local_vtep, False, True, s.mtu, True, s.bridge),
            fdb=w.fdb,
            neighbours=dict(w.neighbours),
        )
    return ActualState(TAG, boxes)


def edit(actual: ActualState, **changes: Any) -> ActualState:
    box = attrs.evolve(actual.sandboxes[NS], **changes)
    return attrs.evolve(actual, sandboxes={**actual.sandboxes, NS: box})


FULL = want()
BOX = FULL.sandboxes[NS].sandbox
ENTRIES: list[Op] = [
    ReplaceFdb(NS, MAC2, "192.0.2.12"),
    ReplaceFdb(NS, MAC3, "192.0.2.13"),
    ReplaceNeigh(NS, "10.1.0.2", MAC2),
    ReplaceNeigh(NS, "10.1.0.3", MAC3),
]
MOVED = RemoteEndpoint("a", "ep2", "10.1.0.2/24", MAC2, "192.0.2.13")
NEW_MAC = "02:00:00:00:00:22"
REMAC = RemoteEndpoint("a", "ep2", "10.1.0.2/24", NEW_MAC, "192.0.2.12")
STALE_NS = "swn-n1-5000"

Case = tuple[DesiredState, Callable[[], ActualState], list[Op]]
CASES: dict[str, Case] = {
    "empty to full": (
        FULL,
        lambda: ActualState(TAG),
        [CreateNamespace(NS), CreateBridge(BOX), CreateVxlan(BOX), *ENTRIES],
    ),
    "no-op": (FULL, lambda: held(FULL), []),
    "MAC moved to another VTEP is one replace": (
        want((MOVED, R3)),
        lambda: held(FULL),
        [ReplaceFdb(NS, MAC2, "192.0.2.13")],
    ),
    "stale entries are deleted": (
        want((R2,)),
        lambda: held(FULL),
        [DeleteFdb(NS, MAC3, "192.0.2.13"), DeleteNeigh(NS, "10.1.0.3")],
    ),
    "stale network is deleted last": (
        FULL,
        lambda: attrs.evolve(
            held(FULL), sandboxes={**held(FULL).sandboxes, STALE_NS: SandboxState(STALE_NS)}
        ),
        [DeleteNamespace(STALE_NS)],
    ),
    "IP changed MAC": (
        want((REMAC, R3)),
        lambda: held(FULL),
        [
            ReplaceFdb(NS, NEW_MAC, "192.0.2.12"),
            ReplaceNeigh(NS, "10.1.0.2", NEW_MAC),
            DeleteFdb(NS, MAC2, "192.0.2.12"),
        ],
    ),
    "flood on appends one entry per remote VTEP": (
        want(net=attrs.evolve(NET, flood=True)),
        lambda: held(FULL),
        [AppendFdb(NS, FLOOD_MAC, "192.0.2.12"), AppendFdb(NS, FLOOD_MAC, "192.0.2.13")],
    ),
    "flood off deletes the flood entries": (
        FULL,
        lambda: held(want(net=attrs.evolve(NET, flood=True))),
        [DeleteFdb(NS, FLOOD_MAC, "192.0.2.12"), DeleteFdb(NS, FLOOD_MAC, "192.0.2.13")],
    ),
    "entries by hand are repaired": (
        FULL,
        lambda: edit(
            held(FULL),
            fdb=frozenset({(MAC2, "192.0.2.99"), ("02:00:00:00:00:99", "192.0.2.99")}),
            neighbours={"10.1.0.3": MAC3, "10.1.0.99": "02:00:00:00:00:99"},
        ),
        [
            ReplaceFdb(NS, MAC2, "192.0.2.12"),
            ReplaceFdb(NS, MAC3, "192.0.2.13"),
            ReplaceNeigh(NS, "10.1.0.2", MAC2),
            DeleteFdb(NS, "02:00:00:00:00:99", "192.0.2.99"),
            DeleteNeigh(NS, "10.1.0.99"),
        ],
    ),
    "a MAC appended to a second VTEP by hand loses the extra one": (
        FULL,
        lambda: edit(held(FULL), fdb=FULL.sandboxes[NS].fdb | {(MAC2, "192.0.2.99")}),
        [DeleteFdb(NS, MAC2, "192.0.2.99")],
    ),
    "a MAC with two wrong VTEPs: replace one, delete both (one is then already gone)": (
        FULL,
        lambda: edit(
            held(FULL), fdb=frozenset({(MAC2, "192.0.2.98"), (MAC2, "192.0.2.99"), (MAC3, "192.0.2.13")})
        ),
        [
            ReplaceFdb(NS, MAC2, "192.0.2.12"),
            DeleteFdb(NS, MAC2, "192.0.2.98"),
            DeleteFdb(NS, MAC2, "192.0.2.99"),
        ],
    ),
    "learned row of a departed endpoint is deleted, of a present one kept": (
        want((R2,)),
        lambda: edit(held(want((R2,))), learned=frozenset({MAC2, MAC3})),
        [DeleteLearned(NS, MAC3)],
    ),
    "wrong VXLAN identity: re-create it and rewrite every entry": (
        FULL,
        lambda: edit(held(FULL), vxlan=VxlanState(4097, 8472, VTEP, False, True, 1450, True, "br0")),
        [DeleteLink(NS, "vxlan0"), CreateVxlan(BOX), *ENTRIES],
    ),
    "VXLAN with learning on is re-created": (
        FULL,
        lambda: edit(held(FULL), vxlan=VxlanState(4097, 4789, VTEP, True, True, 1450, True, "br0")),
        [DeleteLink(NS, "vxlan0"), CreateVxlan(BOX), *ENTRIES],
    ),
    "VXLAN not enslaved and bridge with a wrong MTU are set": (
        FULL,
        lambda: edit(
            held(FULL),
            bridge=BridgeState(1500, True, frozenset({"10.1.0.254/24"})),
            vxlan=VxlanState(4097, 4789, VTEP, False, True, 1450, False, None),
        ),
        [SetBridge(BOX), SetVxlan(BOX)],
    ),
    "missing bridge is created before the VXLAN is re-enslaved": (
        FULL,
        lambda: edit(
            held(FULL), bridge=None, vxlan=VxlanState(4097, 4789, VTEP, False, True, 1450, True, None)
        ),
        [CreateBridge(BOX), SetVxlan(BOX)],
    ),
    "host leftovers go first": (
        FULL,
        lambda: attrs.evolve(held(FULL), host_vxlans=frozenset({"swv4097", "swv12"})),
        [DeleteHostLink("swv12"), DeleteHostLink("swv4097")],
    ),
    "a name that is not a namespace is removed and re-created": (
        FULL,
        lambda: ActualState(TAG, {NS: SandboxState(NS, usable=False)}),
        [DeleteNamespace(NS), CreateNamespace(NS), CreateBridge(BOX), CreateVxlan(BOX), *ENTRIES],
    ),
    "last local endpoint gone: the whole sandbox goes": (
        want(locals_=()),
        lambda: held(FULL),
        [DeleteNamespace(NS)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_diff_case(name: str) -> None:
    desired, actual, expected = CASES[name]
    assert diff(desired, actual()) == expected


def phase(op: Op) -> int:
    if isinstance(op, (ReplaceFdb, AppendFdb, ReplaceNeigh)):
        return 1
    if isinstance(op, (DeleteFdb, DeleteNeigh, DeleteLearned)):
        return 2
    if isinstance(op, DeleteNamespace) and op.netns == STALE_NS:
        return 3
    return 0


def test_phases_are_ordered_creates_writes_deletes_stale() -> None:
    desired = desired_state(
        TAG,
        VTEP,
        1500,
        [NET, NetworkSpec("b", 4098, "10.2.0.0/24")],
        [LOCAL, attrs.evolve(LOCAL, network="b", endpoint_id="e9")],
        [MOVED],
    )
    actual = edit(held(FULL), learned=frozenset({MAC3}))
    actual = attrs.evolve(actual, sandboxes={**actual.sandboxes, STALE_NS: SandboxState(STALE_NS)})
    ops = diff(desired, actual)
    assert [phase(op) for op in ops] == sorted(phase(op) for op in ops)
    assert {phase(op) for op in ops} == {0, 1, 2, 3}
    assert CreateNamespace("swn-n1-4098") in ops


def test_local_endpoints_are_never_programmed() -> None:
    same_ip = RemoteEndpoint("a", "ep0", "10.1.0.1/24", "02:00:00:00:00:01", "192.0.2.12")
    same_mac = RemoteEndpoint("a", "ep00", "10.1.0.7/24", LOCAL.mac, "192.0.2.12")
    on_this_host = RemoteEndpoint("a", "ep8", "10.1.0.8/24", mac_from_ip("10.1.0.8"), VTEP)
    box = want((same_ip, same_mac, on_this_host, R2)).sandboxes[NS]
    assert box.fdb == frozenset({(MAC2, "192.0.2.12")})
    assert dict(box.neighbours) == {"10.1.0.2": MAC2}
    assert all(
        LOCAL.mac not in (op.mac if hasattr(op, "mac") else "")
        for op in diff(want((same_ip,)), ActualState(TAG))
    )


def test_no_local_endpoint_no_sandbox() -> None:
    assert want(locals_=()).sandboxes == {}
    assert diff(want(locals_=()), ActualState(TAG)) == []


def test_conflicting_remotes_resolve_to_the_smallest_endpoint_id() -> None:
    first = RemoteEndpoint("a", "a-first", "10.1.0.2/24", "02:00:00:00:00:aa", "192.0.2.13")
    box = want((R2, first)).sandboxes[NS]
    assert dict(box.neighbours) == {"10.1.0.2": "02:00:00:00:00:aa"}
    assert box.fdb == frozenset({("02:00:00:00:00:aa", "192.0.2.13")})


def test_diff_refuses_another_nodes_dump() -> None:
    with pytest.raises(LocalProtocolError):
        diff(FULL, ActualState("other"))


def test_diff_is_deterministic() -> None:
    actual = edit(held(FULL), fdb=frozenset(), neighbours={})
    assert diff(FULL, actual) == diff(FULL, actual) == ENTRIES
