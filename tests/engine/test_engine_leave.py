"""Graceful leave on one engine: broadcast Dead(node == sender == self), then report done."""

from __future__ import annotations

import contextlib
import math

import pytest
from engine_helpers import SELF, SELF_ADDR, Harness, ack_pings

from swimnet.errors import LocalProtocolError
from swimnet.wire import Alive, Dead, Ping, State, Suspect


def _leave_copies(h: Harness, start: int) -> int:
    return sum(1 for s in h.sent_since(start) for m in s.of(Dead) if m == Dead(1, SELF, SELF))


@pytest.mark.parametrize("peers", [3, 12])
def test_leave_is_done_once_broadcast_retransmit_limit_times(peers: int) -> None:
    h = Harness(seed=2)
    h.add_peers([f"p{i}" for i in range(peers)])
    h.drain_broadcasts()
    h.advance(2.0, responder=ack_pings())
    start = len(h.sent)

    h.engine.leave(h.now)
    h.collect()
    assert h.state(SELF) == State.LEFT
    assert not h.engine.leave_done
    limit = h.config.retransmit_mult * math.ceil(math.log10(peers + 1 + 1))
    while not h.engine.leave_done:
        assert h.now < 2.0 + h.config.leave_timeout, "leave never completed by transmission"
        h.step(responder=ack_pings())
    assert _leave_copies(h, start) == limit
    assert not [e for _, e in h.events_log if e.member.name == SELF]


def test_leave_times_out_when_nothing_can_be_transmitted() -> None:
    h = Harness(gossip_nodes=0)  # nothing is gossiped, and nobody pings us
    h.add_peers(["a", "b"])
    t0 = h.now
    h.engine.leave(t0)
    h.advance(t0 + h.config.leave_timeout - 1e-6)
    assert not h.engine.leave_done
    h.advance(t0 + h.config.leave_timeout)
    assert h.engine.leave_done


def test_leave_when_alone_is_done_at_once() -> None:
    h = Harness()
    h.engine.leave(h.now)
    assert h.engine.leave_done


def test_leave_with_only_dead_peers_is_done_at_once() -> None:
    h = Harness()
    h.add_peer("a")
    h.feed([Dead(1, "a", "x")])
    h.engine.leave(h.now)
    assert h.engine.leave_done


def test_leaving_node_stops_probing_and_ignores_accusations() -> None:
    h = Harness(seed=8)
    h.add_peers(["a", "b", "c"])
    h.engine.leave(h.now)
    start = len(h.sent)
    h.advance(h.now + 10.0, responder=ack_pings())
    assert not [p for s in h.sent_since(start) for p in s.of(Ping) if p.source == SELF]
    h.feed([Suspect(1, SELF, "a"), Dead(1, SELF, "b"), Alive(5, SELF, SELF_ADDR, b"x")], src="a")
    assert h.state(SELF) == State.LEFT
    assert h.engine.local_member.incarnation == 1
    assert h.engine.stats["refutations"] == 0


def test_leave_twice_is_harmless() -> None:
    h = Harness()
    h.add_peers(["a", "b"])
    h.engine.leave(h.now)
    h.engine.leave(h.now)
    h.collect()
    assert h.state(SELF) == State.LEFT


def test_set_meta_after_leave_does_not_cancel_the_leave() -> None:
    h = Harness()
    h.add_peers(["a", "b"])
    h.drain_broadcasts()
    h.engine.leave(h.now)
    with contextlib.suppress(LocalProtocolError):  # refusing the call is fine too
        h.engine.set_meta(b"late", h.now)
    assert not h.engine.leave_done, "nothing has been transmitted yet"
    queued = h.broadcasts()
    assert Dead(1, SELF, SELF) in queued
    assert not [m for m in queued if type(m) is Alive and m.node == SELF]
