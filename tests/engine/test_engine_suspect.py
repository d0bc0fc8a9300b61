"""Suspect messages on one engine (memberlist state_test.go: TestMemberList_SuspectNode_*)."""

from __future__ import annotations

from engine_helpers import SELF, SELF_ADDR, Harness, ack_pings

from swimnet.membership.events import MemberFailed, MemberSuspected
from swimnet.membership.member import Member
from swimnet.wire import Alive, Dead, State, Suspect

ADDR1 = ("127.0.0.1", 8000)


def _with_test_member(incarnation: int = 1, others: int = 0) -> Harness:
    h = Harness(seed=5)
    h.add_peers([f"p{i}" for i in range(others)])
    h.feed([Alive(incarnation, "test", ADDR1)])
    h.events()
    h.drain_broadcasts()
    return h


def test_suspect_about_an_unknown_node_is_ignored() -> None:
    h = Harness()
    h.feed([Suspect(1, "test", "other")])
    assert h.state("test") is None
    assert h.events() == []
    assert h.broadcasts() == []


def test_suspect_then_dead_at_the_timeout() -> None:
    h = _with_test_member()
    t0 = h.now
    h.feed([Suspect(1, "test", "other")])
    assert h.state("test") == State.SUSPECT
    assert h.events() == [MemberSuspected(Member("test", ADDR1, State.SUSPECT, 1, b""))]
    assert h.broadcasts() == [Suspect(1, "test", "other")]

    # two members: no confirmations can come, the timeout is the minimum, 4 * 1 s
    h.advance(t0 + 4.0 - 1e-6, responder=ack_pings())
    assert h.state("test") == State.SUSPECT
    h.advance(t0 + 4.0, responder=ack_pings())
    assert h.state("test") == State.DEAD
    failed = [(t, e) for t, e in h.events_log if isinstance(e, MemberFailed)]
    assert [(t, e.member.name) for t, e in failed] == [(t0 + 4.0, "test")]
    assert Dead(1, "test", SELF) in h.broadcasts()


def test_double_suspect_from_the_same_accuser_changes_nothing() -> None:
    h = _with_test_member(others=3)
    h.feed([Suspect(1, "test", "p0")])
    h.events()
    h.drain_broadcasts()
    h.feed([Suspect(1, "test", "p0")])
    assert h.state("test") == State.SUSPECT
    assert h.events() == []
    assert h.broadcasts() == []


def test_confirmation_from_another_accuser_is_regossiped_up_to_k() -> None:
    h = _with_test_member(others=3)  # n = 5, suspicion_mult 4: k = 2 confirmations count
    h.feed([Suspect(1, "test", "p0")])
    h.drain_broadcasts()
    h.feed([Suspect(1, "test", "p1")])
    assert h.broadcasts() == [Suspect(1, "test", "p1")]
    h.feed([Suspect(1, "test", "p2")])
    assert h.broadcasts() == [Suspect(1, "test", "p2")]
    h.drain_broadcasts()
    h.feed([Suspect(1, "test", "p3")])  # beyond k: no longer news
    assert h.broadcasts() == []
    assert h.events() == [MemberSuspected(Member("test", ADDR1, State.SUSPECT, 1, b""))]


def test_confirmations_are_not_counted_when_too_few_members() -> None:
    h = _with_test_member()  # n = 2 < k + 2: no confirmations expected
    h.feed([Suspect(1, "test", "x")])
    h.drain_broadcasts()
    h.feed([Suspect(1, "test", "y")])
    assert h.broadcasts() == []


def test_old_suspect_is_ignored() -> None:
    h = _with_test_member(incarnation=10)
    h.feed([Suspect(1, "test", "other")])
    assert h.state("test") == State.ALIVE
    assert h.events() == []
    assert h.broadcasts() == []


def test_newer_suspect_takes_its_incarnation() -> None:
    h = _with_test_member()
    h.feed([Suspect(3, "test", "other")])
    assert h.member("test") == Member("test", ADDR1, State.SUSPECT, 3, b"")
    h.feed([Alive(3, "test", ADDR1)])  # not newer than the suspicion: no refutation
    assert h.state("test") == State.SUSPECT
    h.feed([Alive(4, "test", ADDR1)])
    assert h.state("test") == State.ALIVE


def test_suspect_does_not_touch_dead_or_left_members() -> None:
    h = _with_test_member()
    h.feed([Alive(1, "gone", ("127.0.0.3", 1)), Dead(1, "gone", "gone")])
    h.feed([Dead(1, "test", "other")])
    h.events()
    h.drain_broadcasts()
    h.feed([Suspect(1, "test", "x"), Suspect(1, "gone", "x"), Suspect(5, "test", "x")])
    assert h.state("test") == State.DEAD
    assert h.state("gone") == State.LEFT
    assert h.events() == []
    assert h.broadcasts() == []


def test_suspect_about_ourselves_is_refuted() -> None:
    h = Harness()
    h.feed([Suspect(1, SELF, "other")])
    assert h.state(SELF) == State.ALIVE
    assert h.engine.local_member.incarnation == 2
    assert h.engine.health_score == 1
    assert h.broadcasts() == [Alive(2, SELF, SELF_ADDR, b"")]
    assert h.events() == []


def test_stale_suspect_about_ourselves_does_not_bump_the_incarnation() -> None:
    h = Harness()
    h.feed([Suspect(1, SELF, "a")])
    h.feed([Suspect(1, SELF, "b")])
    assert h.engine.local_member.incarnation == 2
    assert h.engine.health_score == 1
