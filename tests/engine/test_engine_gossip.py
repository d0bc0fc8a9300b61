"""Gossip, reaping and stray input on one engine (memberlist's GossipToTheDead, reap, wrong ping)."""

from __future__ import annotations

import math

from engine_helpers import SELF, Harness, ack_pings

from swimnet.wire import Alive, Dead, MemberState, Ping, PushPull, State, encode_stream


def test_ping_for_another_node_is_ignored_and_counted() -> None:
    h = Harness()
    out = h.feed([Ping(1, "someone-else", "x")])
    assert out == []
    assert h.engine.stats["drop_wrong_target"] == 1


def test_stream_ping_for_another_node_is_ignored_and_counted() -> None:
    h = Harness()
    reply = h.engine.handle_stream(encode_stream(Ping(1, "someone-else", "x")), ("10.3.3.3", 1), h.now)
    assert reply is None
    assert h.engine.stats["drop_wrong_target"] == 1


def _gossip_targets(h: Harness, start: int) -> set[str]:
    """Peers that received a datagram made only of broadcasts (no ping, no ack)."""
    return {
        h.name_at.get(s.addr, str(s.addr))
        for s in h.sent_since(start)
        if s.messages and not s.of(Ping) and type(s.messages[0]).__name__ not in ("Ack", "Nack")
    }


def test_gossip_reaches_dead_members_only_within_gossip_to_the_dead_time() -> None:
    h = Harness(seed=6, dead_reap_time=1_000.0)
    h.add_peer("d")
    h.feed([Dead(1, "d", "x")])
    died = h.now
    h.advance(died + 5.0)  # everything queued so far has been gossiped away

    h.advance(died + h.config.gossip_to_the_dead_time - 1.0)
    start = len(h.sent)
    h.engine.set_meta(b"1", h.now)
    h.advance(h.now + 2 * h.config.gossip_interval)
    assert _gossip_targets(h, start) == {"d"}

    h.advance(died + h.config.gossip_to_the_dead_time + 1.0)
    start = len(h.sent)
    h.engine.set_meta(b"2", h.now)
    h.advance(h.now + 2 * h.config.gossip_interval)
    assert _gossip_targets(h, start) == set()
    assert h.state("d") == State.DEAD


def test_gossip_never_goes_to_left_members() -> None:
    h = Harness(seed=6)
    h.add_peer("l")
    h.feed([Dead(1, "l", "l")])
    start = len(h.sent)
    h.engine.set_meta(b"1", h.now)
    h.advance(h.now + 2.0)
    assert _gossip_targets(h, start) == set()


def test_each_broadcast_is_sent_retransmit_limit_times() -> None:
    h = Harness(seed=12)
    h.add_peers(["a", "b", "c"])
    h.drain_broadcasts()
    start = len(h.sent)
    h.engine.set_meta(b"x", h.now)
    h.advance(h.now + 10.0, responder=ack_pings())
    copies = sum(1 for s in h.sent_since(start) for m in s.of(Alive) if m.node == SELF)
    assert copies == h.config.retransmit_mult * math.ceil(math.log10(4 + 1))


def test_gossip_rounds_go_to_at_most_gossip_nodes_peers_and_fit_the_packet_size() -> None:
    h = Harness(seed=13)
    h.add_peers([f"p{i:03d}-{'x' * 40}" for i in range(150)])
    start = len(h.sent)
    h.advance(h.now + 3.0, responder=ack_pings())
    sent = h.sent_since(start)
    assert max(s.size for s in sent) <= h.config.packet_size
    rounds: dict[float, set[tuple[str, int]]] = {}
    for s in sent:
        if not s.of(Ping) and type(s.messages[0]).__name__ not in ("Ack", "Nack"):
            rounds.setdefault(s.time, set()).add(s.addr)
    assert rounds, "150 fresh members must be gossiped about"
    assert max(len(targets) for targets in rounds.values()) <= h.config.gossip_nodes


def test_dead_and_left_members_are_reaped_after_dead_reap_time() -> None:
    h = Harness(seed=14, dead_reap_time=10.0)
    h.add_peers(["a", "b"])
    h.add_peer("d")
    h.add_peer("l")
    h.feed([Dead(1, "d", "x"), Dead(1, "l", "l")])
    gone = h.now
    h.advance(gone + 9.5, responder=ack_pings(["a", "b"]))
    assert h.state("d") == State.DEAD and h.state("l") == State.LEFT
    # reaping happens when the probe order wraps: a few probe rounds later
    h.advance(gone + 10.0 + 4 * h.config.probe_interval, responder=ack_pings(["a", "b"]))
    assert h.state("d") is None and h.state("l") is None
    assert set(h.engine.view()) == {SELF, "a", "b"}


def test_reaped_failed_member_is_still_contacted_to_heal_splits() -> None:
    h = Harness(seed=15, dead_reap_time=5.0, rejoin_interval=10.0)
    h.add_peers(["a"])
    d_addr = h.add_peer("d")
    l_addr = h.add_peer("l")
    h.feed([Dead(1, "d", "x"), Dead(1, "l", "l")])
    h.advance(h.now + 10.0, responder=ack_pings(["a"]))
    assert h.state("d") is None
    start = len(h.opened)
    h.advance(h.now + 60.0, responder=ack_pings(["a"]))
    rejoin = [o for o in h.opened[start:] if o.addr == d_addr and type(o.request) is PushPull]
    assert rejoin, "a reaped failed member must be re-contacted every rejoin_interval"
    assert not [o for o in h.opened if o.addr == l_addr], "a member that left is not chased"

    # the split heals when the reaped member answers
    h.stream_reply(PushPull(False, (MemberState("d", d_addr, b"", 2, State.ALIVE),)), src=d_addr)
    assert h.state("d") == State.ALIVE
