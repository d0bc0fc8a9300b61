"""The coordinates layer on one engine: what push-pull and gossip carry, and what a hostile
peer can inject (bounded, checked, counted, never newer-than-newest)."""

from __future__ import annotations

import msgpack
from engine_helpers import SELF, Harness, Sent

from swimnet.layers.coordinates import SECTION_SAMPLE
from swimnet.topology import Coordinate
from swimnet.topology.book import TRUSTED_UPDATES
from swimnet.topology.codec import coordinate_to_bytes, decode_ack_payload, encode_ack_payload
from swimnet.topology.tracker import MIN_KNOWN
from swimnet.wire import Ack, Ping, PushPull
from swimnet.wire.codec import decode_message, encode_message
from swimnet.wire.topology import (
    MAX_SECTION_COORDINATES,
    CoordinateRecord,
    CoordinateState,
    CoordinateUpdate,
)


def _packed(x: float) -> bytes:
    return coordinate_to_bytes(Coordinate((x,) + (0.0,) * 7, 0.3, 0.0, 1e-5))


def _section(reply: PushPull) -> CoordinateState | None:
    for name, data in msgpack.unpackb(reply.user) if reply.user else []:
        if name == "coordinates":
            state = decode_message(data)
            assert type(state) is CoordinateState
            return state
    return None


def _user(records: list[CoordinateRecord]) -> bytes:
    return msgpack.packb([["coordinates", encode_message(CoordinateState(tuple(records)))]])


def _harness(peers: int) -> Harness:
    h = Harness(seed=3)
    h.add_peers([f"p{i}" for i in range(peers)])
    return h


def test_gossiped_coordinates_give_estimates_and_travel_in_push_pull() -> None:
    h = _harness(4)
    h.feed([CoordinateUpdate(f"p{i}", 1, 50, _packed(0.001 * i)) for i in range(4)])
    assert h.engine.stats["coordinates_learned"] == 4
    assert h.engine.rtt_estimate("p3") is not None
    section = _section(h.push_pull(PushPull(False, (), b"")))
    assert section is not None
    assert {r.name: r.updates for r in section.records} == {f"p{i}": 50 for i in range(4)}


def test_an_older_version_never_replaces_a_newer_one() -> None:
    h = _harness(1)
    h.feed([CoordinateUpdate("p0", 2, 10, _packed(0.001))])
    before = h.engine.rtt_estimate("p0")
    h.feed([CoordinateUpdate("p0", 2, 9, _packed(0.5)), CoordinateUpdate("p0", 1, 99, _packed(0.5))])
    h.push_pull(PushPull(False, (), _user([CoordinateRecord("p0", 2, 10, _packed(0.5))])))
    assert h.engine.rtt_estimate("p0") == before
    h.feed([CoordinateUpdate("p0", 2, 11, _packed(0.5))])
    assert h.engine.rtt_estimate("p0") != before


def test_hostile_coordinate_input_is_dropped_and_counted() -> None:
    h = _harness(2)
    h.feed(
        [
            CoordinateUpdate("stranger", 1, 50, _packed(0.001)),  # not a member
            CoordinateUpdate("p0", 1, 50, b"\x00" * 17),  # not whole floats
            CoordinateUpdate("p0", 1, 50, coordinate_to_bytes(Coordinate((0.0,), 0.1, 0.0, 0.0))),  # 1 dim
            CoordinateUpdate("p1", 1, 50, b"\x00\x00\xc0\x7f" + b"\x00" * 40),  # NaN
            CoordinateUpdate(SELF, 1, 10**9, _packed(0.001)),  # about ourselves: we know better
        ]
    )
    stats = h.engine.stats
    assert stats["drop_coordinate_unknown_member"] == 1
    assert stats["drop_coordinate_decode"] == 3
    assert stats["coordinates_learned"] == 0
    assert h.engine.rtt_estimate("p0") is None and h.engine.rtt_estimate("p1") is None
    # a section beyond the bound is refused whole
    too_many = [CoordinateRecord("p0", 1, i, _packed(0.0)) for i in range(MAX_SECTION_COORDINATES + 1)]
    h.push_pull(PushPull(False, (), _user(too_many)))
    assert stats["drop_coordinate_state_decode"] == 1
    h.push_pull(PushPull(False, (), msgpack.packb([["coordinates", b"\x91\x01"]])))
    assert stats["drop_coordinate_state_decode"] == 2
    assert h.engine.rtt_estimate("p0") is None


def test_a_join_is_answered_with_every_coordinate_a_sync_with_a_sample() -> None:
    n = SECTION_SAMPLE + 40
    h = _harness(n)
    updates = [CoordinateUpdate(f"p{i}", 1, 50, _packed(0.0001 * i)) for i in range(n)]
    for i in range(0, n, 100):
        h.feed(updates[i : i + 100])
    periodic = _section(h.push_pull(PushPull(False, (), b"")))
    assert periodic is not None and len(periodic.records) == SECTION_SAMPLE
    join = _section(h.push_pull(PushPull(True, (), _user([]))))  # a joiner always sends a section
    assert join is not None and len(join.records) == n


