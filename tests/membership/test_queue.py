"""BroadcastQueue: ordering, byte budget, invalidation, retransmit limit, drop, pruning.

Plus a Hypothesis state machine that checks the queue against a plain reference model.
memberlist's queue_test.go scenarios are ported where they apply (TestTransmitLimited_*).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from swimnet.membership.formulas import retransmit_limit
from swimnet.membership.queue import BroadcastQueue
from swimnet.wire import Suspect, encode_message

BIG = 1 << 30


def msg(tag: str, size: int = 18) -> bytes:
    """A fake encoded broadcast of `size` bytes (>= 8, the smallest message the queue assumes)."""
    return tag.encode().ljust(size, b".")[:size]


class Done:
    """Counts on_done calls per key."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def cb(self, key: str) -> Callable[[], None]:
        def on_done() -> None:
            self.calls[key] += 1

        return on_done


def drain(q: BroadcastQueue, n_nodes: int, rounds: int = 100) -> list[list[bytes]]:
    out = []
    for _ in range(rounds):
        if not len(q):
            break
        out.append(q.take(BIG, 0, n_nodes))
    assert len(q) == 0
    return out


# -- basics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_nodes", [0, 1, 10])
def test_empty_queue_takes_nothing(n_nodes: int) -> None:
    q = BroadcastQueue(3)
    assert len(q) == 0
    assert q.take(BIG, 0, n_nodes) == []
    assert q.take(0, 0, n_nodes) == []


def test_len_and_contains() -> None:
    q = BroadcastQueue(3)
    q.queue("a", msg("a"))
    q.queue("b", msg("b"))
    assert len(q) == 2
    assert "a" in q and "b" in q and "c" not in q


def test_queue_order_memberlist() -> None:
    """memberlist TestTransmitLimited_Queue: newest first; a re-queued key becomes the newest."""
    q = BroadcastQueue(1)
    for key in ("test", "foo", "bar"):
        q.queue(key, msg(key))
    assert len(q) == 3
    assert q.take(BIG, 0, 1) == [msg("bar"), msg("foo"), msg("test")]

    q = BroadcastQueue(1)
    for key in ("test", "foo", "bar", "test"):
        q.queue(key, msg(key))
    assert len(q) == 3
    assert q.take(BIG, 0, 1) == [msg("test"), msg("bar"), msg("foo")]


def test_least_transmitted_first() -> None:
    q = BroadcastQueue(3)
    q.queue("old", msg("old"))
    assert q.take(BIG, 0, 10) == [msg("old")]  # old sent once
    q.queue("new", msg("new"))
    assert q.take(BIG, 0, 10) == [msg("new"), msg("old")]
    q.queue("newer", msg("newer"))
    # newer: 0 sends, new: 1, old: 2
    assert q.take(BIG, 0, 10) == [msg("newer"), msg("new"), msg("old")]


def test_least_transmitted_first_when_budget_is_short() -> None:
    q = BroadcastQueue(3)
    q.queue("a", msg("a"))
    q.take(BIG, 0, 10)
    q.take(BIG, 0, 10)  # a: 2 sends
    q.queue("b", msg("b"))
    q.take(BIG, 0, 10)  # a: 3, b: 1
    q.queue("c", msg("c"))  # c: 0
    assert q.take(18, 0, 10) == [msg("c")]  # room for one: the least sent
    assert q.take(36, 0, 10) == [msg("c"), msg("b")]  # b and c sent once each, c is newer


def test_newest_first_among_equally_transmitted_after_one_send() -> None:
    q = BroadcastQueue(3)
    q.queue("a", msg("a"))
    q.queue("b", msg("b"))
    assert q.take(BIG, 0, 10) == [msg("b"), msg("a")]
    # both sent once; b is still the newer one
    assert q.take(BIG, 0, 10) == [msg("b"), msg("a")]


