"""Dead messages on one engine (memberlist state_test.go: TestMemberList_DeadNode*)."""

from __future__ import annotations

from engine_helpers import SELF, SELF_ADDR, Harness, ack_pings

from swimnet.membership.events import MemberFailed, MemberJoined, MemberLeft
from swimnet.membership.member import Member
from swimnet.wire import Alive, Dead, State, Suspect

ADDR1 = ("127.0.0.1", 8000)
ADDR2 = ("127.0.0.2", 9000)


def _with(name: str = "test", incarnation: int = 1, addr: tuple[str, int] = ADDR1) -> Harness:
    h = Harness(seed=9)
    h.feed([Alive(incarnation, name, addr)])
    h.events()
    h.drain_broadcasts()
    return h


def test_dead_about_an_unknown_node_is_ignored() -> None:
    h = Harness()
    h.feed([Dead(1, "test", "other")])
    assert h.state("test") is None
    assert h.events() == []
    assert h.broadcasts() == []


def test_dead_marks_failed() -> None:
    h = _with()
    h.feed([Dead(1, "test", "other")])
    assert h.state("test") == State.DEAD
    assert h.events() == [MemberFailed(Member("test", ADDR1, State.DEAD, 1, b""))]
    assert h.broadcasts() == [Dead(1, "test", "other")]


def test_dead_from_the_node_itself_means_left_and_it_may_come_back_elsewhere() -> None:
    h = _with("node1", addr=ADDR1)
    h.feed([Dead(1, "node1", "node1")])
    assert h.state("node1") == State.LEFT
    assert h.events() == [MemberLeft(Member("node1", ADDR1, State.LEFT, 1, b""))]
    assert h.broadcasts() == [Dead(1, "node1", "node1")]

    h.feed([Alive(3, "node1", ADDR2, b"foo")])
    assert h.member("node1") == Member("node1", ADDR2, State.ALIVE, 3, b"foo")
    assert h.events() == [MemberJoined(Member("node1", ADDR2, State.ALIVE, 3, b"foo"))]


def test_left_member_stays_left_on_a_replayed_alive() -> None:
    h = _with("node1", incarnation=2)
    h.feed([Dead(2, "node1", "node1")])
    h.events()
    h.feed([Alive(2, "node1", ADDR1)])
    assert h.state("node1") == State.LEFT
    assert h.events() == []


def test_double_dead_changes_nothing() -> None:
    h = _with()
    h.feed([Dead(1, "test", "other")])
    h.events()
    h.drain_broadcasts()
    h.feed([Dead(2, "test", "other")])
    assert h.member("test") == Member("test", ADDR1, State.DEAD, 1, b"")
    assert h.events() == []
    assert h.broadcasts() == []


def test_old_dead_is_ignored() -> None:
    h = _with(incarnation=10)
    h.feed([Dead(1, "test", "other")])
    assert h.state("test") == State.ALIVE
    assert h.events() == []
    assert h.broadcasts() == []


def test_dead_about_ourselves_is_refuted() -> None:
    h = Harness()
    h.feed([Dead(1, SELF, "other")])
    assert h.state(SELF) == State.ALIVE
    assert h.engine.local_member.incarnation == 2
    assert h.engine.health_score == 1
    assert h.broadcasts() == [Alive(2, SELF, SELF_ADDR, b"")]


def test_forged_leave_about_ourselves_is_refuted() -> None:
    h = Harness()
    h.feed([Dead(1, SELF, SELF)])
    assert h.state(SELF) == State.ALIVE
    assert h.engine.local_member.incarnation == 2
    assert not h.engine.leave_done


def test_alive_replayed_at_the_same_incarnation_keeps_the_dead_dead() -> None:
    h = _with(incarnation=10)
    h.feed([Dead(10, "test", "other")])
    h.events()
    h.feed([Alive(10, "test", ADDR1)])
    assert h.state("test") == State.DEAD
    assert h.events() == []
    h.feed([Alive(11, "test", ADDR1)])
    assert h.state("test") == State.ALIVE
    assert h.events() == [MemberJoined(Member("test", ADDR1, State.ALIVE, 11, b""))]


def test_dead_cancels_a_running_suspicion() -> None:
    h = _with()
    h.feed([Suspect(1, "test", "x")])
    h.feed([Dead(1, "test", "y")])
    h.events()
    h.advance(h.now + 60.0, responder=ack_pings())
    assert h.state("test") in (State.DEAD, None)
    assert h.events() == [], "the suspicion must not fire a second failure"
