"""msgpack encoding of messages, behind a one-byte protocol version.

Datagram: `PROTOCOL_VERSION` byte, then a msgpack array of 1..255 messages (every datagram
is a compound packet). Message: a msgpack array `[CODE, field, ...]`.
Stream frame: `PROTOCOL_VERSION` byte, then one message.

Rules:
- `decode_*` accept arbitrary bytes and raise only `DecodeError`; every field is checked
  for type and bound (see `limits`), unknown codes are refused;
- encoding is split so callers can cache: `encode_message` gives a message's bytes once,
  `pack_packet` joins already-encoded messages (the broadcast queue keeps bytes, not
  objects), and `packet_size` predicts a packet's size without building it;
- layers above membership add their messages with `register` (codes are unique).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgpack

from swimnet.errors import DecodeError
from swimnet.wire import fields as f
from swimnet.wire.limits import (
    MAX_DATAGRAM,
    MAX_MESSAGES_PER_PACKET,
    MAX_META,
    MAX_PAYLOAD,
    MAX_PUSH_PULL_MEMBERS,
    MAX_STREAM_FRAME,
    MAX_USER_STATE,
    PROTOCOL_VERSION,
)
from swimnet.wire.messages import (
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
)

M = TypeVar("M", bound=WireMessage)
Encoder = Callable[[Any], list[Any]]
Decoder = Callable[[list[Any]], WireMessage]

_encoders: dict[type[WireMessage], Encoder] = {}
_decoders: dict[int, Decoder] = {}
_VERSION_BYTE = bytes([PROTOCOL_VERSION])
_packb = msgpack.Packer(use_bin_type=True).pack


def register(cls: type[M], encode: Callable[[M], list[Any]], decode: Callable[[list[Any]], M]) -> None:
    """Add a message type: `encode` gives its fields (without the code), `decode` checks them.

    `decode` receives the whole list `[code, fields...]` and must raise DecodeError on any
    bad field.
    """
    code = cls.CODE
    if code in _decoders and _encoders.get(cls) is None:
        raise ValueError(f"message code {code} is already registered")
    _encoders[cls] = encode
    _decoders[code] = decode


def encode_message(message: WireMessage) -> bytes:
    """The msgpack bytes of one message (no version byte)."""
    data: bytes = _packb([message.CODE, *_encoders[type(message)](message)])
    return data


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")


def packet_size(message_sizes_total: int, count: int) -> int:
    """Size of a packet holding `count` messages whose encodings total the given bytes."""
    return 1 + (1 if count < 16 else 3) + message_sizes_total


def pack_packet(encoded: Sequence[bytes]) -> bytes:
    """A datagram from already-encoded messages (1..255 of them)."""
    if not 1 <= len(encoded) <= MAX_MESSAGES_PER_PACKET:
        raise ValueError(f"a packet holds 1..{MAX_MESSAGES_PER_PACKET} messages")
    return _VERSION_BYTE + _array_header(len(encoded)) + b"".join(encoded)


def encode_packet(messages: Iterable[WireMessage]) -> bytes:
    return pack_packet([encode_message(m) for m in messages])


def encode_stream(message: WireMessage) -> bytes:
    return _VERSION_BYTE + encode_message(message)


def _unpack(data: bytes, max_size: int, what: str) -> Any:
    if type(data) is not bytes:
        raise DecodeError(f"{what}: expected bytes")
    if len(data) < 2:
        raise DecodeError(f"{what}: truncated")
    if len(data) > max_size:
        raise DecodeError(f"{what}: larger than {max_size} bytes")
    if data[0] != PROTOCOL_VERSION:
        raise DecodeError(f"{what}: unsupported protocol version {data[0]}")
    try:
        return msgpack.unpackb(
            memoryview(data)[1:],
            raw=False,
            strict_map_key=True,
            max_bin_len=max_size,
            max_str_len=max_size,
            max_array_len=max(MAX_PUSH_PULL_MEMBERS, MAX_MESSAGES_PER_PACKET),
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types on garbage; all mean the same
        raise DecodeError(f"{what}: not msgpack ({type(exc).__name__})") from None


def _message(item: Any) -> WireMessage:
    if type(item) is not list or not item:
        raise DecodeError("message: expected [code, fields...]")
    decode = _decoders.get(item[0]) if type(item[0]) is int else None
    if decode is None:
        raise DecodeError(f"message: unknown code {item[0]!r}")
    return decode(item)


def decode_packet(data: bytes) -> list[WireMessage]:
    """The messages of one datagram; raises DecodeError if any part is invalid."""
    items = _unpack(data, MAX_DATAGRAM, "packet")
    if type(items) is not list or not 1 <= len(items) <= MAX_MESSAGES_PER_PACKET:
        raise DecodeError(f"packet: expected a list of 1..{MAX_MESSAGES_PER_PACKET} messages")
    return [_message(item) for item in items]


def decode_stream(data: bytes) -> WireMessage:
    """The one message of a stream frame."""
    return _message(_unpack(data, MAX_STREAM_FRAME, "stream"))


# -- membership messages ------------------------------------------------------------------


def _dec_ping(v: list[Any]) -> Ping:
    f.fields(v, 3, "ping")
    return Ping(f.uint(v[1], "ping.seq"), f.name(v[2], "ping.target"), f.name(v[3], "ping.source"))


def _dec_indirect(v: list[Any]) -> IndirectPing:
    f.fields(v, 5, "indirect_ping")
    return IndirectPing(
        f.uint(v[1], "indirect_ping.seq"),
        f.name(v[2], "indirect_ping.target"),
        f.address(v[3], "indirect_ping.target_addr"),
        f.name(v[4], "indirect_ping.source"),
        f.boolean(v[5], "indirect_ping.nack"),
    )


def _dec_ack(v: list[Any]) -> Ack:
    f.fields(v, 2, "ack")
    return Ack(f.uint(v[1], "ack.seq"), f.blob(v[2], "ack.payload", MAX_PAYLOAD))


def _dec_nack(v: list[Any]) -> Nack:
    f.fields(v, 1, "nack")
    return Nack(f.uint(v[1], "nack.seq"))


def _dec_alive(v: list[Any]) -> Alive:
    f.fields(v, 5, "alive")
    return Alive(
        f.uint(v[1], "alive.incarnation"),
        f.name(v[2], "alive.node"),
        f.address(v[3], "alive.addr"),
        f.blob(v[4], "alive.meta", MAX_META),
        f.vsn(v[5], "alive.vsn"),
    )


def _dec_suspect(v: list[Any]) -> Suspect:
    f.fields(v, 3, "suspect")
    return Suspect(
        f.uint(v[1], "suspect.incarnation"), f.name(v[2], "suspect.node"), f.name(v[3], "suspect.sender")
    )


def _dec_dead(v: list[Any]) -> Dead:
    f.fields(v, 3, "dead")
    return Dead(f.uint(v[1], "dead.incarnation"), f.name(v[2], "dead.node"), f.name(v[3], "dead.sender"))


_STATES = tuple(State)


def _dec_member(v: Any) -> MemberState:
    if type(v) is not list or len(v) != 6:
        raise DecodeError("push_pull.member: expected 6 fields")
    state = f.uint(v[4], "push_pull.member.state", len(_STATES) - 1)
    return MemberState(
        f.name(v[0], "push_pull.member.name"),
        f.address(v[1], "push_pull.member.addr"),
        f.blob(v[2], "push_pull.member.meta", MAX_META),
        f.uint(v[3], "push_pull.member.incarnation"),
        _STATES[state],
        f.vsn(v[5], "push_pull.member.vsn"),
    )


def _dec_push_pull(v: list[Any]) -> PushPull:
    f.fields(v, 3, "push_pull")
    members = v[2]
    if type(members) is not list or len(members) > MAX_PUSH_PULL_MEMBERS:
        raise DecodeError(f"push_pull.members: expected a list of at most {MAX_PUSH_PULL_MEMBERS}")
    return PushPull(
        f.boolean(v[1], "push_pull.join"),
        tuple(_dec_member(m) for m in members),
        f.blob(v[3], "push_pull.user", MAX_USER_STATE),
    )


register(Ping, lambda m: [m.seq, m.target, m.source], _dec_ping)
register(IndirectPing, lambda m: [m.seq, m.target, list(m.target_addr), m.source, m.nack], _dec_indirect)
register(Ack, lambda m: [m.seq, m.payload], _dec_ack)
register(Nack, lambda m: [m.seq], _dec_nack)
register(Alive, lambda m: [m.incarnation, m.node, list(m.addr), m.meta, list(m.vsn)], _dec_alive)
register(Suspect, lambda m: [m.incarnation, m.node, m.sender], _dec_suspect)
register(Dead, lambda m: [m.incarnation, m.node, m.sender], _dec_dead)
register(
    PushPull,
    lambda m: [
        m.join,
        [[s.name, list(s.addr), s.meta, s.incarnation, int(s.state), list(s.vsn)] for s in m.members],
        m.user,
    ],
    _dec_push_pull,
)
