"""The decoder refuses everything outside the protocol, and raises nothing but DecodeError."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from wire_strategies import (
    VERSION,
    message_like_lists,
    messages,
    msgpack_leaves,
    msgpack_objects,
    packb,
    raw_packet,
    raw_stream,
    small_messages,
)

from swimnet.errors import DecodeError, RemoteProtocolError
from swimnet.wire import (
    Ack,
    Alive,
    IndirectPing,
    Nack,
    Ping,
    WireMessage,
    decode_packet,
    decode_stream,
    encode_message,
    encode_packet,
    encode_stream,
)
from swimnet.wire.limits import MAX_DATAGRAM, MAX_STREAM_FRAME

SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def decodes_or_refuses(data: Any) -> None:
    """Both decoders either give messages or raise DecodeError; anything else fails the test."""
    try:
        result = decode_packet(data)
    except DecodeError:
        pass
    else:
        assert 1 <= len(result) <= 255
        assert all(isinstance(m, WireMessage) for m in result)
    try:
        message = decode_stream(data)
    except DecodeError:
        pass
    else:
        assert isinstance(message, WireMessage)


def refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_packet(data)


def refused_stream(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_stream(data)


# A valid message of every type as its raw list, to be spoiled one field at a time below.
PING = [1, 7, "b", "a"]
INDIRECT = [2, 8, "c", ["10.0.0.3", 7946], "a", True]
ACK = [3, 7, b""]
NACK = [4, 7]
ALIVE = [5, 3, "a", ["10.0.0.1", 7946], b"", [2, 2, 2]]
SUSPECT = [6, 4, "b", "a"]
DEAD = [7, 5, "b", "a"]
MEMBER = ["a", ["10.0.0.1", 7946], b"", 1, 0, [2, 2, 2]]
PUSH_PULL = [8, False, [MEMBER], b""]
VALID_RAW = [PING, INDIRECT, ACK, NACK, ALIVE, SUSPECT, DEAD, PUSH_PULL]


def with_field(message: list[Any], index: int, value: Any) -> list[Any]:
    spoiled = list(message)
    spoiled[index] = value
    return spoiled


def with_member_field(index: int, value: Any) -> list[Any]:
    return with_field(PUSH_PULL, 2, [with_field(MEMBER, index, value)])


def test_the_raw_templates_are_valid() -> None:
    assert len(decode_packet(raw_packet(*VALID_RAW))) == len(VALID_RAW)
    for raw in VALID_RAW:
        decode_stream(raw_stream(raw))


def test_decode_error_is_a_remote_protocol_error() -> None:
    assert issubclass(DecodeError, RemoteProtocolError)


# -- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 3, 0x92, 255])
def test_wrong_version_byte(version: int) -> None:
    body = encode_packet([Nack(1)])[1:]
    refused(bytes([version]) + body)
    refused_stream(bytes([version]) + encode_stream(Nack(1))[1:])


@pytest.mark.parametrize("data", [b"", b"\x02", b"\x02\x91", b"\x02\x91\x92\x04", b"\x02\xdc\x00"])
def test_truncated(data: bytes) -> None:
    refused(data)
    refused_stream(data)


@SLOW
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_every_strict_prefix_is_refused(batch: list[WireMessage], data: st.DataObject) -> None:
    packet = encode_packet(batch)
    cut = data.draw(st.integers(0, len(packet) - 1))
    refused(packet[:cut])
    stream = encode_stream(batch[0])
    refused_stream(stream[: min(cut, len(stream) - 1)])


@SLOW
@given(st.lists(small_messages, min_size=1, max_size=4), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(batch: list[WireMessage], extra: bytes) -> None:
    refused(encode_packet(batch) + extra)
    refused_stream(encode_stream(batch[0]) + extra)


@pytest.mark.parametrize("data", [bytearray(encode_packet([Nack(1)])), memoryview(encode_packet([Nack(1)]))])
def test_only_bytes_are_accepted(data: Any) -> None:
    refused(data)
    refused_stream(data)


def _packet_of_size(size: int) -> bytes:
    """A structurally valid datagram of exactly `size` bytes (acks with large payloads)."""
    full = encode_message(Ack(0, b"x" * 1024))
    count = (size - 4 - 5) // len(full)
    for seq in (0, 200, 60_000):  # 1, 2 or 3 bytes of seq
        for last in range(1025):
            encoded = [full] * count + [encode_message(Ack(seq, b"y" * last))]
            packet = VERSION + b"\xdc" + len(encoded).to_bytes(2, "big") + b"".join(encoded)
            if len(packet) == size:
                return packet
    raise AssertionError(f"cannot build a packet of {size} bytes")


def test_largest_datagram_is_accepted_and_one_more_byte_refused() -> None:
    largest = _packet_of_size(MAX_DATAGRAM)
    assert len(decode_packet(largest)) > 60
    too_large = _packet_of_size(MAX_DATAGRAM + 1)
    assert len(too_large) == 65_508
    refused(too_large)


def test_oversized_stream_frame_is_refused() -> None:
    refused_stream(VERSION + bytes(MAX_STREAM_FRAME))


def test_packet_with_255_messages_is_accepted_and_256_refused() -> None:
    nack = encode_message(Nack(1))
    ok = VERSION + b"\xdc" + (255).to_bytes(2, "big") + nack * 255
    assert decode_packet(ok) == [Nack(1)] * 255
    refused(VERSION + b"\xdc" + (256).to_bytes(2, "big") + nack * 256)


@pytest.mark.parametrize(
    "body",
    [
        [],  # a packet holds at least one message
        {},
        {"a": 1},
        NACK,  # a message where a list of messages is expected
        7,
        "packet",
        b"packet",
        None,
        [[]],
        [None],
        [{}],
        [[True, 7]],  # bool is not a code
        [[4.0, 7]],
        [["4", 7]],
    ],
    ids=repr,
)
def test_malformed_packet_bodies(body: Any) -> None:
    refused(VERSION + packb(body))


# msgpack-level garbage *inside* one message of an otherwise well-framed packet: the packet
# frame parses, the message does not (a decoder that splits the frame first, then decodes each
# message, must still turn these into DecodeError)
INNER_GARBAGE = {
    "map-field": [[1, {"a": 1}, "a", "b"]],
    "map-code": [[{"a": 1}, 7]],
    "ext-field": [[1, msgpack.ExtType(1, b"x"), "a", "b"]],
    "ext-code": [[msgpack.ExtType(1, b"x"), 7]],
    "float-field": [[4, 1.5]],
    "map-in-member": [[8, False, [["a", {"x": 1}, b"", 1, 0, [2, 2, 2]]], b""]],
    "ext-in-member": [[8, False, [["a", ["h", 1], msgpack.ExtType(5, b"m"), 1, 0, [2, 2, 2]]], b""]],
}
INNER_RAW = {
    "bad-utf8-name": VERSION + b"\x91\x94\x01\x00\xa1\x80\xa1a",
    "bad-utf8-second-message": VERSION + b"\x92\x92\x04\x00\x94\x01\x00\xa1\xff\xa1a",
    "timestamp-ext-field": VERSION + b"\x91\x94\x01\xd6\xff\x00\x00\x00\x00\xa1a\xa1a",
    "bad-utf8-member-host": VERSION
    + b"\x91"
    + packb([8, False, [["a", ["h", 1], b"", 1, 0, [2, 2, 2]]], b""]).replace(b"\xa1h", b"\xa1\x80"),
    "deep-nesting-field": VERSION + b"\x91\x92\x04" + b"\x91" * 3000 + b"\x00",
}


@pytest.mark.parametrize("data", list(INNER_RAW.values()), ids=list(INNER_RAW))
def test_garbage_inside_a_message_raw(data: bytes) -> None:
    refused(data)
    refused_stream(VERSION + data[2:])  # the same message(s) without the packet header


@pytest.mark.parametrize("body", list(INNER_GARBAGE.values()), ids=list(INNER_GARBAGE))
def test_garbage_inside_a_message(body: list[Any]) -> None:
    refused(VERSION + packb(body))
    refused(VERSION + packb([NACK, *body]))
    refused_stream(VERSION + packb(body[0]))


@pytest.mark.parametrize("code", [0, 9, 31, 32, 64, 127, 255, 2**32, -1])
def test_unknown_code(code: int) -> None:
    refused(raw_packet([code, 7]))
    refused_stream(raw_stream([code, 7]))


def test_one_bad_message_spoils_the_whole_packet() -> None:
    refused(raw_packet(PING, NACK, [3, -1, b""], ALIVE))


def test_stream_frame_is_one_message_not_a_packet() -> None:
    refused_stream(raw_stream([NACK]))
    refused(raw_stream(NACK))


# -- fields ------------------------------------------------------------------------------------


def _cases() -> list[tuple[str, list[Any]]]:
    cases: list[tuple[str, list[Any]]] = []
    for raw in VALID_RAW:
        name = {1: "ping", 2: "indirect", 3: "ack", 4: "nack", 5: "alive", 6: "suspect", 7: "dead", 8: "pp"}[
            raw[0]
        ]
        cases.append((f"{name}-missing-field", raw[:-1]))
        cases.append((f"{name}-extra-field", [*raw, 0]))
    cases += [
        # bool where int expected (bool is an int in python, not on this wire)
        ("ping-seq-true", with_field(PING, 1, True)),
        ("ping-seq-false", with_field(PING, 1, False)),
        ("alive-incarnation-bool", with_field(ALIVE, 1, True)),
        ("nack-seq-float", with_field(NACK, 1, 7.0)),
        ("nack-seq-str", with_field(NACK, 1, "7")),
        ("nack-seq-none", with_field(NACK, 1, None)),
        # ints out of range
        ("nack-seq-negative", with_field(NACK, 1, -1)),
        ("nack-seq-uint32+1", with_field(NACK, 1, 2**32)),
        ("nack-seq-uint64", with_field(NACK, 1, 2**64 - 1)),
        ("nack-seq-int64-min", with_field(NACK, 1, -(2**63))),
        # ping and ack have a decoding path of their own (checked inline): the same bounds
        ("ping-seq-uint32+1", with_field(PING, 1, 2**32)),
        ("ping-seq-negative", with_field(PING, 1, -1)),
        ("ack-seq-uint32+1", with_field(ACK, 1, 2**32)),
        ("ack-seq-negative", with_field(ACK, 1, -1)),
        ("ack-seq-true", with_field(ACK, 1, True)),
        ("ack-seq-float", with_field(ACK, 1, 7.0)),
        ("ping-source-int", with_field(PING, 3, 5)),
        ("ack-payload-none", with_field(ACK, 2, None)),
        ("suspect-incarnation-negative", with_field(SUSPECT, 1, -5)),
        ("dead-incarnation-too-large", with_field(DEAD, 1, 2**40)),
        # names
        ("ping-empty-target", with_field(PING, 2, "")),
        ("ping-empty-source", with_field(PING, 3, "")),
        ("ping-name-256-ascii", with_field(PING, 2, "n" * 256)),
        ("ping-name-128-e-acute", with_field(PING, 2, "é" * 128)),  # 256 bytes of UTF-8
        ("ping-name-86-euro", with_field(PING, 2, "€" * 86)),  # 258 bytes
        ("ping-name-64-emoji", with_field(PING, 3, "😀" * 64)),  # 256 bytes
        ("ping-name-bytes", with_field(PING, 2, b"node")),
        ("ping-name-int", with_field(PING, 2, 5)),
        ("ping-name-list", with_field(PING, 2, ["n"])),
        ("suspect-empty-node", with_field(SUSPECT, 2, "")),
        ("dead-empty-sender", with_field(DEAD, 3, "")),
        ("alive-name-too-long", with_field(ALIVE, 2, "é" * 128)),
        # blobs
        ("ack-payload-str", with_field(ACK, 2, "coord")),
        ("ack-payload-1025", with_field(ACK, 2, b"x" * 1025)),
        ("alive-meta-513", with_field(ALIVE, 4, b"m" * 513)),
        ("alive-meta-str", with_field(ALIVE, 4, "meta")),
        ("alive-meta-none", with_field(ALIVE, 4, None)),
        # booleans
        ("indirect-nack-int", with_field(INDIRECT, 5, 1)),
        ("indirect-nack-none", with_field(INDIRECT, 5, None)),
        ("pp-join-int", with_field(PUSH_PULL, 1, 0)),
        # versions
        ("alive-vsn-cur-above-max", with_field(ALIVE, 5, [1, 2, 3])),
        ("alive-vsn-cur-below-min", with_field(ALIVE, 5, [2, 3, 1])),
        ("alive-vsn-min-above-max", with_field(ALIVE, 5, [3, 2, 2])),
        ("alive-vsn-256", with_field(ALIVE, 5, [2, 256, 2])),
        ("alive-vsn-negative", with_field(ALIVE, 5, [-1, 2, 2])),
        ("alive-vsn-two", with_field(ALIVE, 5, [2, 2])),
        ("alive-vsn-four", with_field(ALIVE, 5, [2, 2, 2, 2])),
        ("alive-vsn-bool", with_field(ALIVE, 5, [True, True, True])),
        ("alive-vsn-map", with_field(ALIVE, 5, {})),
        # addresses
        ("alive-addr-one", with_field(ALIVE, 3, ["10.0.0.1"])),
        ("alive-addr-three", with_field(ALIVE, 3, ["10.0.0.1", 7946, 1])),
        ("alive-addr-str", with_field(ALIVE, 3, "10.0.0.1:7946")),
        ("alive-addr-map", with_field(ALIVE, 3, {})),
        ("alive-addr-port-65536", with_field(ALIVE, 3, ["10.0.0.1", 65_536])),
        ("alive-addr-port-negative", with_field(ALIVE, 3, ["10.0.0.1", -1])),
        ("alive-addr-port-str", with_field(ALIVE, 3, ["10.0.0.1", "7946"])),
        ("alive-addr-port-bool", with_field(ALIVE, 3, ["10.0.0.1", True])),
        ("alive-addr-host-empty", with_field(ALIVE, 3, ["", 7946])),
        ("alive-addr-host-256", with_field(ALIVE, 3, ["h" * 256, 7946])),
        ("alive-addr-host-bytes", with_field(ALIVE, 3, [b"10.0.0.1", 7946])),
        ("indirect-addr-port-65536", with_field(INDIRECT, 3, ["10.0.0.3", 65_536])),
        # push-pull
        ("pp-members-map", with_field(PUSH_PULL, 2, {})),
        ("pp-members-none", with_field(PUSH_PULL, 2, None)),
        ("pp-member-map", with_field(PUSH_PULL, 2, [{}])),
        ("pp-member-five-fields", with_field(PUSH_PULL, 2, [MEMBER[:5]])),
        ("pp-member-seven-fields", with_field(PUSH_PULL, 2, [[*MEMBER, 0]])),
        ("pp-member-state-4", with_member_field(4, 4)),
        ("pp-member-state-negative", with_member_field(4, -1)),
        ("pp-member-state-bool", with_member_field(4, True)),
        ("pp-member-state-str", with_member_field(4, "alive")),
        ("pp-member-empty-name", with_member_field(0, "")),
        ("pp-member-meta-513", with_member_field(2, b"m" * 513)),
        ("pp-member-incarnation-negative", with_member_field(3, -1)),
        ("pp-member-addr-port", with_member_field(1, ["h", 65_536])),
        ("pp-member-vsn", with_member_field(5, [2, 2, 3])),
        ("pp-user-str", with_field(PUSH_PULL, 3, "user")),
    ]
    return cases


BAD_FIELDS = _cases()


@pytest.mark.parametrize("raw", [c[1] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS])
def test_bad_field_is_refused(raw: list[Any]) -> None:
    refused(raw_packet(raw))
    refused_stream(raw_stream(raw))
    refused(raw_packet(NACK, raw))  # wherever it sits in the packet


@pytest.mark.parametrize(
    ("value", "nbytes"),
    [("n" * 255, 255), ("é" * 100, 200), ("é" * 127, 254), ("€" * 85, 255), ("😀" * 63, 252), ("é", 2)],
)
def test_names_up_to_255_bytes_of_utf8_are_accepted(value: str, nbytes: int) -> None:
    assert len(value.encode()) == nbytes
    assert decode_packet(raw_packet(with_field(PING, 2, value))) == [Ping(7, value, "a")]


def test_accepted_bounds() -> None:
    """The inclusive upper bounds themselves decode."""
    decoded = decode_packet(
        raw_packet(
            with_field(NACK, 1, 2**32 - 1),
            with_field(ACK, 2, b"x" * 1024),
            with_field(with_field(PING, 1, 2**32 - 1), 3, "s" * 63),
            with_field(with_field(PING, 1, 0), 2, "t" * 64),
            with_field(ACK, 1, 2**32 - 1),
            with_field(with_field(ALIVE, 4, b"m" * 512), 3, ["h" * 255, 65_535]),
            with_field(ALIVE, 5, [0, 255, 255]),
            with_field(INDIRECT, 3, ["10.0.0.3", 0]),
            with_member_field(4, 3),
        )
    )
    assert decoded[0] == Nack(2**32 - 1)
    assert decoded[1] == Ack(7, b"x" * 1024)
    assert decoded[2:5] == [Ping(2**32 - 1, "b", "s" * 63), Ping(0, "t" * 64, "a"), Ack(2**32 - 1)]
    assert isinstance(decoded[5], Alive) and decoded[5].addr == ("h" * 255, 65_535)
    assert isinstance(decoded[6], Alive) and decoded[6].vsn == (0, 255, 255)
    assert isinstance(decoded[7], IndirectPing) and decoded[7].target_addr == ("10.0.0.3", 0)
    for alone in decoded[:5]:  # a packet of one ping or ack takes the decoder's shortest path
        assert decode_packet(encode_packet([alone])) == [alone]


# -- fuzzing -----------------------------------------------------------------------------------


@SLOW
@given(st.binary(max_size=512))
@example(b"\x02\xc1")  # msgpack's never-used byte
@example(b"\x02\xd4\x00\x00")  # fixext
@example(b"\x02\xc7\x00\x05")  # ext8 of length 0
@example(b"\x02\xc7\x00\xff")  # ext8 of length 0, timestamp type
@example(b"\x02\x91\x92\x04\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00")  # nack with a NaN seq
@example(b"\x02" + b"\x91" * 2000)  # deep nesting
def test_arbitrary_bytes(data: bytes) -> None:
    decodes_or_refuses(data)
    decodes_or_refuses(VERSION + data)


@SLOW
@given(msgpack_objects)
def test_arbitrary_msgpack_objects(obj: Any) -> None:
    decodes_or_refuses(VERSION + packb(obj))
    decodes_or_refuses(VERSION + packb([obj]))


@SLOW
@given(st.lists(message_like_lists(), min_size=1, max_size=4))
def test_message_like_lists(items: list[list[Any]]) -> None:
    decodes_or_refuses(raw_packet(*items))
    decodes_or_refuses(raw_stream(items[0]))


def _kind(value: Any) -> str:
    if type(value) is bool:
        return "bool"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


@SLOW
@given(st.sampled_from(VALID_RAW), st.data())
def test_a_field_of_the_wrong_type_is_refused(raw: list[Any], data: st.DataObject) -> None:
    index = data.draw(st.integers(1, len(raw) - 1), label="index")
    original = raw[index]
    replacement = data.draw(
        st.one_of(msgpack_leaves, st.lists(msgpack_leaves, max_size=3), st.just({})).filter(
            lambda v: _kind(v) != _kind(original)
        ),
        label="replacement",
    )
    refused(raw_packet(with_field(raw, index, replacement)))


@SLOW
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_mutating_one_byte_raises_only_decode_error(batch: list[WireMessage], data: st.DataObject) -> None:
    packet = bytearray(encode_packet(batch))
    index = data.draw(st.integers(0, len(packet) - 1), label="index")
    packet[index] = data.draw(st.integers(0, 255).filter(lambda b: b != packet[index]), label="byte")
    decodes_or_refuses(bytes(packet))
    stream = bytearray(encode_stream(batch[0]))
    index = min(index, len(stream) - 1)
    stream[index] ^= 0xFF
    decodes_or_refuses(bytes(stream))
