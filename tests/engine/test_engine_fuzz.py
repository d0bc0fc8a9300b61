"""Hypothesis: peer garbage never raises and never changes membership; the engine is a
deterministic function of (seed, inputs)."""

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
from engine_helpers import SELF, SELF_ADDR, Harness, Sent, make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimnet.engine import Engine
from swimnet.errors import DecodeError
from swimnet.wire import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    PushPull,
    State,
    Suspect,
    WireMessage,
    decode_packet,
    decode_stream,
    encode_packet,
    encode_stream,
)

PEER_ADDR = ("10.0.1.2", 7946)
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _populated() -> Harness:
    """An engine that knows alive, suspect, dead and left members."""
    h = Harness(seed=31)
    h.add_peers(["a", "b", "c", "s", "d", "l"])
    h.feed([Suspect(1, "s", "a"), Dead(1, "d", "a"), Dead(1, "l", "l")])
    h.advance(0.3)
    h.events()
    return h


def _snapshot(h: Harness) -> Any:
    e = h.engine
    return (sorted((m.name, m.state, m.incarnation, m.address, m.meta) for m in e.members()), e.health_score)


def _assert_untouched(h: Harness, before: Any) -> None:
    assert _snapshot(h) == before
    assert h.engine.events() == []
    assert h.engine.datagrams_to_send() == []
    assert h.engine.streams_to_open() == []


VALID_PACKETS = [
    encode_packet([Alive(3, "newcomer", ("10.4.4.4", 7946), b"meta")]),
    encode_packet([Suspect(1, "a", "b")]),
    encode_packet([Dead(1, "b", "c")]),
    encode_packet([Dead(1, "c", "c")]),
    encode_packet([Alive(2, SELF, SELF_ADDR, b"forged")]),
    encode_packet([Ping(5, SELF, "a"), Suspect(1, SELF, "a")]),
    encode_packet([IndirectPing(6, "a", ("10.0.1.2", 7946), "b", True)]),
    encode_packet([Ack(7, b"\x92\x01\x90"), Nack(8)]),
    encode_packet([Alive(9, "a", ("10.0.1.2", 7946)), Suspect(9, "b", "a"), Dead(9, "c", "a")]),
]
VALID_STREAMS = [
    encode_stream(
        PushPull(
            True,
            (
                MemberState("x", ("10.5.5.5", 1), b"", 4, State.ALIVE),
                MemberState("a", ("10.0.1.2", 7946), b"m", 7, State.DEAD),
                MemberState(SELF, SELF_ADDR, b"", 3, State.SUSPECT),
            ),
            b"user",
        )
    ),
    encode_stream(Ping(3, SELF, "a")),
    encode_stream(Ack(3, b"")),
]


@st.composite
def mutated(draw: st.DrawFn, originals: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i]
        else:
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xD9, 0xDC, 0xDD, 0xFF]))
    return bytes(data)


def _decodes(decoder: Any, data: bytes) -> bool:
    try:
        decoder(data)
    except DecodeError:
        return False
    return True


garbage_datagrams = st.one_of(st.binary(max_size=300), mutated(VALID_PACKETS))
garbage_streams = st.one_of(st.binary(max_size=300), mutated(VALID_STREAMS))


@FUZZ
@given(data=garbage_datagrams)
def test_garbage_datagram_never_raises_nor_changes_membership(data: bytes) -> None:
    h = _populated()
    before = _snapshot(h)
    dropped = h.engine.stats["drop_decode"]
    h.engine.receive_datagram(data, PEER_ADDR, h.now)
    if _decodes(decode_packet, data):
        return  # a valid packet after all: only "never raises" applies
    _assert_untouched(h, before)
    assert h.engine.stats["drop_decode"] == dropped + 1


@FUZZ
@given(data=garbage_streams)
def test_garbage_stream_request_never_raises_nor_changes_membership(data: bytes) -> None:
    h = _populated()
    before = _snapshot(h)
    reply = h.engine.handle_stream(data, PEER_ADDR, h.now)
    if _decodes(decode_stream, data):
        return
    assert reply is None
    _assert_untouched(h, before)


@FUZZ
@given(data=garbage_streams)
def test_garbage_stream_reply_never_raises_nor_changes_membership(data: bytes) -> None:
    h = _populated()
    h.engine.join([PEER_ADDR], h.now)
    h.collect()
    before = _snapshot(h)
    h.engine.stream_reply(h.opened[-1].id, data, h.now)
    if _decodes(decode_stream, data):
        return
    _assert_untouched(h, before)


_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e300, math.nan, math.inf, 1000.0, 1000.0001]),
    st.integers(-(2**63), 2**64 - 1),
)
ack_payloads = st.one_of(
    st.binary(max_size=1024),
    st.lists(_floats, min_size=0, max_size=40).map(lambda v: msgpack.packb([1, v])),
    st.lists(_floats, min_size=11, max_size=11).map(lambda v: msgpack.packb([1, v])),
    st.tuples(st.integers(-3, 3), st.lists(_floats, max_size=12)).map(lambda t: msgpack.packb(list(t))),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(ack_payloads, min_size=1, max_size=6))
