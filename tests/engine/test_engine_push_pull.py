"""Push-pull (full state sync over a stream) on one engine (memberlist's MergeState, join).

Rules under test: remote alive entries apply like Alive messages, remote left like a leave,
and remote dead or suspect entries only make a member *suspect* here (never dead outright);
claims about ourselves are refuted; the reply carries our state after the merge.
"""

from __future__ import annotations

import itertools
import random

import pytest
from engine_helpers import SELF, SELF_ADDR, Harness, Opened, ack_pings, make_config

from swimnet.errors import LocalProtocolError
from swimnet.membership.delegates import SwimDelegates
from swimnet.membership.events import (
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
)
from swimnet.membership.swim import PUSH_PULL_JITTER, Swim
from swimnet.wire import Alive, MemberState, Ping, PushPull, State, Suspect

A1, A2, A3, A4, A5, A6, A7 = ((f"127.0.0.{i}", 7946) for i in range(1, 8))


def _ms(name: str, addr: tuple[str, int], incarnation: int, state: State, meta: bytes = b"") -> MemberState:
    return MemberState(name, addr, meta, incarnation, state)


def test_merge_remote_state() -> None:
    h = Harness()
    for name, addr in [("test1", A1), ("test2", A2), ("test3", A3), ("test6", A6)]:
        h.feed([Alive(1, name, addr)])
    h.feed([Suspect(1, "test1", "x")])
    h.events()

    remote = PushPull(
        False,
        (
            _ms("test1", A1, 2, State.ALIVE),
            _ms("test2", A2, 1, State.SUSPECT),
            _ms("test3", A3, 1, State.DEAD),
            _ms("test4", A4, 2, State.ALIVE),
            _ms("test5", A5, 1, State.LEFT),  # unknown and gone: nothing to learn
            _ms("test6", A6, 1, State.LEFT),
            _ms("test7", A7, 1, State.DEAD),  # unknown and dead: nothing to learn
        ),
    )
    reply = h.push_pull(remote, src=A1)

    assert {m.name: (m.state, m.incarnation) for m in h.engine.members()} == {
        SELF: (State.ALIVE, 1),
        "test1": (State.ALIVE, 2),
        "test2": (State.SUSPECT, 1),
        "test3": (State.SUSPECT, 1),  # a remote "dead" is only a suspicion here
        "test4": (State.ALIVE, 2),
        "test6": (State.LEFT, 1),
    }
    events = {(type(e), e.member.name) for e in h.events()}
    assert events == {
        (MemberUpdated, "test1"),
        (MemberSuspected, "test2"),
        (MemberSuspected, "test3"),
        (MemberJoined, "test4"),
        (MemberLeft, "test6"),
    }
    assert not reply.join
    # the reply vouches only for what this node verified: the live members it only heard of
    # (test1 and test4, both second-hand) are left out (see membership.admission)
    assert {s.name: (s.state, s.incarnation, s.addr) for s in reply.members} == {
        m.name: (m.state, m.incarnation, m.address)
        for m in h.engine.members()
        if m.name not in ("test1", "test4")
    }


def test_merge_never_declares_dead_directly() -> None:
    h = Harness()
    h.feed([Alive(3, "x", A1)])
    h.push_pull(PushPull(False, (_ms("x", A1, 5, State.DEAD),)), src=A2)
    assert h.member("x").state == State.SUSPECT  # type: ignore[union-attr]
    assert h.member("x").incarnation == 5  # type: ignore[union-attr]
    assert not [e for e in h.events() if isinstance(e, MemberFailed)]


def test_merge_of_known_state_is_silent() -> None:
    h = Harness()
    h.feed([Alive(1, "a", A1), Alive(1, "b", A2)])
    h.events()
    h.drain_broadcasts()
    snapshot = {m.name: m for m in h.engine.members()}
    h.push_pull(PushPull(False, tuple(_ms(m.name, m.address, 1, State.ALIVE) for m in snapshot.values())))
    assert {m.name: m for m in h.engine.members()} == snapshot
    assert h.events() == []
    assert h.broadcasts() == []


