"""Alive messages on one engine (memberlist state_test.go: TestMemberList_AliveNode_*)."""

from __future__ import annotations

from engine_helpers import SELF, SELF_ADDR, Harness, ack_pings

from swimnet.membership.events import MemberFailed, MemberJoined, MemberUpdated
from swimnet.membership.member import Member
from swimnet.wire import Alive, Dead, State, Suspect

ADDR1 = ("127.0.0.1", 8000)
ADDR2 = ("127.0.0.2", 9000)


def test_new_member_joins_and_is_gossiped() -> None:
    h = Harness()
    alive = Alive(1, "test", ADDR1, b"meta")
    h.feed([alive], src=ADDR1)
    assert h.state("test") == State.ALIVE
    assert h.events() == [MemberJoined(Member("test", ADDR1, State.ALIVE, 1, b"meta"))]
    assert alive in h.broadcasts()


def test_alive_refutes_a_suspicion() -> None:
    h = Harness()
    h.feed([Alive(1, "test", ADDR1)])
    h.feed([Suspect(1, "test", "other")])
    assert h.state("test") == State.SUSPECT
    h.events()
    h.drain_broadcasts()

    h.feed([Alive(2, "test", ADDR1)])
    assert h.state("test") == State.ALIVE
    assert h.events() == [MemberUpdated(Member("test", ADDR1, State.ALIVE, 2, b""))]
    assert Alive(2, "test", ADDR1) in h.broadcasts()
    # the suspicion timer is gone: far past the longest suspicion timeout, still alive
    h.advance(h.now + 200.0, responder=ack_pings())
    assert h.state("test") == State.ALIVE
    assert not [e for e in h.events() if isinstance(e, MemberFailed)]


def test_same_alive_twice_is_idempotent() -> None:
    h = Harness()
    alive = Alive(1, "test", ADDR1)
    h.feed([alive])
    h.events()
    h.drain_broadcasts()
    h.feed([alive])
    assert h.events() == []
    assert h.broadcasts() == []
    assert h.member("test") == Member("test", ADDR1, State.ALIVE, 1, b"")


def test_meta_change_is_an_update() -> None:
    h = Harness()
    h.feed([Alive(1, "test", ADDR1, b"old")])
    h.events()
    h.drain_broadcasts()
    h.feed([Alive(2, "test", ADDR1, b"new")])
    assert h.events() == [MemberUpdated(Member("test", ADDR1, State.ALIVE, 2, b"new"))]
    assert Alive(2, "test", ADDR1, b"new") in h.broadcasts()


def test_higher_incarnation_without_change_is_gossiped_silently() -> None:
    h = Harness()
    h.feed([Alive(1, "test", ADDR1, b"m")])
    h.events()
    h.drain_broadcasts()
    h.feed([Alive(4, "test", ADDR1, b"m")])
    assert h.events() == []
    assert h.member("test") == Member("test", ADDR1, State.ALIVE, 4, b"m")
    assert Alive(4, "test", ADDR1, b"m") in h.broadcasts()


def test_older_alive_is_ignored() -> None:
    h = Harness()
    h.feed([Alive(5, "test", ADDR1, b"new")])
    h.events()
    h.drain_broadcasts()
    h.feed([Alive(3, "test", ADDR1, b"old")])
    assert h.member("test") == Member("test", ADDR1, State.ALIVE, 5, b"new")
    assert h.events() == []
    assert h.broadcasts() == []


def test_alive_about_ourselves_with_other_meta_is_refuted() -> None:
    h = Harness()
    h.feed([Alive(1, SELF, SELF_ADDR, b"forged")])
    assert h.engine.local_member == Member(SELF, SELF_ADDR, State.ALIVE, 2, b"")
    assert h.engine.health_score == 1
    assert Alive(2, SELF, SELF_ADDR, b"") in h.broadcasts()
    assert h.events() == []


def test_alive_about_ourselves_as_we_are_is_ignored() -> None:
    h = Harness()
    h.feed([Alive(1, SELF, SELF_ADDR, b"")])
    assert h.engine.local_member.incarnation == 1
    assert h.engine.health_score == 0
    assert h.broadcasts() == []


def test_alive_about_ourselves_at_a_higher_incarnation_is_overtaken() -> None:
    """A restarted node that forgot its incarnation jumps past what the cluster remembers."""
    h = Harness()
    h.feed([Alive(7, SELF, SELF_ADDR, b"")])
    assert h.engine.local_member.incarnation == 8
    assert Alive(8, SELF, SELF_ADDR, b"") in h.broadcasts()


def test_name_conflict_from_another_address_is_ignored_and_counted() -> None:
    h = Harness(dead_node_reclaim_time=10.0)
    h.feed([Alive(1, "test", ADDR1)])
    h.events()
    h.drain_broadcasts()

    h.feed([Alive(2, "test", ADDR2, b"foo")])
    assert h.member("test") == Member("test", ADDR1, State.ALIVE, 1, b"")
    assert h.engine.stats["alive_conflict"] == 1
    assert h.events() == []
    assert h.broadcasts() == []


def test_conflict_about_ourselves_is_ignored() -> None:
    h = Harness()
    h.feed([Alive(5, SELF, ADDR2)])
    assert h.engine.local_member == Member(SELF, SELF_ADDR, State.ALIVE, 1, b"")
    assert h.engine.stats["alive_conflict"] == 1


def test_dead_name_is_reclaimed_from_a_new_address_after_reclaim_time() -> None:
    h = Harness(dead_node_reclaim_time=10.0)
    h.feed([Alive(1, "test", ADDR1)])
    h.feed([Dead(2, "test", "other")])
    assert h.state("test") == State.DEAD
    died = h.now
    h.events()

    h.advance(died + 5.0)
    h.feed([Alive(3, "test", ADDR2, b"foo")])
    assert h.state("test") == State.DEAD, "too early: the old owner may come back"
    assert h.engine.stats["alive_conflict"] == 1

    h.advance(died + 10.5)
    h.feed([Alive(3, "test", ADDR2, b"foo")])
    assert h.member("test") == Member("test", ADDR2, State.ALIVE, 3, b"foo")
    assert h.events() == [MemberJoined(Member("test", ADDR2, State.ALIVE, 3, b"foo"))]


def test_dead_name_is_not_reclaimed_without_reclaim_time() -> None:
    h = Harness()  # dead_node_reclaim_time = 0: never (until reaped)
    h.feed([Alive(1, "test", ADDR1)])
    h.feed([Dead(1, "test", "other")])
    h.advance(h.now + 20.0)
    h.feed([Alive(9, "test", ADDR2)])
    assert h.member("test") == Member("test", ADDR1, State.DEAD, 1, b"")
    assert h.engine.stats["alive_conflict"] == 1
