"""The in-memory datapath: reconcile converges from any drift in one pass; errors are reported."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimnet.datapath import (
    DesiredState,
    LocalEndpoint,
    MemoryDatapath,
    NetworkSpec,
    RemoteEndpoint,
    desired_state,
    diff,
    mac_from_ip,
)
from swimnet.datapath.actual import VxlanState
from swimnet.datapath.memory import MemorySandbox
from swimnet.datapath.ops import ReplaceFdb
from swimnet.errors import DatapathError

TAG = "m1"
VTEP = "192.0.2.11"
NETS = [NetworkSpec("a", 4097, "10.1.0.0/24"), NetworkSpec("b", 4098, "10.1.0.0/24", flood=True)]
VTEPS = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]


def local(net: str) -> LocalEndpoint:
    return LocalEndpoint(net, f"local-{net}", "c", "10.1.0.1/24", mac_from_ip("10.1.0.1"), f"c-{net}")


def remotes(picks: list[tuple[str, int, int]]) -> list[RemoteEndpoint]:
    return [
        RemoteEndpoint(net, f"{net}-{host}", f"10.1.0.{host}/24", mac_from_ip(f"10.1.0.{host}"), VTEPS[v])
        for net, host, v in picks
    ]


pick = st.tuples(st.sampled_from(["a", "b"]), st.integers(2, 30), st.integers(0, 2))
desired_states = st.builds(
    lambda picks, nets: desired_state(TAG, VTEP, 1500, NETS, [local(n) for n in nets], remotes(picks)),
    st.lists(pick, max_size=25),
    st.sets(st.sampled_from(["a", "b"])),
)
drift = st.lists(
    st.one_of(
        st.tuples(st.just("fdb"), st.integers(2, 40), st.integers(0, 3)),
        st.tuples(st.just("neigh"), st.integers(2, 40), st.integers(0, 3)),
        st.tuples(st.just("unfdb"), st.integers(2, 40), st.integers(0, 0)),
        st.tuples(st.just("vxlan"), st.integers(0, 0), st.integers(0, 0)),
        st.tuples(st.just("stale"), st.integers(1, 3), st.integers(0, 0)),
        st.tuples(st.just("leftover"), st.integers(4097, 4099), st.integers(0, 0)),
    ),
    max_size=8,
)


def meddle(dp: MemoryDatapath, changes: list[tuple[str, int, int]]) -> None:
    """Edits made by hand, as `ip`/`bridge` would."""
    for kind, n, v in changes:
        box = next(iter(dp.sandboxes.values()), None)
        if kind == "stale":
            dp.sandboxes[f"swn-{TAG}-{9000 + n}"] = MemorySandbox()
        elif kind == "leftover":
            dp.host_vxlans.add(f"swv{n}")
        elif box is None or box.vxlan is None:
            continue
        elif kind == "fdb":
            remotes_of_mac = box.fdb.setdefault(mac_from_ip(f"10.1.0.{n}"), [])
            if f"192.0.2.{50 + v}" not in remotes_of_mac:  # the kernel keeps one per VTEP
                remotes_of_mac.append(f"192.0.2.{50 + v}")
        elif kind == "unfdb":
            box.fdb.pop(mac_from_ip(f"10.1.0.{n}"), None)
        elif kind == "neigh":
            box.neighbours[f"10.1.0.{n}"] = mac_from_ip(f"10.1.1.{v}")
        elif kind == "vxlan":
            box.vxlan = VxlanState(1, 8472, VTEP, True, False, 1500, False, None)


@settings(max_examples=200, deadline=None)
@given(before=desired_states, after=desired_states, changes=drift)
def test_one_reconcile_converges_from_any_drift(
    before: DesiredState, after: DesiredState, changes: list[tuple[str, int, int]]
) -> None:
    dp = MemoryDatapath(TAG)
    assert dp.reconcile(before).ok
    meddle(dp, changes)
    result = dp.reconcile(after)
    assert result.ok, result.errors
    assert diff(after, dp.dump()) == []
    held = dp.dump()
    assert set(held.sandboxes) == set(after.sandboxes)
    for name, want in after.sandboxes.items():
        assert held.sandboxes[name].fdb == want.fdb
        assert dict(held.sandboxes[name].neighbours) == dict(want.neighbours)
    assert not held.host_vxlans


def test_failures_are_reported_not_dropped_and_the_next_reconcile_repairs() -> None:
    want = desired_state(TAG, VTEP, 1500, NETS[:1], [local("a")], remotes([("a", 2, 1), ("a", 3, 2)]))
    dp = MemoryDatapath(TAG)
    bad = mac_from_ip("10.1.0.3")
    dp.fail(lambda op: isinstance(op, ReplaceFdb) and op.mac == bad, errno.EINVAL)
    result = dp.reconcile(want)
    assert not result.ok
    assert [(type(e.op), e.errno) for e in result.errors] == [(ReplaceFdb, errno.EINVAL)]
    assert result.applied == result.attempted - 1
    with pytest.raises(DatapathError, match="1 of"):
        result.raise_for_errors()
    dp._failures.clear()
    assert dp.reconcile(want).ok
    assert diff(want, dp.dump()) == []


def test_attach_needs_the_sandbox_and_refuses_a_taken_name() -> None:
    want = desired_state(TAG, VTEP, 1500, NETS[:1], [local("a")], [])
    dp = MemoryDatapath(TAG)
    box = want.sandbox("a")
    with pytest.raises(DatapathError):
        dp.attach(box, local("a"))
    dp.reconcile(want)
    assert dp.attach(box, local("a")).startswith("ve")
    clash = LocalEndpoint("a", "other", "c", "10.1.0.9/24", mac_from_ip("10.1.0.9"), "c-a")
    with pytest.raises(DatapathError):
        dp.attach(box, clash)
    dp.detach(box, local("a"))
    dp.attach(box, clash)
