"""Round trips through the wire codec, and the packet-building helpers' size arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_strategies import MESSAGE_STRATEGIES, acks, messages, pings, small_messages

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
    encode_message,
    encode_packet,
    encode_stream,
    pack_packet,
    packet_size,
)
from swimnet.wire.codec import encode_ack, encode_ping
from swimnet.wire.limits import MAX_MESSAGES_PER_PACKET, PROTOCOL_VERSION

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- one example of every message, by hand ------------------------------------------------------

EXAMPLES: list[WireMessage] = [
    Ping(7, "node-b", "node-a"),
    IndirectPing(8, "node-c", ("10.0.0.3", 7946), "node-a", nack=False),
    IndirectPing(9, "node-c", ("::1", 0), "node-a"),
    Ack(7),
    Ack(2**32 - 1, b"\x00coord" * 10),
    Nack(0),
    Alive(3, "node-a", ("10.0.0.1", 65535), b"meta", (1, 5, 3)),
    Alive(0, "é" * 127, ("h", 1)),
    Suspect(4, "node-b", "node-a"),
    Dead(5, "node-b", "node-b"),
    PushPull(True, ()),
    PushPull(
        False,
        (
            MemberState("a", ("10.0.0.1", 7946), b"", 1, State.ALIVE),
            MemberState("b", ("10.0.0.2", 7946), b"m" * 512, 2, State.SUSPECT, (2, 2, 2)),
            MemberState("c", ("10.0.0.3", 7946), b"", 3, State.DEAD, (0, 255, 255)),
            MemberState("d", ("10.0.0.4", 7946), b"", 4, State.LEFT, (0, 0, 0)),
        ),
        b"user state",
    ),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_example_round_trips(message: WireMessage) -> None:
    assert decode_packet(encode_packet([message])) == [message]
    assert decode_stream(encode_stream(message)) == message


def test_every_message_type_has_a_strategy() -> None:
    covered = {type(m) for m in EXAMPLES}
    assert covered == {Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead, PushPull}
    assert len(MESSAGE_STRATEGIES) == len(covered)


def test_decoded_values_have_the_declared_types() -> None:
    [alive, pp] = decode_packet(encode_packet([EXAMPLES[6], EXAMPLES[-1]]))
    assert isinstance(alive, Alive)
    assert type(alive.addr) is tuple and type(alive.vsn) is tuple
    assert isinstance(pp, PushPull)
    assert type(pp.members) is tuple
    assert [type(m.state) for m in pp.members] == [State] * 4
    assert [m.state for m in pp.members] == [State.ALIVE, State.SUSPECT, State.DEAD, State.LEFT]


def test_frames_start_with_the_protocol_version() -> None:
    assert encode_packet([Nack(1)])[0] == PROTOCOL_VERSION
    assert encode_stream(Nack(1))[0] == PROTOCOL_VERSION


# -- properties --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MESSAGE_STRATEGIES))
@SLOW
@given(data=st.data())
def test_each_type_round_trips(kind: str, data: st.DataObject) -> None:
    message = data.draw(MESSAGE_STRATEGIES[kind])
    assert decode_packet(encode_packet([message])) == [message]
    assert decode_stream(encode_stream(message)) == message
    # encoding is deterministic: a decoded message re-encodes to the same bytes
    assert encode_message(decode_stream(encode_stream(message))) == encode_message(message)


@SLOW
@given(st.lists(messages, min_size=1, max_size=6))
def test_compound_packet_round_trips(batch: list[WireMessage]) -> None:
    assert decode_packet(encode_packet(batch)) == batch


@SLOW
@given(st.lists(small_messages, min_size=1, max_size=MAX_MESSAGES_PER_PACKET))
def test_compound_packet_of_many_small_messages_round_trips(batch: list[WireMessage]) -> None:
    data = encode_packet(batch)
    if len(data) <= 65_507:
        assert decode_packet(data) == batch


@SLOW
@given(st.lists(messages, min_size=1, max_size=20))
def test_pack_packet_of_encoded_messages_equals_encode_packet(batch: list[WireMessage]) -> None:
    encoded = [encode_message(m) for m in batch]
    assert pack_packet(encoded) == encode_packet(batch)


@SLOW
@given(
    st.one_of(
        st.integers(1, MAX_MESSAGES_PER_PACKET),
        st.sampled_from([1, 14, 15, 16, 17, 254, 255]),
    ),
    st.data(),
)
def test_packet_size_predicts_pack_packet(count: int, data: st.DataObject) -> None:
    batch = data.draw(st.lists(small_messages, min_size=count, max_size=count))
    encoded = [encode_message(m) for m in batch]
    assert packet_size(sum(map(len, encoded)), len(encoded)) == len(pack_packet(encoded))


@pytest.mark.parametrize("count", [1, 2, 15, 16, 17, 100, 254, 255])
def test_packet_size_at_the_array_header_boundaries(count: int) -> None:
    encoded = [encode_message(Nack(i)) for i in range(count)]
    packet = pack_packet(encoded)
    assert packet_size(sum(map(len, encoded)), count) == len(packet)
    # version byte + fixarray (1 byte) up to 15 messages, array16 (3 bytes) from 16 on
    header = 1 if count <= 15 else 3
    assert len(packet) == 1 + header + sum(map(len, encoded))
    assert decode_packet(packet) == [Nack(i) for i in range(count)]


@pytest.mark.parametrize("count", [0, MAX_MESSAGES_PER_PACKET + 1])
def test_pack_packet_refuses_a_count_out_of_range(count: int) -> None:
    with pytest.raises(ValueError):
        pack_packet([encode_message(Nack(1))] * count)


# -- encoders that skip the message object ------------------------------------------------------


@given(pings)
def test_encode_ping_is_encode_message_of_the_ping(ping: Ping) -> None:
    assert encode_ping(ping.seq, ping.target, ping.source) == encode_message(ping)


@given(acks)
def test_encode_ack_is_encode_message_of_the_ack(ack: Ack) -> None:
    assert encode_ack(ack.seq, ack.payload) == encode_message(ack)
    assert encode_ack(ack.seq) == encode_message(Ack(ack.seq))


def test_bulk_frames_are_compressed_harder_than_push_pulls() -> None:
    """Frames from BULK_FRAME on (table transfers) at zlib level 6, smaller ones at level 1:
    the bytes on the wire are exactly zlib's at that level, and both decode."""
    import zlib

    from swimnet.wire.codec import BULK_FRAME, COMPRESSED, decode_stream, encode_message, encode_stream
    from swimnet.wire.messages import MemberState, PushPull, State

    def members(count: int) -> tuple[MemberState, ...]:
        return tuple(
            MemberState(f"node-{i:05d}", (f"10.0.{i // 250}.{i % 250}", 7946), b"", i, State.ALIVE, (2, 2, 2))
            for i in range(count)
        )

    for count, level in ((60, 1), (4000, 6)):
        message = PushPull(False, members(count), b"")
        plain = encode_message(message)
        assert (len(plain) >= BULK_FRAME) == (level == 6)
        frame = encode_stream(message)
        assert frame[0] == COMPRESSED and frame[5:] == zlib.compress(plain, level)
        assert decode_stream(frame) == message