def test_newest_first_among_equally_transmitted_promoted_separately() -> None:
    q = BroadcastQueue(3)
    q.queue("a", msg("a"))
    q.queue("b", msg("b"))
    assert q.take(18, 0, 10) == [msg("b")]  # room for one: the newest
    assert q.take(18, 0, 10) == [msg("a")]
    # both sent once; b is the newer one
    assert q.take(18, 0, 10) == [msg("b")]


# -- byte budget --------------------------------------------------------------------------------


def test_budget_memberlist_get_broadcasts() -> None:
    """memberlist TestTransmitLimited_GetBroadcasts: 4 x 18 bytes, limit 80."""
    q = BroadcastQueue(3)
    for i, key in enumerate(("test", "foo", "bar", "baz"), start=1):
        q.queue(key, f"{i}. this is a test.".encode())
    assert len(q.take(80, 2, 10)) == 4  # 4 x 20 = 80
    assert len(q.take(80, 3, 10)) == 3  # 4 x 21 = 84 > 80


def test_budget_memberlist_get_broadcasts_limit() -> None:
    """memberlist TestTransmitLimited_GetBroadcasts_Limit: mult 1, 10 nodes: 2 sends each."""
    q = BroadcastQueue(1)
    assert retransmit_limit(1, 10) == 2
    for i, key in enumerate(("test", "foo", "bar", "baz"), start=1):
        q.queue(key, f"{i}. this is a test.".encode())
    assert len(q.take(80, 3, 10)) == 3
    assert len(q.take(80, 3, 10)) == 3
    assert len(q.take(80, 3, 10)) == 2  # only two not expired
    assert q.take(80, 3, 10) == []
    assert len(q) == 0