def test_remote_dead_about_ourselves_is_refuted_in_the_reply() -> None:
    h = Harness()
    reply = h.push_pull(PushPull(False, (_ms(SELF, SELF_ADDR, 1, State.DEAD),)), src=A1)
    assert h.engine.local_member.incarnation == 2
    (me,) = [s for s in reply.members if s.name == SELF]
    assert (me.state, me.incarnation) == (State.ALIVE, 2)


def test_client_side_refutation_is_also_sent_straight_to_the_peer() -> None:
    h = Harness()
    h.feed([Alive(1, "peer", A1)])
    h.engine.join([A1], h.now)  # a push-pull to the peer, whose reply says we are suspect
    h.collect()
    out = h.stream_reply(PushPull(False, (_ms(SELF, SELF_ADDR, 1, State.SUSPECT),)), src=A1)
    assert h.engine.local_member.incarnation == 2
    direct = [m for s in out if s.addr == A1 for m in s.of(Alive) if m.node == SELF]
    assert direct and direct[0].incarnation == 2


def test_join_opens_push_pull_and_later_syncs() -> None:
    h = Harness(seed=4, push_pull_interval=1000.0)  # keep the periodic sync out of the way
    h.engine.join([A1], h.now)
    h.collect()
    (first,) = h.opened
    assert first.addr == A1 and type(first.request) is PushPull and first.request.join
    assert {s.name for s in first.request.members} == {SELF}

    known = [("seed", A1), ("x", A2), ("y", A3)]
    remote = PushPull(False, tuple(_ms(n, a, 1, State.ALIVE) for n, a in known))
    h.stream_reply(remote, src=A1)
    assert {n for n, s in h.engine.view().items() if s == State.ALIVE} == {SELF, "seed", "x", "y"}
    assert sorted(type(e).__name__ for e in h.events()) == ["MemberJoined"] * 3

    # the post-join syncs: one push-pull per configured delay, within 1.5x the largest (the
    # seed answers its probes; x and y, known only from the seed, are not yet verified)
    h.addr_of["seed"], h.name_at[A1] = A1, "seed"
    h.advance(1.5 * max(h.config.join_sync_delays) + 1e-6, responder=ack_pings())
    syncs = [o for o in h.opened[1:] if type(o.request) is PushPull and not o.request.join]
    assert len(syncs) >= len(h.config.join_sync_delays)
    assert {o.addr for o in syncs} <= {A1, A2, A3}


def _join_then_fail_a_stream_ping(fail_the_ping: bool) -> tuple[Harness, list[Opened]]:
    h = Harness(seed=4, push_pull_interval=1000.0)  # keep the periodic sync out of the way
    h.engine.join([A1], h.now)
    h.collect()
    (join,) = h.opened
    h.feed([Alive(1, "seed", A1)])  # the seed is gossiped to us before the join reply
    while True:  # probe the seed: no UDP answer, so the probe falls back to a stream ping
        probe = h.probe_to("seed")
        h.advance(probe.time + h.config.probe_timeout)
        if any(type(o.request) is Ping for o in h.opened):
            break
    if fail_the_ping:  # the runtime reports: the stream ping failed
        ping = next(o for o in h.opened if type(o.request) is Ping)
        h.stream_failed(ping)
    h.stream_reply(PushPull(False, (_ms("seed", A1, 1, State.ALIVE),)), join)  # the join reply
    h.feed([Alive(1, "late", A4)])  # someone new turns up: the join syncs are due
    start = len(h.opened)
    h.advance(h.now + 1.5 * max(h.config.join_sync_delays) + 0.1)
    return h, [o for o in h.opened[start:] if type(o.request) is PushPull]


def test_join_syncs_follow_a_join_when_members_turn_up() -> None:
    _, syncs = _join_then_fail_a_stream_ping(fail_the_ping=False)
    assert syncs


def test_failed_stream_ping_does_not_cancel_a_pending_join() -> None:
    h, syncs = _join_then_fail_a_stream_ping(fail_the_ping=True)
    assert syncs
    assert h.engine.stats["push_pull_failed"] == 0, "a ping stream is not a push-pull"


def _relayed_alives(h: Harness, start: int) -> set[str]:
    """Members whose Alive we sent (gossip or piggyback) since `start`, ourselves excepted."""
    return {m.node for s in h.sent_since(start) for m in s.messages if type(m) is Alive and m.node != SELF}


