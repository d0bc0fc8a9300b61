"""Hostile table input (issue 16): Lamport times at the wire's bound, entries of owners that
do not exist, floods, forged ownership, forged leaves.

Unit tests drive one membership-gated `TableState` (as the engine runs it); simulator tests
play an attacker who sends plaintext datagrams and streams to one node of a real cluster.
"""

from __future__ import annotations

import random

import pytest
from test_tables_sim import NET, SPREAD, TABLE, join_all, make_sim, owners, state, wait, why

from swimnet.errors import LocalProtocolError
from swimnet.tables import TablesConfig, TableState
from swimnet.wire import Dead, encode_packet, encode_stream
from swimnet.wire.tables import EntryRecord, NetworkEvent, SyncRequest, SyncSection, TableEvent

TOP = 2**64 - 1
ATTACKER = ("10.66.6.6", 4000)


def gated(config: TablesConfig | None = None) -> TableState:
    """A node joined to network "n" where o1..o3 are members (membership said so) and attached."""
    s = TableState("me", config, random.Random(1), membership_gated=True)
    s.join_network("n", 0.0)
    for o in ("o1", "o2", "o3"):
        s.member_alive(o, 0.0)
        s.handle_gossip(NetworkEvent(1, o, "n"), 0.0)
    return s


def clocks(s: TableState) -> tuple[int, int]:
    return s.network_clock.time, s.table_clock.time


# -- Lamport clocks -----------------------------------------------------------------------------


def test_records_out_of_scope_or_refused_never_move_a_clock() -> None:
    s = gated()
    before = clocks(s)
    s.handle_gossip(TableEvent(10**6, "o1", "elsewhere", "t", "k", b"v"), 1.0)  # network not joined
    s.handle_gossip(TableEvent(10**6, "ghost", "n", "t", "k", b"v"), 1.0)  # owner nobody knows
    s.handle_gossip(TableEvent(10**6, "o9", "n", "t", "k", b"v"), 1.0)  # not a member either
    s.handle_gossip(TableEvent(TOP, "o1", "n", "t", "k", b"v"), 1.0)  # implausible
    s.handle_gossip(NetworkEvent(TOP, "o2", "nobody-joined"), 1.0)  # implausible
    assert clocks(s) == before
    assert s.stats["table_implausible_ltime"] == 1 and s.stats["attachment_implausible_ltime"] == 1
    assert s.get("n", "t", "k") is None and s.attachments.get("nobody-joined", "o2") is None
    s.handle_gossip(TableEvent(7, "o1", "n", "t", "k", b"v"), 1.0)  # in scope: witnessed
    assert s.table_clock.time == 7


def test_after_a_time_at_the_bound_every_local_operation_still_works() -> None:
    s = gated()
    s.handle_gossip(NetworkEvent(TOP, "o1", "nobody-joined"), 1.0)
    s.handle_gossip(TableEvent(TOP, "o1", "n", "t", "k", b"v"), 1.0)
    s.put("n", "t", "mine", b"1", 2.0)
    s.delete("n", "t", "mine", 2.0)
    s.join_network("m", 2.0)
    s.leave_network("m", 2.0)
    s.encode_attachments(2.0)  # the push-pull section still encodes
    assert max(clocks(s)) < 100


def test_an_exhausted_clock_refuses_before_storing_anything() -> None:
    s = gated()
    s.network_clock.time = TOP
    with pytest.raises(LocalProtocolError):
        s.join_network("m", 1.0)
    assert not s.is_joined("m") and s.attachments.get("m", "me") is None
    s.table_clock.time = TOP
    with pytest.raises(LocalProtocolError):
        s.put("n", "t", "k", b"v", 1.0)
    assert s.entries("n") == []


def test_a_peers_residual_reap_time_is_never_longer_than_ours() -> None:
    s = gated()
    s.handle_gossip(TableEvent(5, "o1", "n", "t", "k", b"v", deleted=True, residual=2**32 - 1), 1.0)
    (tombstone,) = s.entries("n")
    assert tombstone.reap_at is not None and tombstone.reap_at <= 1.0 + s.config.reap_interval
    s.handle_gossip(NetworkEvent(5, "o2", "n", leaving=True, residual=2**32 - 1), 1.0)
    a = s.attachments.get("n", "o2")
    assert a is not None and a.reap_at is not None and a.reap_at <= 1.0 + s.config.network_reap_interval