@pytest.mark.parametrize("budget", [0, 1, 17, 18, 19, 35, 36, 37, 54])
def test_budget_exact_fit(budget: int) -> None:
    q = BroadcastQueue(3)
    for key in "abc":
        q.queue(key, msg(key))
    taken = q.take(budget, 0, 10)
    assert len(taken) == min(budget // 18, 3)
    assert sum(map(len, taken)) <= budget


def test_budget_counts_per_item_overhead() -> None:
    q = BroadcastQueue(3)
    for key in "abc":
        q.queue(key, msg(key))
    assert len(q.take(3 * 18 + 3 * 5, 5, 10)) == 3
    assert len(q.take(3 * 18 + 3 * 5 - 1, 5, 10)) == 2


def test_a_broadcast_too_large_is_skipped_not_blocking() -> None:
    q = BroadcastQueue(3)
    q.queue("small-old", msg("s", 10))
    q.queue("huge-new", msg("h", 1000))
    assert q.take(100, 0, 10) == [msg("s", 10)]
    assert "huge-new" in q
    assert q.take(2000, 0, 10) == [msg("h", 1000), msg("s", 10)]


def test_a_seven_byte_broadcast_fills_the_last_seven_bytes() -> None:
    small = encode_message(Suspect(0, "a", "b"))
    assert len(small) == 7
    q = BroadcastQueue(3)
    q.queue("small", small)
    q.queue("big", msg("big", 10))
    assert q.take(17, 0, 10) == [msg("big", 10), small]


# -- invalidation -------------------------------------------------------------------------------


def test_same_key_replaces_and_finishes_the_old_one() -> None:
    done = Done()
    q = BroadcastQueue(3)
    q.queue("node-1", msg("v1"), done.cb("v1"))
    q.queue("node-2", msg("other"), done.cb("other"))
    q.queue("node-1", msg("v2"), done.cb("v2"))
    assert len(q) == 2
    assert done.calls == {"v1": 1}
    assert q.take(BIG, 0, 10) == [msg("v2"), msg("other")]
    assert done.calls == {"v1": 1}


def test_replacement_starts_with_no_transmissions() -> None:
    done = Done()
    q = BroadcastQueue(1)  # 10 nodes: 2 sends
    q.queue("k", msg("v1"), done.cb("v1"))
    assert q.take(BIG, 0, 10) == [msg("v1")]
    q.queue("k", msg("v2"), done.cb("v2"))
    assert done.calls == {"v1": 1}
    assert q.take(BIG, 0, 10) == [msg("v2")]
    assert q.take(BIG, 0, 10) == [msg("v2")]
    assert q.take(BIG, 0, 10) == []
    assert done.calls == {"v1": 1, "v2": 1}


def test_replacement_without_callback() -> None:
    q = BroadcastQueue(3)
    q.queue("k", msg("v1"))
    q.queue("k", msg("v2"))
    assert q.take(BIG, 0, 10) == [msg("v2")]


def test_a_key_is_free_again_after_its_broadcast_is_done() -> None:
    done = Done()
    q = BroadcastQueue(1)
    q.queue("k", msg("v1"), done.cb("v1"))
    drain(q, 1)
    q.queue("k", msg("v2"), done.cb("v2"))
    assert done.calls == {"v1": 1}
    assert q.take(BIG, 0, 1) == [msg("v2")]


# -- retransmit limit ---------------------------------------------------------------------------


@pytest.mark.parametrize(("mult", "n_nodes"), [(1, 1), (3, 1), (3, 10), (4, 10), (3, 100), (4, 1000)])
def test_each_broadcast_is_sent_exactly_limit_times(mult: int, n_nodes: int) -> None:
    done = Done()
    q = BroadcastQueue(mult)
    for key in "abcde":
        q.queue(key, msg(key), done.cb(key))
    limit = retransmit_limit(mult, n_nodes)
    rounds = drain(q, n_nodes)
    assert len(rounds) == limit
    sent = Counter(data for batch in rounds for data in batch)
    assert sent == {msg(key): limit for key in "abcde"}
    assert done.calls == {key: 1 for key in "abcde"}


def test_on_done_runs_right_after_the_last_transmission() -> None:
    done = Done()
    q = BroadcastQueue(2)  # 5 nodes: 2 sends
    q.queue("a", msg("a"), done.cb("a"))
    q.take(BIG, 0, 5)
    assert done.calls == {}
    assert "a" in q
    q.take(BIG, 0, 5)
    assert done.calls == {"a": 1}
    assert "a" not in q
    assert q.take(BIG, 0, 5) == []
    assert done.calls == {"a": 1}


def test_the_limit_follows_the_current_cluster_size() -> None:
    q = BroadcastQueue(3)
    q.queue("a", msg("a"))
    q.take(BIG, 0, 1000)
    q.take(BIG, 0, 1000)  # 2 of 12 sends
    q.take(BIG, 0, 1)  # the cluster shrank: limit 3, this was the 3rd send
    assert "a" not in q
    q.queue("b", msg("b"))
    sent = [q.take(BIG, 0, 1) for _ in range(5)]
    assert sent == [[msg("b")]] * 3 + [[], []]
    assert "b" not in q


def test_a_cluster_of_zero_still_sends_once() -> None:
    """retransmit_limit(m, 0) == 0; like memberlist, a broadcast that was taken is sent once."""
    done = Done()
    q = BroadcastQueue(3)
    q.queue("a", msg("a"), done.cb("a"))
    assert q.take(BIG, 0, 0) == [msg("a")]
    assert "a" not in q
    assert done.calls == {"a": 1}


# -- drop ---------------------------------------------------------------------------------------


def test_drop_forgets_without_callback() -> None:
    done = Done()
    q = BroadcastQueue(3)
    q.queue("a", msg("a"), done.cb("a"))
    q.queue("b", msg("b"), done.cb("b"))
    q.take(BIG, 0, 10)
    q.drop("a")
    q.drop("missing")
    assert "a" not in q and len(q) == 1
    assert q.take(BIG, 0, 10) == [msg("b")]
    assert done.calls == {}
    q.queue("a", msg("a2"), done.cb("a2"))  # the key is free
    assert q.take(BIG, 0, 10) == [msg("a2"), msg("b")]


# -- pruning ------------------------------------------------------------------------------------


def test_prune_keeps_the_newest_memberlist() -> None:
    """memberlist TestTransmitLimited_Prune: keep 2 of 4; the two oldest are finished."""
    done = Done()
    q = BroadcastQueue(1, max_len=2)
    for key in ("test", "foo", "bar", "baz"):
        q.queue(key, msg(key), done.cb(key))
    assert len(q) == 2
    assert q.pruned == 2
    assert done.calls == {"test": 1, "foo": 1}
    assert q.take(BIG, 0, 10) == [msg("baz"), msg("bar")]


def test_prune_removes_the_most_transmitted_first() -> None:
    done = Done()
    q = BroadcastQueue(3, max_len=3)
    q.queue("a", msg("a"), done.cb("a"))
    q.take(BIG, 0, 10)
    q.take(BIG, 0, 10)  # a: 2 sends
    q.queue("b", msg("b"), done.cb("b"))
    q.take(BIG, 0, 10)  # a: 3, b: 1
    q.queue("c", msg("c"), done.cb("c"))
    assert q.pruned == 0
    q.queue("d", msg("d"), done.cb("d"))
    assert "a" not in q and q.pruned == 1 and done.calls == {"a": 1}
    q.queue("e", msg("e"), done.cb("e"))
    assert "b" not in q and q.pruned == 2 and done.calls == {"a": 1, "b": 1}
    q.queue("f", msg("f"), done.cb("f"))
    assert "c" not in q and q.pruned == 3  # all at 0 sends: the oldest goes
    assert q.take(BIG, 0, 10) == [msg("f"), msg("e"), msg("d")]


def test_replacing_at_max_len_prunes_nothing() -> None:
    q = BroadcastQueue(3, max_len=2)
    q.queue("a", msg("a"))
    q.queue("b", msg("b"))
    q.queue("a", msg("a2"))
    assert len(q) == 2 and q.pruned == 0


# -- state machine against a reference model ------------------------------------------------------

KEYS = st.sampled_from("abcdefgh")


@dataclass
class Entry:
    serial: int
    key: str
    data: bytes
    callback: bool
    sends: int = 0
    fate: str = ""  # "", "done", "invalidated", "dropped", "pruned"


@dataclass
class Model:
    live: dict[str, Entry] = field(default_factory=dict)
    all: list[Entry] = field(default_factory=list)


class QueueMachine(RuleBasedStateMachine):
    """The queue against a dict of live broadcasts with send counts.

    Checked: sizes; returned broadcasts are live and distinct; the byte budget; least
    transmitted first (a broadcast that still fits the leftover budget was not passed over
    in favour of a more transmitted one); on_done exactly once for invalidated, pruned and
    finished broadcasts and never for dropped ones; pruning takes the most transmitted;
    every broadcast that runs its course is sent exactly `limit` times.
    """

    STRICT_AGE_ORDER = False
    """Also check 'newest first among equals' (and 'oldest pruned first among equals')."""

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.calls: Counter[int] = Counter()
        self.serial = 0
        self.pruned = 0

    @initialize(
        mult=st.integers(1, 3),
        n_nodes=st.sampled_from([1, 5, 10, 50]),
        max_len=st.sampled_from([3, 5, 100]),
    )
    def setup(self, mult: int, n_nodes: int, max_len: int) -> None:
        self.q = BroadcastQueue(mult, max_len=max_len)
        self.n_nodes = n_nodes
        self.limit = retransmit_limit(mult, n_nodes)
        self.max_len = max_len

    def _rank(self, e: Entry) -> tuple[int, int]:
        """Sending order: least sent first, newest first among equals; pruning takes the last."""
        return (e.sends, -e.serial) if self.STRICT_AGE_ORDER else (e.sends, 0)

    def _finish(self, e: Entry, fate: str) -> None:
        e.fate = fate
        del self.model.live[e.key]

    @rule(key=KEYS, size=st.integers(8, 64), callback=st.booleans())
    def queue(self, key: str, size: int, callback: bool) -> None:
        self.serial += 1
        data = self.serial.to_bytes(4, "big").ljust(size, b"\x00")
        entry = Entry(self.serial, key, data, callback)

        def on_done(serial: int = self.serial) -> None:
            self.calls[serial] += 1

        before = dict(self.model.live)
        old = self.model.live.get(key)
        if old is not None:
            self._finish(old, "invalidated")
        self.q.queue(key, data, on_done if callback else None)
        if old is not None and old.callback:
            assert self.calls[old.serial] == 1
        self.model.live[key] = entry
        self.model.all.append(entry)

        # pruning: whatever the queue no longer holds was pruned, the most transmitted first
        gone = [e for k, e in self.model.live.items() if k not in self.q]
        assert len(gone) == max(0, len(before) + (old is None) - self.max_len)
        for e in gone:
            self._finish(e, "pruned")
            self.pruned += 1
            if e.callback:
                assert self.calls[e.serial] == 1
        for e in gone:
            for kept in self.model.live.values():
                assert self._rank(e) >= self._rank(kept), (e, kept)

    @precondition(lambda self: len(self.model.live) > 0)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model.live)))
        entry = self.model.live[key]
        self.q.drop(key)
        self._finish(entry, "dropped")

    @rule(key=KEYS)
    def drop_any(self, key: str) -> None:
        entry = self.model.live.get(key)
        self.q.drop(key)
        if entry is not None:
            self._finish(entry, "dropped")

    @rule(budget=st.integers(0, 300), overhead=st.integers(0, 4))
    def take(self, budget: int, overhead: int) -> None:
        self._take(budget, overhead)

    @rule(overhead=st.integers(0, 4))
    def take_all(self, overhead: int) -> None:
        self._take(BIG, overhead)
        assert all(e.sends >= 1 for e in self.model.live.values())

    def _take(self, budget: int, overhead: int) -> list[Entry]:
        live_before = len(self.model.live)
        by_data = {e.data: e for e in self.model.live.values()}
        result = self.q.take(budget, overhead, self.n_nodes)
        assert len(set(result)) == len(result)
        taken = [by_data[d] for d in result]  # KeyError: returned something not live
        cost = sum(len(e.data) + overhead for e in taken)
        assert cost <= budget
        leftover = budget - cost
        ranks = [self._rank(e) for e in taken]
        assert ranks == sorted(ranks), "least transmitted first (newest first among equals if strict)"
        for other in self.model.live.values():
            if other in taken or len(other.data) + overhead > leftover:
                continue
            # `other` fits even now, so the queue never reached it: all it took rank before it
            for e in taken:
                assert self._rank(e) <= self._rank(other), (e, other)
        if budget >= BIG:
            assert len(taken) == live_before
        for e in taken:
            e.sends += 1
            if e.sends >= self.limit:
                self._finish(e, "done")
                if e.callback:
                    assert self.calls[e.serial] == 1
        return taken

    @invariant()
    def same_contents(self) -> None:
        if not hasattr(self, "q"):
            return
        assert len(self.q) == len(self.model.live)
        assert all(k in self.q for k in self.model.live)
        assert self.q.pruned == self.pruned

    @invariant()
    def callbacks_at_most_once(self) -> None:
        assert all(count == 1 for count in self.calls.values())

    def teardown(self) -> None:
        if not hasattr(self, "q"):
            return
        # enough large takes: everything still queued runs its course
        for _ in range(self.limit):
            self._take(BIG, 0)
        assert len(self.q) == 0 and not self.model.live
        for e in self.model.all:
            assert e.fate, e
            if e.fate == "done":
                assert e.sends == self.limit, e
            else:
                assert e.sends < self.limit, e
            expected_calls = int(e.callback and e.fate != "dropped")
            assert self.calls[e.serial] == expected_calls, e


class StrictAgeOrderMachine(QueueMachine):
    STRICT_AGE_ORDER = True


STATEFUL = settings(
    max_examples=300, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = STATEFUL

TestStrictAgeOrderMachine = StrictAgeOrderMachine.TestCase
TestStrictAgeOrderMachine.settings = STATEFUL