def _join_and_sync(h: Harness) -> int:
    """Join through A1 (the seed lists x and y), answer every post-join sync with a member z
    new to us; return where the log stood before the join reply."""
    h.engine.join([A1], h.now)
    h.collect()
    start = len(h.sent)
    known = [("seed", A1), ("x", A2), ("y", A3)]
    h.stream_reply(PushPull(False, tuple(_ms(n, a, 1, State.ALIVE) for n, a in known)), src=A1)
    assert {"seed", "x", "y"} <= {n for n, s in h.engine.view().items() if s == State.ALIVE}
    h.addr_of["seed"], h.name_at[A1] = A1, "seed"
    h.addr_of["z"], h.name_at[A4] = A4, "z"  # z answers our probes: it stays alive
    answered = len(h.opened)
    for _ in range(40):  # 4 s: the post-join syncs, then gossip until it has drained
        h.advance(h.now + 0.1, responder=ack_pings())
        for sync in h.opened[answered:]:
            if type(sync.request) is PushPull:
                h.stream_reply(PushPull(False, (_ms("z", A4, 1, State.ALIVE),)), sync)
        answered = len(h.opened)
    assert h.engine.view().get("z") == State.ALIVE, "a post-join sync brought z"
    return start


def test_a_newcomer_applies_its_join_and_sync_replies_without_gossiping_them() -> None:
    h = Harness(seed=4, push_pull_interval=1000.0)
    start = _join_and_sync(h)
    assert not _relayed_alives(h, start), "the cluster knows what its own members told us"


def test_a_node_that_knew_members_gossips_what_a_join_brings() -> None:
    # two clusters merged by one join: what we learn is news to our side
    h = Harness(seed=4, push_pull_interval=1000.0)
    h.add_peers(["p0", "p1"])
    start = _join_and_sync(h)
    assert {"seed", "x", "y", "z"} <= _relayed_alives(h, start)


def test_a_ping_delegate_may_not_pick_a_sequence_number_far_ahead() -> None:
    class Greedy:
        def ping_seq(self, member: str, seq: int) -> int:
            return seq + 100

        def ack_payload(self, seq: int, prober: str) -> bytes:
            return b""

        def notify_ping_complete(self, member: str, rtt: float, payload: bytes, now: float) -> None:
            return None

        def forget(self, member: str) -> None:
            return None

    swim = Swim(make_config(), random.Random(1), 0.0, delegates=SwimDelegates(ping=Greedy()))
    swim.handle_message(Alive(1, "a", ("10.0.1.2", 7946), b""), ("10.0.1.2", 7946), 0.0)
    with pytest.raises(LocalProtocolError, match="sequence number"):
        swim.handle_timer(10.0)


def _join_and_hear_of_later_members(h: Harness, running: bool = True) -> list[Opened]:
    """Join through A1 (the seed lists x and y, or itself alone if not `running`), run until
    the third post-join sync, then hear by gossip (second-hand) of two members, first "late1"
    then "late2", who never answer; run until the last post-join sync. Return the post-join
    syncs."""
    h.engine.join([A1], h.now)
    h.collect()
    known = [("seed", A1), ("x", A2), ("y", A3)] if running else [("seed", A1)]
    h.stream_reply(PushPull(False, tuple(_ms(n, a, 1, State.ALIVE) for n, a in known)), src=A1)
    h.addr_of["seed"], h.name_at[A1] = A1, "seed"
    answer = ack_pings([name for name, _ in known])
    delays = len(h.config.join_sync_delays)

    def syncs() -> list[Opened]:
        return [o for o in h.opened[1:] if type(o.request) is PushPull and not o.request.join]

    while len(syncs()) < delays - 1:
        h.step(answer)
    h.feed([Alive(1, "late1", A4), Alive(1, "late2", A5)])
    while len(syncs()) < delays:
        h.step(answer)
    assert h.state("late2") == State.ALIVE, "precondition: late2 is not suspected yet"
    return syncs()