# -- owners and caps -----------------------------------------------------------------------------


def test_entries_of_an_owner_membership_never_reported_are_refused() -> None:
    s = gated()
    s.handle_gossip(NetworkEvent(1, "ghost", "n"), 1.0)  # its attachment is held hidden
    for i in range(100):
        s.handle_gossip(TableEvent(2 + i, "ghost", "n", "t", f"k{i}", b"v"), 1.0)
    assert s.entries("n") == []
    assert s.stats["table_owner_unknown"] == 100
    s.member_alive("ghost", 2.0)  # membership learns it: from now on it is an owner
    s.handle_gossip(TableEvent(200, "ghost", "n", "t", "k", b"v"), 2.0)
    assert s.get("n", "t", "k") == b"v"


def test_a_failed_members_entries_are_still_taken_hidden() -> None:
    s = gated()
    s.member_failed("o1", 1.0)
    s.handle_gossip(TableEvent(5, "o1", "n", "t", "k", b"v"), 1.0)
    assert s.get("n", "t", "k") is None and len(s.entries("n")) == 1
    s.member_alive("o1", 2.0)
    assert s.get("n", "t", "k") == b"v"


def test_per_owner_and_per_network_caps() -> None:
    s = gated(TablesConfig(max_entries_per_owner=10, max_entries_per_network=25))
    for i in range(20):
        s.handle_gossip(TableEvent(1 + i, "o1", "n", "t", f"a{i}", b"v"), 1.0)
    assert len(s.items("n", "t")) == 10 and s.stats["table_owner_cap"] == 10
    s.handle_gossip(TableEvent(100, "o1", "n", "t", "a0", b"new"), 1.0)  # an update takes no room
    assert s.get("n", "t", "a0") == b"new"
    s.handle_gossip(TableEvent(101, "o1", "n", "t", "a1", b"", deleted=True, residual=60), 1.0)
    s.handle_gossip(TableEvent(102, "o1", "n", "t", "a19", b"v"), 1.0)  # the delete made room
    assert s.get("n", "t", "a19") == b"v"
    for i in range(10):
        s.handle_gossip(TableEvent(200 + i, "o2", "n", "t", f"b{i}", b"v"), 1.0)
    for i in range(10):
        s.handle_gossip(TableEvent(300 + i, "o3", "n", "t", f"c{i}", b"v"), 1.0)
    assert len(s.entries("n")) == 25 and s.stats["table_network_cap"] == 6
    with pytest.raises(LocalProtocolError):
        s.put("n", "t", "mine", b"v", 1.0)  # own writes obey the same caps as peers'


# -- simulated clusters --------------------------------------------------------------------------


def _everyone_can_still_write(sim: object, names: list[str]) -> None:
    for n in names:
        sim.node(n).table(NET, TABLE).put(f"{n}-after", b"ok")  # type: ignore[attr-defined]
        sim.node(n).join_network("fresh")  # type: ignore[attr-defined]


def test_one_network_event_at_the_clock_limit_breaks_no_node() -> None:
    """A `NetworkEvent` at 2**64 - 1 for a network nobody joined used to be relayed and to
    raise every node's clock to the bound: then put, delete and join_network raised."""
    sim, names = make_sim(4, 1)
    join_all(sim, names)
    sim.inject("n1", encode_packet([NetworkEvent(TOP, "n2", "nobody-joined")]), ATTACKER)
    sim.inject("n1", encode_packet([TableEvent(TOP, "n2", NET, TABLE, "k", b"v")]), ATTACKER)
    sim.run_for(40.0)  # gossip and a push-pull round
    _everyone_can_still_write(sim, names)
    expected = {f"{n}-after": b"ok" for n in names}
    wait(sim, lambda: all(sim.node(n).table(NET, TABLE).items() == expected for n in names), SPREAD, "puts")
    for n in names:
        assert max(clocks(state(sim, n))) < 1000, why(sim, f"{n}'s clocks: {clocks(state(sim, n))}")
    assert state(sim, "n1").stats["attachment_implausible_ltime"] == 1, why(sim, "not counted")


