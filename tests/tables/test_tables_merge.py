"""Merge laws and the local API of one TableState."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimnet.errors import ConfigError, LocalProtocolError
from swimnet.tables import ChangeKind, TableChange, TablesConfig, TableState
from swimnet.tables.entry import make_entry, wins
from swimnet.wire.codec import decode_packet, pack_packet
from swimnet.wire.tables import EntryRecord, NetworkEvent, TableEvent

OWNERS = ["o1", "o2", "o3"]


def member(name: str = "me") -> TableState:
    """A node joined to network "n" that knows o1..o3 are attached."""
    s = TableState(name, rng=random.Random(1))
    s.join_network("n", 0.0)
    for o in OWNERS:
        s.handle_gossip(NetworkEvent(1, o, "n"), 0.0)
    return s


def state_of(s: TableState) -> set[tuple[object, ...]]:
    return {(e.table, e.key, e.value, e.owner, e.ltime, e.deleted) for e in s.entries("n")}


events = st.builds(
    TableEvent,
    ltime=st.integers(1, 6),
    owner=st.sampled_from(OWNERS),
    network=st.just("n"),
    table=st.just("t"),
    key=st.sampled_from(["a", "b", "c"]),
    value=st.sampled_from([b"", b"x", b"y"]),
    deleted=st.booleans(),
    residual=st.just(100),
)


@settings(max_examples=200)
@given(st.lists(events, max_size=12), st.randoms(use_true_random=False))
def test_apply_is_commutative_and_idempotent(batch: list[TableEvent], rnd: random.Random) -> None:
    a, b = member(), member()
    for e in batch:
        a.handle_gossip(e, 0.0)
    shuffled = batch + rnd.sample(batch, len(batch))  # another order, every event twice
    rnd.shuffle(shuffled)
    for e in shuffled:
        b.handle_gossip(e, 0.0)
    assert state_of(a) == state_of(b)
    assert a.items("n", "t") == b.items("n", "t")
    assert a.digest_hash("n") == b.digest_hash("n")


@settings(max_examples=200)
@given(st.lists(events, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_winner_is_the_greatest_version_and_deletes_never_resurrect(
    batch: list[TableEvent], rnd: random.Random
) -> None:
    s = member()
    rnd.shuffle(batch)
    for e in batch:
        s.handle_gossip(e, 0.0)
    for key in {e.key for e in batch}:
        best = max((e for e in batch if e.key == key), key=lambda e: (e.ltime, e.owner, e.deleted, e.value))
        assert s.get("n", "t", key) == (None if best.deleted else best.value)


def test_equal_ltime_tie_break() -> None:
    s = member()
    s.handle_gossip(TableEvent(5, "o1", "n", "t", "k", b"z"), 0.0)
    s.handle_gossip(TableEvent(5, "o2", "n", "t", "k", b"a"), 0.0)  # greater owner wins
    assert s.get("n", "t", "k") == b"a"
    s.handle_gossip(TableEvent(5, "o2", "n", "t", "k", b"b"), 0.0)  # then greater value
    assert s.get("n", "t", "k") == b"b"
    s.handle_gossip(TableEvent(5, "o2", "n", "t", "k", b"", deleted=True, residual=9), 0.0)  # then tombstone
    assert s.get("n", "t", "k") is None
    s.handle_gossip(TableEvent(5, "o2", "n", "t", "k", b"zz"), 0.0)
    assert s.get("n", "t", "k") is None
    assert not wins((5, "o2", True, b""), make_entry("t", "k", b"", "o2", 5, True, None))


def test_local_write_goes_past_witnessed_time() -> None:
    s = member()
    s.handle_gossip(TableEvent(1000, "o1", "n", "t", "k", b"remote"), 0.0)
    s.put("n", "t", "k", b"local", 1.0)
    assert s.get("n", "t", "k") == b"local"
    assert [e.ltime for e in s.entries("n")] == [1001]


def test_changes_are_state_derived() -> None:
    s = member()
    c = s.handle_gossip
    assert c(TableEvent(1, "o1", "n", "t", "k", b"v", deleted=True, residual=5), 0.0) == []  # unknown key
    assert c(TableEvent(2, "o1", "n", "t", "k", b"v"), 0.0) == [
        TableChange(ChangeKind.CREATED, "n", "t", "k", b"v", "o1")
    ]
    assert c(TableEvent(3, "o1", "n", "t", "k", b"v"), 0.0) == []  # same value and owner
    assert c(TableEvent(4, "o2", "n", "t", "k", b"v"), 0.0) == [
        TableChange(ChangeKind.UPDATED, "n", "t", "k", b"v", "o2")
    ]
    assert c(TableEvent(5, "o1", "n", "t", "k", b"", deleted=True, residual=5), 0.0) == [
        TableChange(ChangeKind.DELETED, "n", "t", "k", b"v", "o2")
    ]
    assert s.snapshot("n", "t") == []
    s.put("n", "t", "mine", b"1", 0.0)
    assert s.snapshot("n", "t") == [TableChange(ChangeKind.CREATED, "n", "t", "mine", b"1", "me")]


def test_scope_checks_count_and_drop() -> None:
    s = member()
    s.handle_gossip(TableEvent(1, "o1", "other", "t", "k", b"v"), 0.0)
    s.handle_gossip(TableEvent(1, "stranger", "n", "t", "k", b"v"), 0.0)
    s.handle_gossip(NetworkEvent(2, "o3", "n", leaving=True, residual=10), 0.0)
    s.handle_gossip(TableEvent(1, "o3", "n", "t", "k", b"v"), 0.0)
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "k", b"v", deleted=True, residual=0), 0.0)
    assert s.entries("n") == []
    assert s.stats["table_not_joined"] == 1
    assert s.stats["table_owner_not_attached"] == 2
    assert s.stats["table_expired_tombstone"] == 1


def test_owner_leaving_a_network_drops_its_entries_without_tombstones() -> None:
    s = member()
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "a", b"1"), 0.0)
    s.handle_gossip(TableEvent(2, "o2", "n", "t", "b", b"2"), 0.0)
    changes = s.handle_gossip(NetworkEvent(2, "o1", "n", leaving=True, residual=10), 0.0)
    assert changes == [TableChange(ChangeKind.DELETED, "n", "t", "a", b"1", "o1")]
    assert [e.key for e in s.entries("n")] == ["b"]
    # a late, older join does not undo the leave; a newer one does
    s.handle_gossip(NetworkEvent(1, "o1", "n"), 0.0)
    assert "o1" not in s.network_peers("n")
    s.handle_gossip(NetworkEvent(3, "o1", "n"), 0.0)
    assert "o1" in s.network_peers("n")


def test_leave_network_drops_everything() -> None:
    s = member()
    s.put("n", "t", "mine", b"1", 0.0)
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "theirs", b"2"), 0.0)
    changes = s.leave_network("n", 0.0)
    assert {c.key for c in changes} == {"mine", "theirs"}
    assert all(c.kind is ChangeKind.DELETED for c in changes)
    assert s.entries("n") == [] and s.items("n", "t") == {}
    with pytest.raises(LocalProtocolError):
        s.put("n", "t", "k", b"", 0.0)
    s.handle_gossip(TableEvent(9, "o1", "n", "t", "x", b"2"), 0.0)
    assert s.stats["table_not_joined"] == 1


def test_local_api_errors() -> None:
    s = TableState("me")
    with pytest.raises(LocalProtocolError):
        s.put("n", "t", "k", b"v", 0.0)
    with pytest.raises(LocalProtocolError):
        s.delete("n", "t", "k", 0.0)
    s.join_network("n", 0.0)
    for bad in [("", "k", b""), ("t", "", b""), ("t", "k" * 513, b""), ("t", "k", b"v" * 8193)]:
        with pytest.raises(LocalProtocolError):
            s.put("n", *bad, 0.0)
    assert s.delete("n", "t", "absent", 0.0) == []
    assert s.join_network("n", 0.0) == []  # idempotent
    assert s.leave_network("never", 0.0) == []
    with pytest.raises(ConfigError):
        TablesConfig(reap_interval=0)


def test_own_echo_is_refuted_or_adopted() -> None:
    s = member()
    # a live entry of ours we do not hold: retracted at its own time
    s.handle_gossip(TableEvent(50, "me", "n", "t", "old", b"stale"), 0.0)
    [e] = s.entries("n")
    assert (e.key, e.deleted, e.owner, e.ltime) == ("old", True, "me", 50)
    retraction = [m for m in decode_packet(pack_packet(s.gossip_payloads("n", 1400, 2)))]
    assert retraction == [TableEvent(50, "me", "n", "t", "old", b"stale", deleted=True, residual=1800)]
    # ... which beats the echo and nothing that beat it
    s.handle_gossip(TableEvent(50, "o3", "n", "t", "old", b"other"), 0.0)
    assert s.get("n", "t", "old") == b"other"
    # a tombstone of ours we do not hold: true, adopted
    s.handle_gossip(TableEvent(60, "me", "n", "t", "gone", b"", deleted=True, residual=5), 0.0)
    assert s.stats["refuted_entry"] == 1 and not s.items("n", "t").get("gone")
    # a previous life's version of an entry we hold: ours re-issued past it
    s.put("n", "t", "k", b"now", 0.0)
    s.handle_gossip(TableEvent(500, "me", "n", "t", "k", b"then"), 0.0)
    assert s.get("n", "t", "k") == b"now"
    assert s.stats["refuted_entry"] == 2
    assert max(e.ltime for e in s.entries("n") if e.key == "k") > 500
    # a claim that we are not in a network we are in
    before = s.attachments.get("n", "me")
    assert before is not None
    s.handle_gossip(NetworkEvent(before.ltime + 5, "me", "n", leaving=True, residual=10), 0.0)
    after = s.attachments.get("n", "me")
    assert after is not None and not after.leaving and after.ltime > before.ltime + 5
    assert s.stats["refuted_attachment"] == 1


def test_failed_member_is_hidden_then_restored() -> None:
    s = member()
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "k", b"v"), 0.0)
    digest = s.digest_hash("n")
    assert [c.kind for c in s.member_failed("o1", 10.0)] == [ChangeKind.DELETED]
    assert s.get("n", "t", "k") is None and s.digest_hash("n") == (0, 0)
    assert "o1" not in s.network_peers("n")
    assert [c.kind for c in s.member_alive("o1", 20.0)] == [ChangeKind.CREATED]
    assert s.get("n", "t", "k") == b"v" and s.digest_hash("n") == digest


def test_reaping_and_deadlines() -> None:
    cfg = TablesConfig(reap_interval=30.0, network_reap_interval=40.0, node_reap_interval=100.0)
    s = TableState("me", cfg)
    s.join_network("n", 0.0)
    s.handle_gossip(NetworkEvent(1, "o1", "n"), 0.0)
    s.handle_gossip(NetworkEvent(1, "o2", "n"), 0.0)
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "a", b"1"), 0.0)
    s.put("n", "t", "b", b"2", 0.0)
    s.delete("n", "t", "b", 5.0)
    assert s.next_deadline() == 35.0
    s.member_failed("o1", 10.0)
    s.handle_gossip(NetworkEvent(2, "o2", "n", leaving=True, residual=20), 10.0)
    assert s.next_deadline() == 30.0  # o2's leaving attachment
    assert s.reap(29.9) == [] and len(s.entries("n")) == 2
    s.reap(30.0)
    assert s.next_deadline() == 35.0
    assert s.attachments.get("n", "o2") is None
    s.reap(35.0)
    assert [e.key for e in s.entries("n")] == ["a"]  # the tombstone went; o1 still hidden
    assert s.next_deadline() == 40.0
    s.reap(40.0)
    assert s.entries("n") == [] and s.attachments.get("n", "o1") is None
    # o1 is departed now: its late events are refused until node_reap_interval passes
    s.handle_gossip(NetworkEvent(3, "o1", "n"), 41.0)
    assert s.stats["attachment_node_departed"] == 1
    assert s.next_deadline() == 140.0
    s.reap(140.0)
    assert s.next_deadline() is None
    s.handle_gossip(NetworkEvent(3, "o1", "n"), 141.0)
    assert s.network_peers("n") == ["o1"]


def test_member_left_removes_everything_of_the_node_after_a_grace() -> None:
    s = member()
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "k", b"v"), 0.0)
    assert [c.kind for c in s.member_left("o1", 1.0)] == [ChangeKind.DELETED]
    assert s.get("n", "t", "k") is None  # hidden at once, dropped after the grace
    later = 1.0 + s.config.left_grace_interval
    assert s.next_deadline() == later
    s.reap(later)
    assert s.entries("n") == [] and s.attachments.get("n", "o1") is None
    s.handle_gossip(TableEvent(2, "o1", "n", "t", "k", b"v"), later)
    assert s.entries("n") == []
    s.member_alive("o1", later + 1)  # it came back: accepted again once attached
    s.handle_gossip(NetworkEvent(5, "o1", "n"), later + 1)
    s.handle_gossip(TableEvent(2, "o1", "n", "t", "k", b"v"), later + 1)
    assert s.get("n", "t", "k") == b"v"


def test_a_leave_refuted_within_the_grace_restores_the_entries_at_once() -> None:
    s = member()
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "k", b"v"), 0.0)
    s.member_left("o1", 1.0)  # e.g. a forged Dead(o1, sender=o1)
    assert s.get("n", "t", "k") is None
    assert [c.kind for c in s.member_alive("o1", 3.0)] == [ChangeKind.CREATED]  # o1 refuted it
    assert s.get("n", "t", "k") == b"v"
    s.reap(1.0 + s.config.left_grace_interval)
    assert s.get("n", "t", "k") == b"v"


def test_push_pull_user_state() -> None:
    a, b = member("a"), TableState("b")
    b.join_network("m", 0.0)
    a.handle_gossip(NetworkEvent(7, "o3", "n", leaving=True, residual=60), 0.0)
    changes = b.merge_attachments(a.encode_attachments(10.0), 10.0)
    assert changes == []
    assert b.network_peers("n") == ["a", "o1", "o2"]
    left = b.attachments.get("n", "o3")
    assert left is not None and left.leaving and left.reap_at == 60.0
    a.merge_attachments(b.encode_attachments(10.0), 10.0)
    assert a.network_peers("m") == ["b"]
    for junk in (b"\x02garbage", b"\x02\x91\x01", b"\x07\x90"):
        assert b.merge_attachments(junk, 0.0) == []
    assert b.stats["bad_attachment_state"] == 3
    assert b.merge_attachments(b"", 0.0) == []


def test_gossip_queues_own_first_and_newest_only() -> None:
    s = member()
    s.handle_gossip(TableEvent(1, "o1", "n", "t", "relayed", b"r"), 0.0)
    s.put("n", "t", "own", b"1", 0.0)
    s.put("n", "t", "own", b"2", 0.0)  # replaces the queued version
    payloads = s.gossip_payloads("n", 1400, 2)
    decoded = decode_packet(pack_packet(payloads))
    assert [(m.key, m.value) for m in decoded if isinstance(m, TableEvent)] == [
        ("own", b"2"),
        ("relayed", b"r"),
    ]
    # a newer relayed version of our key replaces our queued one
    s.put("n", "t", "k", b"mine", 0.0)
    s.handle_gossip(TableEvent(100, "o1", "n", "t", "k", b"newer"), 0.0)
    decoded = decode_packet(pack_packet(s.gossip_payloads("n", 1400, 2)))
    assert ("k", b"mine") not in [(m.key, m.value) for m in decoded if isinstance(m, TableEvent)]
    assert s.gossip_payloads("lonely", 1400, 2) == []


def test_oversized_events_are_left_to_sync() -> None:
    s = TableState("me", TablesConfig(max_broadcast_size=100))
    s.join_network("n", 0.0)
    s.handle_gossip(NetworkEvent(1, "o1", "n"), 0.0)
    s.put("n", "t", "k", b"v" * 200, 0.0)
    assert s.gossip_payloads("n", 1400, 2) == [] and s.stats["oversized_broadcast"] == 1


def test_anti_entropy_targets_cover_each_network_once() -> None:
    s = TableState("me", rng=random.Random(3))
    for net in ["n1", "n2", "n3"]:
        s.join_network(net, 0.0)
    for node, net in [("a", "n1"), ("a", "n2"), ("b", "n2"), ("c", "n3")]:
        s.handle_gossip(NetworkEvent(1, node, net), 0.0)
    plan = s.anti_entropy_targets()
    covered = [net for _, nets in plan for net in nets]
    assert sorted(covered) == ["n1", "n2", "n3"]
    for peer, nets in plan:
        assert all(peer in s.network_peers(net) for net in nets)


def test_a_refused_owners_newer_version_still_retires_the_older_one() -> None:
    """A departed owner's version is not stored, yet what it beats is dropped (the nodes that
    took it hide it), and the clock moves past it so our next write beats it."""
    s = member()
    s.handle_gossip(TableEvent(3, "o2", "n", "t", "k", b"old"), 0.0)
    s.handle_gossip(TableEvent(1, "o2", "n", "t", "other", b"x"), 0.0)
    s.member_failed("o1", 0.0)
    s.reap(s.config.reap_interval)  # o1 departed
    now = s.config.reap_interval + 1.0
    s.handle_gossip(TableEvent(2, "o1", "n", "t", "k", b"w"), now)  # older: nothing happens
    assert s.get("n", "t", "k") == b"old" and s.stats["table_superseded"] == 0
    changes = s.handle_gossip(TableEvent(7, "o1", "n", "t", "k", b"w"), now)
    assert changes == [TableChange(ChangeKind.DELETED, "n", "t", "k", b"old", "o2")]
    assert state_of(s) == {("t", "other", b"x", "o2", 1, False)}
    assert s.stats["table_owner_departed"] == 2 and s.stats["table_superseded"] == 1
    assert s.table_clock.time >= 7
    s.handle_gossip(TableEvent(2**41, "o1", "n", "t", "other", b"w", deleted=True), now)  # implausible
    assert s.get("n", "t", "other") == b"x" and s.stats["table_implausible_ltime"] == 1


def test_a_version_of_an_owner_membership_has_not_reported_retires_nothing() -> None:
    """It may be a new member's (membership reports it soon, and sync brings its versions):
    the older version stays shown meanwhile rather than vanish."""
    s = TableState("me", rng=random.Random(1), membership_gated=True)
    s.join_network("n", 0.0)
    s.member_alive("o1", 0.0)
    s.handle_gossip(NetworkEvent(1, "o1", "n"), 0.0)
    s.handle_gossip(TableEvent(3, "o1", "n", "t", "k", b"old"), 0.0)
    s.handle_gossip(TableEvent(4, "newcomer", "n", "t", "k", b"w", deleted=True), 0.0)
    assert s.get("n", "t", "k") == b"old" and s.stats["table_owner_unknown"] == 1


def test_hidden_winner_is_a_failed_owners_version_that_beats_the_record() -> None:
    s = member()
    s.handle_gossip(TableEvent(5, "o1", "n", "t", "k", b"v"), 0.0)
    older = EntryRecord("t", "k", b"x", "o2", 4, False)
    assert s.hidden_winner("n", older) is None  # o1 is not failed: the digest carries it
    s.member_failed("o1", 1.0)
    (hidden,) = s.entries("n")
    assert s.hidden_winner("n", older) == hidden
    assert s.hidden_winner("n", EntryRecord("t", "k", b"v", "o1", 5, False)) is None  # the same
    assert s.hidden_winner("n", EntryRecord("t", "k", b"v", "o1", 5, True)) is None  # newer
    assert s.hidden_winner("n", EntryRecord("t", "other", b"v", "o2", 1, False)) is None
    assert s.hidden_winner("elsewhere", older) is None