def _coordinates_sent(h: Harness, start: int) -> list[CoordinateUpdate]:
    return [u for s in h.sent_since(start) for u in s.of(CoordinateUpdate)]


def test_flipping_coordinates_are_relayed_new_ones_and_drift_are_not_and_nothing_wakes_gossip() -> None:
    h = _harness(6)
    start = len(h.sent)
    h.feed([CoordinateUpdate("p0", 1, 40, _packed(0.001)), CoordinateUpdate("p1", 1, 40, _packed(0.001))])
    h.advance(h.now + 20.0)  # probes went out: new coordinates are kept, not relayed
    assert h.sent_since(start) and not {u.name for u in _coordinates_sent(h, start)} & {"p0", "p1"}
    start = len(h.sent)
    h.feed([CoordinateUpdate("p0", 1, 41, _packed(0.0012))])  # drift: a fifth of a millisecond
    h.feed([CoordinateUpdate("p1", 1, TRUSTED_UPDATES + 40, _packed(0.2))])  # a move: near turns far
    assert not h.sent_since(start)  # nothing is sent for coordinates alone
    h.advance(h.now + 5.0)  # probes go out: the relayed update rides on them, once per packet
    relayed = _coordinates_sent(h, start)
    assert relayed and {u.name for u in relayed} == {"p1"}
    assert all(len(s.of(CoordinateUpdate)) <= 1 for s in h.sent_since(start))


def test_acks_carry_our_coordinate_when_the_ping_s_sequence_number_is_even() -> None:
    """The prober asks by its ping's parity (see swimnet.layers.topology), whoever it is."""
    h = _harness(2)
    h.feed([CoordinateUpdate("p1", 1, 50, _packed(0.001))])  # p1 is placed; p0 is not

    def payloads(prober: str) -> list[bytes]:
        out = []
        for seq in range(10, 20):
            for s in h.feed([Ping(seq, SELF, prober)], src=prober):
                out.extend(a.payload for a in s.of(Ack))
        return out

    for prober in ("p0", "p1"):
        acks = payloads(prober)
        assert len(acks) == 10
        assert [bool(p) for p in acks] == [seq % 2 == 0 for seq in range(10, 20)]
    version, _ = decode_ack_payload(payloads("p0")[0], 8)
    assert version == (1, 0)  # our epoch is our starting incarnation; nothing learned yet


def test_our_probes_ask_on_every_ping_until_we_are_placed() -> None:
    h = _harness(4)
    h.advance(h.now + 10.0)
    pings = [ping for s in h.sent_since(0) for ping in s.of(Ping)]
    assert len(pings) >= 4 and all(ping.seq % 2 == 0 for ping in pings)


def _probed_for_a_minute(far_share: int) -> Harness:
    """Our engine probes MIN_KNOWN + 4 peers for 60 s; every `far_share`-th one (if any) sits
    40 ms away, the others 0.3 ms (a LAN)."""
    h = _harness(MIN_KNOWN + 4)

    def respond(h: Harness, s: Sent) -> None:
        peer = h.name_at.get(s.addr)
        for ping in s.of(Ping):
            if peer is not None and ping.target == peer:
                far = far_share and int(peer[1:]) % far_share == 0
                rtt = 0.040 if far else 0.0003
                h.now += rtt
                coordinate = Coordinate((rtt if far else 0.0,) + (0.0,) * 7, 0.2, 0.0, 1e-5)
                h.feed([Ack(ping.seq, encode_ack_payload((1, 50), coordinate))], src=s.addr)

    h.advance(h.now + 60.0, respond)
    return h


def test_a_flat_network_s_periodic_push_pull_carries_only_our_own_coordinate() -> None:
    lan = _section(_probed_for_a_minute(far_share=0).push_pull(PushPull(False, (), b"")))
    assert lan is not None and [r.name for r in lan.records] == [SELF]
    zoned = _section(_probed_for_a_minute(far_share=2).push_pull(PushPull(False, (), b"")))
    assert zoned is not None and len(zoned.records) == MIN_KNOWN + 4 + 1  # every peer, and us


def test_every_direct_ack_without_a_coordinate_is_in_the_engine_s_counters() -> None:
    """Topology counts acks without a coordinate apart (not in the node's counters on every
    ack); the engine's `stats` holds all of them whenever read."""
    h = _harness(4)
    bare = 0

    def respond(h: Harness, s: Sent) -> None:
        nonlocal bare
        peer = h.name_at.get(s.addr)
        for ping in s.of(Ping):
            if peer is not None and ping.target == peer:
                h.now += 0.0003
                bare += 1
                h.feed([Ack(ping.seq)], src=s.addr)  # no coordinate, asked for or not

    h.advance(h.now + 5.0, respond)
    assert bare >= 4 and h.engine.stats["coordinate_missing"] == bare
    h.advance(h.now + 5.0, respond)
    assert h.engine.stats["coordinate_missing"] == bare