def test_a_flood_for_an_owner_that_does_not_exist_stores_nothing() -> None:
    """1,000,000 entries for a fake owner used to be stored hidden for 30 minutes."""
    sim, names = make_sim(4, 2)
    join_all(sim, names)
    sim.inject("n1", encode_packet([NetworkEvent(1, "ghost", NET)]), ATTACKER)
    records = tuple(EntryRecord(TABLE, f"g{i}", b"x" * 64, "ghost", 1 + i, False) for i in range(20_000))
    request = SyncRequest("n2", 0, (SyncSection(NET, entries=records),))
    sim.call("n1", lambda e: e.handle_stream(encode_stream(request), ATTACKER, sim.now))
    sim.run_for(40.0)
    for n in names:
        assert "ghost" not in owners(sim, n), why(sim, f"{n} stores the ghost's entries")
    assert state(sim, "n1").stats["table_owner_unknown"] == 20_000, why(sim, "not counted")


def test_forged_entries_of_a_live_member_are_capped_and_refuted_by_it() -> None:
    """Entries forged as owned by a live member: at most the per-owner cap is ever held, and
    the owner, who knows its own entries, retracts every one (it never holds them)."""
    sim, names = make_sim(4, 3, tables=TablesConfig(max_entries_per_owner=1000))
    join_all(sim, names)
    sim.node("n3").table(NET, TABLE).put("real", b"v")
    wait(sim, lambda: all(sim.node(n).table(NET, TABLE).get("real") == b"v" for n in names), SPREAD, "put")
    records = tuple(EntryRecord(TABLE, f"forged{i}", b"x", "n3", 100 + i, False) for i in range(5000))
    request = SyncRequest("n2", 0, (SyncSection(NET, entries=records),))  # claims to be n2
    sim.call("n1", lambda e: e.handle_stream(encode_stream(request), ATTACKER, sim.now))
    held = sum(1 for k in sim.node("n1").table(NET, TABLE).items() if k.startswith("forged"))
    assert held == 999, why(sim, f"n1 holds {held} forged entries")  # 1000 live for n3, "real" is one
    assert state(sim, "n1").stats["table_owner_cap"] == 4001, why(sim, "not counted")

    def refuted() -> bool:
        return all(
            not any(k.startswith("forged") for k in sim.node(n).table(NET, TABLE).items()) for n in names
        )

    wait(sim, refuted, 2 * SPREAD, "the owner did not refute the forged entries")
    assert state(sim, "n3").stats["refuted_entry"] >= 999, why(sim, "n3 did not refute")
    assert all(sim.node(n).table(NET, TABLE).get("real") == b"v" for n in names), why(sim, "real lost")


def test_a_forged_leave_hides_the_members_entries_only_until_it_refutes() -> None:
    """`Dead(n2, sender=n2)` forged: n2 refutes it (membership), and its entries, hidden
    meanwhile, are back at once: they used to be dropped and to return 20-30 s later."""
    sim, names = make_sim(5, 4)
    join_all(sim, names)
    for i in range(3):
        sim.node("n2").table(NET, TABLE).put(f"n2-{i}", b"v")
    mine = {f"n2-{i}": b"v" for i in range(3)}
    wait(sim, lambda: all(sim.node(n).table(NET, TABLE).items() == mine for n in names), SPREAD, "puts")
    incarnation = sim.node("n2").local_member.incarnation
    sim.inject("n1", encode_packet([Dead(incarnation, "n2", "n2")]), ATTACKER)
    assert sim.node("n1").table(NET, TABLE).items() == {}, why(sim, "the leave was not applied")
    assert "n2" in owners(sim, "n1"), why(sim, "n2's entries were dropped at once")
    start = sim.now
    wait(sim, lambda: all(sim.node(n).table(NET, TABLE).items() == mine for n in names), 5.0, "not back")
    assert sim.now - start < 5.0
    sim.run_for(60.0)  # past the grace: nothing is dropped, since n2 is alive
    assert all(sim.node(n).table(NET, TABLE).items() == mine for n in names), why(sim, "dropped later")
    assert sim.tables_converged(NET), why(sim, "not converged")