def test_any_ack_payload_is_survived(payloads: list[bytes]) -> None:
    """Ack payloads (network coordinates) are peer input too: odd ones must not break probing."""
    h = Harness(seed=41)
    h.add_peers(["a", "b", "c", "d"])
    queue = list(payloads)

    def answer(hh: Harness, s: Sent) -> None:
        peer = hh.name_at.get(s.addr)
        for ping in s.of(Ping):
            if ping.target == peer and peer != SELF:
                payload = queue.pop(0) if queue else payloads[-1]
                hh.feed([Ack(ping.seq, payload)], src=s.addr)

    h.advance(8.0, responder=answer)
    start = len(h.sent)
    h.advance(14.0, responder=answer)
    assert [p for s in h.sent_since(start) for p in s.of(Ping) if p.source == SELF]
    assert all(state == State.ALIVE for state in h.engine.view().values())


# -- determinism -----------------------------------------------------------------------------

NAMES = ["a", "b", "c", "d", SELF]
stream_ids = st.integers(min_value=0, max_value=12)
"""Stream ids: some were handed out by the engine, some never were."""
ADDRS = {n: (f"10.0.1.{i + 2}", 7946) for i, n in enumerate(NAMES)}
ADDRS[SELF] = SELF_ADDR
names = st.sampled_from(NAMES)
incs = st.integers(0, 4)

messages: st.SearchStrategy[WireMessage] = st.one_of(
    st.builds(lambda i, n, m: Alive(i, n, ADDRS[n], m), incs, names, st.sampled_from([b"", b"m"])),
    st.builds(Suspect, incs, names, names),
    st.builds(Dead, incs, names, names),
    st.builds(lambda s, n: Ping(s, n, "a"), st.integers(0, 3), names),
    st.builds(Ack, st.integers(0, 2**32 - 1)),
    st.builds(Nack, st.integers(0, 2**32 - 1)),
    st.builds(lambda s, n: IndirectPing(s, n, ADDRS[n], "b", True), st.integers(0, 3), names),
)
member_states = st.builds(
    lambda n, i, s: MemberState(n, ADDRS[n], b"", i, s), names, incs, st.sampled_from(list(State))
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("datagram"), st.lists(messages, min_size=1, max_size=4), names),
        st.tuples(st.just("advance"), st.floats(0.0, 4.0)),
        st.tuples(st.just("push_pull"), st.lists(member_states, max_size=5), names),
        st.tuples(st.just("reply"), st.lists(member_states, max_size=5), stream_ids),
        st.tuples(st.just("failed"), stream_ids),
        st.tuples(st.just("meta"), st.binary(max_size=3)),
        st.tuples(st.just("leave")),
    ),
    max_size=30,
)


def _run(seed: int, ops: list[tuple[Any, ...]]) -> list[Any]:
    """Drive a fresh engine; return everything it produced, raw bytes included."""
    cfg = make_config()
    now = 0.0
    engine = Engine(cfg, rng=random.Random(seed), now=now)
    trace: list[Any] = []

    def drain(tag: str) -> None:
        trace.append(
            (
                tag,
                now,
                engine.datagrams_to_send(),
                engine.streams_to_open(),
                engine.events(),
                engine.next_deadline(),
                sorted(engine.view().items()),
                engine.health_score,
            )
        )

    for op in ops:
        kind = op[0]
        if kind == "datagram":
            engine.receive_datagram(encode_packet(op[1]), ADDRS[op[2]], now)
        elif kind == "advance":
            end = now + op[1]
            while (d := engine.next_deadline()) is not None and d <= end:
                now = max(now, d)
                engine.handle_timer(now)
                drain("timer")
            now = end
        elif kind == "push_pull":
            request = encode_stream(PushPull(False, tuple(op[1])))
            trace.append(engine.handle_stream(request, ADDRS[op[2]], now))
        elif kind == "reply":
            engine.stream_reply(op[2], encode_stream(PushPull(False, tuple(op[1]))), now)
        elif kind == "failed":
            engine.stream_failed(op[1], now)
        elif kind == "meta":
            if engine.leaving:  # refused once leaving (LocalProtocolError)
                trace.append("meta refused")
            else:
                engine.set_meta(op[1], now)
        else:
            engine.leave(now)
        drain(kind)
    trace.append(dict(engine.stats))
    return trace


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), ops=operations)
def test_same_seed_and_inputs_give_identical_outputs(seed: int, ops: list[tuple[Any, ...]]) -> None:
    assert _run(seed, ops) == _run(seed, ops)


def test_the_seed_matters() -> None:
    ops: list[tuple[Any, ...]] = [("datagram", [Alive(1, n, ADDRS[n])], n) for n in "abcd"]
    ops.append(("advance", 20.0))
    runs = {repr(_run(seed, ops)) for seed in range(4)}
    assert len(runs) > 1