def test_last_join_sync_goes_to_the_member_learned_last_that_nobody_vouched_for() -> None:
    # a probe deadline of 5 s: the members we heard of cannot turn suspect before the syncs end
    h = Harness(seed=4, push_pull_interval=1000.0, probe_interval=5.0)
    syncs = _join_and_hear_of_later_members(h)
    assert {o.addr for o in syncs[:-1]} <= {A1, A2, A3}
    assert syncs[-1].addr == A5, "the last sync goes to late2, learned last and unverified"
    # late2 answers: it is verified, and vouches for the member it lists that we did not know
    listed = (_ms("late2", A5, 1, State.ALIVE), _ms("later", A6, 1, State.ALIVE))
    h.stream_reply(PushPull(False, listed), syncs[-1])
    assert h.state("later") == State.ALIVE
    assert h.engine.stats["push_pull_failed"] == 0


def test_a_failed_last_join_sync_is_replaced_by_a_random_one() -> None:
    h = Harness(seed=4, push_pull_interval=1000.0, probe_interval=5.0)
    syncs = _join_and_hear_of_later_members(h)
    assert syncs[-1].addr == A5
    start = len(h.opened)
    h.stream_failed(syncs[-1])  # late2 is not there (it may have been forged)
    (retry,) = [o for o in h.opened[start:] if type(o.request) is PushPull]
    assert retry.addr in {A1, A2, A3}, "a random verified member instead"
    h.stream_failed(retry)  # no second retry: one replacement per join
    assert [o for o in h.opened[start + 1 :] if type(o.request) is PushPull] == []


def test_last_join_sync_is_random_in_a_cluster_that_forms_at_once() -> None:
    # the join answer lists the seed alone: everyone is joining now, nobody joins "after" us
    h = Harness(seed=4, push_pull_interval=1000.0, probe_interval=5.0)
    syncs = _join_and_hear_of_later_members(h, running=False)
    assert {o.addr for o in syncs} == {A1}, "random syncs: the seed is the only verified member"
    assert h.engine.stats["join_sync_to_latest"] == 0


def test_last_join_sync_is_random_when_every_member_was_vouched_for() -> None:
    h = Harness(seed=4, push_pull_interval=1000.0, probe_interval=5.0)
    h.engine.join([A1], h.now)
    h.collect()
    known = [("seed", A1), ("x", A2), ("y", A3)]
    h.stream_reply(PushPull(False, tuple(_ms(n, a, 1, State.ALIVE) for n, a in known)), src=A1)
    h.addr_of["seed"], h.name_at[A1] = A1, "seed"
    h.advance(1.5 * max(h.config.join_sync_delays) + 1e-6, responder=ack_pings())
    syncs = [o for o in h.opened[1:] if type(o.request) is PushPull and not o.request.join]
    assert len(syncs) == len(h.config.join_sync_delays)
    assert {o.addr for o in syncs} <= {A1, A2, A3}
    assert h.engine.stats["join_sync_to_latest"] == 0


@pytest.mark.parametrize(("peers", "scaled"), [(3, 10.0), (40, 20.0)])
def test_periodic_push_pulls_are_jittered_around_the_scaled_interval(peers: int, scaled: float) -> None:
    """Each periodic push-pull is due a scaled interval on times a factor drawn in
    1 +- PUSH_PULL_JITTER: the mean interval stays the scaled one, and nodes started together
    do not push-pull together forever (see swimnet.membership.swim's rules)."""
    h = Harness(seed=7, push_pull_interval=10.0)
    h.add_peers(f"p{i}" for i in range(peers))  # 41 members: push_pull_scale doubles it
    h.advance(100 * scaled, responder=ack_pings())
    times = [o.time for o in h.opened if type(o.request) is PushPull and not o.request.join]
    gaps = [b - a for a, b in itertools.pairwise(times[5:])]  # after the stagger and verification
    assert len(gaps) > 60
    low, high = scaled * (1 - PUSH_PULL_JITTER), scaled * (1 + PUSH_PULL_JITTER)
    assert all(low - 1e-9 <= gap <= high + 1e-9 for gap in gaps), (min(gaps), max(gaps))
    assert max(gaps) - min(gaps) > scaled * PUSH_PULL_JITTER, "jittered, not a fixed period"
    assert abs(sum(gaps) / len(gaps) - scaled) < 0.1 * scaled, "the mean stays the scaled interval"
