"""msgpack encoding of messages, behind a one-byte protocol version.

Datagram: `PROTOCOL_VERSION` byte, then a msgpack array of 1..255 messages (every datagram
is a compound packet). Message: a msgpack array `[CODE, field, ...]`.
Stream frame: `PROTOCOL_VERSION` byte, then one message; or, for frames of 1 KiB and more,
`COMPRESSED` byte, the plain size and the zlib-compressed message (bounded on decoding, see
`swimnet.wire.inflate`: absolute size, ratio, and the caller's allowance).

Rules:
- `decode_*` accept arbitrary bytes and raise only `DecodeError`; every field is checked
  for type and bound (see `limits`; ping and ack, the per-packet case, check theirs inline,
  the field checkers' own code for anything they refuse, and are then built with their
  slots set directly, the very values their constructors give), unknown codes are refused;
- encoding is split so callers can cache: `encode_message` gives a message's bytes once
  (`encode_members` a push-pull's members, each once for every view holding its facts;
  `encode_ping` / `encode_ack` a probe's and an ack's bytes without building the message),
  `pack_packet` joins already-encoded messages (the broadcast queue keeps bytes, not
  objects), and `packet_size` predicts a packet's size without building it;
- layers above membership add their messages with `register` (codes are unique);
- `encode_stream` compresses only when it pays and stays within `MAX_INFLATE_RATIO`, so
  every frame it builds passes the receiver's inflation bounds; at zlib level 1 below
  `BULK_FRAME`, where exchanges are many and small, and level 6 from it, where bytes count.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgpack

from swimnet.errors import DecodeError, LocalProtocolError
from swimnet.wire import fields as f
from swimnet.wire.fields import SHORT_NAME
from swimnet.wire.inflate import inflate
from swimnet.wire.limits import (
    MAX_DATAGRAM,
    MAX_INCARNATION,
    MAX_INFLATE_RATIO,
    MAX_MESSAGES_PER_PACKET,
    MAX_META,
    MAX_PAYLOAD,
    MAX_PUSH_PULL_MEMBERS,
    MAX_STREAM_FRAME,
    MAX_UINT32,
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
_relayed_codes: set[int] = set()
_VERSION_BYTE = bytes([PROTOCOL_VERSION])
COMPRESSED = PROTOCOL_VERSION | 0x10
"""First byte of a compressed stream frame: then the plain size (4 bytes) and zlib data."""
_COMPRESSED_BYTE = bytes([COMPRESSED])
_COMPRESS_OVER = 1024
BULK_FRAME = 64 * 1024
"""Frames this large (bulk table transfers) are compressed at zlib level 6, smaller ones
(membership push-pulls) at level 1: on a 5.7 KB push-pull of 200 members level 6 saves 11%
of the bytes for 2-6x the time (20 against 41-125 us), once per exchange, while a join
burst runs thousands of them back to back; a late joiner's 100,000 table entries (1.9 MB
frames) take 6.9 MB at level 6 and 7.4 MB at level 1."""
_packb = msgpack.Packer(use_bin_type=True).pack


def register(
    cls: type[M],
    encode: Callable[[M], list[Any]],
    decode: Callable[[list[Any]], M],
    *,
    relayed: bool = False,
) -> None:
    """Add a message type: `encode` gives its fields (without the code), `decode` checks them.

    `decode` receives the whole list `[code, fields...]` and must raise DecodeError on any
    bad field. `relayed` marks broadcasts (the same bytes reach a node many times): their
    decoded values are cached by their bytes.
    """
    code = cls.CODE
    if not 0 <= code <= 127:
        raise ValueError("message codes are 0..127 (one msgpack byte)")
    if code in _decoders and _encoders.get(cls) is None:
        raise ValueError(f"message code {code} is already registered")
    _encoders[cls] = encode
    _decoders[code] = decode
    if relayed:
        _relayed_codes.add(code)


def encode_message(message: WireMessage) -> bytes:
    """The msgpack bytes of one message (no version byte); a relayed message (a broadcast)
    equal to one encoded or decoded lately gets the very same bytes object, so the queues of
    every node that relays it share one copy."""
    if message.CODE not in _relayed_codes:
        data: bytes = _packb([message.CODE, *_encoders[type(message)](message)])
        return data
    cached = _relayed_bytes.get(message)
    if cached is None:
        cached = _packb([message.CODE, *_encoders[type(message)](message)])
        _remember_relayed(message, cached)
    return cached


def encode_ping(seq: int, target: str, source: str) -> bytes:
    """`encode_message(Ping(seq, target, source))` without building the message (a probe
    is encoded once and never read back here)."""
    data: bytes = _packb([_PING_CODE, seq, target, source])
    return data


def encode_ack(seq: int, payload: bytes = b"") -> bytes:
    """`encode_message(Ack(seq, payload))` without building the message."""
    data: bytes = _packb([_ACK_CODE, seq, payload])
    return data


_PING_CODE, _ACK_CODE = Ping.CODE, Ack.CODE


def _array_header(n: int) -> bytes:
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + n.to_bytes(2, "big")


_PACKET_HEADS = tuple(_VERSION_BYTE + _array_header(n) for n in range(MAX_MESSAGES_PER_PACKET + 1))
"""The version byte and array header of a packet of n messages, by n."""


def packet_size(message_sizes_total: int, count: int) -> int:
    """Size of a packet holding `count` messages whose encodings total the given bytes."""
    return 1 + (1 if count < 16 else 3) + message_sizes_total


def pack_packet(encoded: Sequence[bytes]) -> bytes:
    """A datagram from already-encoded messages (1..255 of them)."""
    n = len(encoded)
    if not 1 <= n <= MAX_MESSAGES_PER_PACKET:
        raise ValueError(f"a packet holds 1..{MAX_MESSAGES_PER_PACKET} messages")
    if n == 1:
        return _PACKET_HEADS[1] + encoded[0]
    return _PACKET_HEADS[n] + b"".join(encoded)


def encode_packet(messages: Iterable[WireMessage]) -> bytes:
    return pack_packet([encode_message(m) for m in messages])


def encode_stream(message: WireMessage) -> bytes:
    """A stream frame; large ones are zlib-compressed (marker byte COMPRESSED) when it pays
    and the ratio stays within MAX_INFLATE_RATIO (receivers refuse more)."""
    return _stream_frame(encode_message(message))


def _wide_array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    return b"\xdc" + n.to_bytes(2, "big") if n < 0x10000 else b"\xdd" + n.to_bytes(4, "big")


_PUSH_PULL_HEAD = {True: bytes([0x94, PushPull.CODE, 0xC3]), False: bytes([0x94, PushPull.CODE, 0xC2])}


def encode_push_pull(join: bool, members: Sequence[bytes], user: bytes) -> bytes:
    """The stream frame of `PushPull(join, members, user)` from members already encoded by
    `encode_members` (byte for byte what `encode_stream` makes of the message)."""
    payload = b"".join((_PUSH_PULL_HEAD[join], _wide_array_header(len(members)), *members, _packb(user)))
    return _stream_frame(payload)


_MEMBER_BYTES_MAX = 1 << 16
MemberIdentity = tuple[str, tuple[str, int], bytes, tuple[int, int, int]]
"""(name, addr, meta, vsn): what a member says of itself (one shared tuple for equal facts,
see swimnet.membership.member)."""
MemberFacts = tuple[MemberIdentity, int, int]
"""(identity, incarnation, state): what a push-pull member encodes."""
_member_bytes: dict[tuple[int, int, int], tuple[MemberIdentity, bytes]] = {}
"""Encoded push-pull members by (id(identity), incarnation, state), with the identity
itself: held here, it stays alive and its id names no other tuple, so a hit is exact (and
hashing three integers is cheaper than the nested tuple). One encoding for every view that
holds the same identity tuple; bounded, cleared when full."""


def encode_members(facts: Iterable[MemberFacts]) -> list[bytes]:
    """Push-pull members, each as `encode_stream(PushPull(...))` encodes a `MemberState`."""
    cache = _member_bytes
    out: list[bytes] = []
    append = out.append
    for ident, incarnation, state in facts:
        key = (id(ident), incarnation, state)
        hit = cache.get(key)
        if hit is not None and hit[0] is ident:
            append(hit[1])
            continue
        name, addr, meta, vsn = ident
        data: bytes = _packb([name, list(addr), meta, _inc(incarnation), int(state), list(vsn)])
        if len(cache) >= _MEMBER_BYTES_MAX:
            cache.clear()
        cache[key] = (ident, data)
        append(data)
    return out


def _stream_frame(payload: bytes) -> bytes:
    if len(payload) >= _COMPRESS_OVER:
        packed = zlib.compress(payload, 6 if len(payload) >= BULK_FRAME else 1)
        if len(packed) < len(payload) <= MAX_INFLATE_RATIO * len(packed):
            return _COMPRESSED_BYTE + len(payload).to_bytes(4, "big") + packed
    return _VERSION_BYTE + payload


_UNPACK_LIMITS: dict[str, Any] = dict(
    raw=False,
    strict_map_key=True,
    max_array_len=max(MAX_PUSH_PULL_MEMBERS, MAX_MESSAGES_PER_PACKET),
    max_map_len=0,
    max_ext_len=0,
)
_CACHE_MAX = 1 << 15
_message_cache: dict[bytes, WireMessage] = {}
_relayed_bytes: dict[WireMessage, bytes] = {}
"""Relayed messages -> their encoding (the bytes they were decoded from, or encoded to)."""
_member_cache: dict[bytes, MemberState] = {}
"""Decoded values by their exact bytes. Messages are immutable, so identical bytes (the same
broadcast relayed by many peers) are validated once; bounded, cleared when full."""


def _check_frame(data: bytes, max_size: int, what: str) -> None:
    if type(data) is not bytes:
        raise DecodeError(f"{what}: expected bytes")
    if len(data) < 2:
        raise DecodeError(f"{what}: truncated")
    if len(data) > max_size:
        raise DecodeError(f"{what}: larger than {max_size} bytes")
    if data[0] != PROTOCOL_VERSION:
        raise DecodeError(f"{what}: unsupported protocol version {data[0]}")


def _unpacker(data: bytes, max_size: int) -> msgpack.Unpacker:
    unpacker = msgpack.Unpacker(
        max_buffer_size=max_size, max_bin_len=max_size, max_str_len=max_size, **_UNPACK_LIMITS
    )
    unpacker.feed(memoryview(data)[1:])
    return unpacker


def _unpackb(raw: bytes | memoryview, max_size: int) -> Any:
    return msgpack.unpackb(raw, max_bin_len=max_size, max_str_len=max_size, **_UNPACK_LIMITS)


_RAW, _STRICT_MAP_KEY, _MAX_ARRAY_LEN, _MAX_MAP_LEN, _MAX_EXT_LEN = (
    _UNPACK_LIMITS[k] for k in ("raw", "strict_map_key", "max_array_len", "max_map_len", "max_ext_len")
)
_unpackb_c = msgpack.unpackb


def _unpack_datagram(raw: bytes | memoryview) -> Any:
    """`_unpackb(raw, MAX_DATAGRAM)` (the per-packet call): the same limits, every one of
    `_UNPACK_LIMITS`, passed as literal keywords, which reach msgpack without building a
    dict (a partial or `**` builds one per call: half the cost of unpacking a probe)."""
    return _unpackb_c(
        raw,
        raw=_RAW,
        strict_map_key=_STRICT_MAP_KEY,
        max_array_len=_MAX_ARRAY_LEN,
        max_map_len=_MAX_MAP_LEN,
        max_ext_len=_MAX_EXT_LEN,
        max_bin_len=MAX_DATAGRAM,
        max_str_len=MAX_DATAGRAM,
    )


def _message(item: Any) -> WireMessage:
    if type(item) is not list or not item:
        raise DecodeError("message: expected [code, fields...]")
    decode = _decoders.get(item[0]) if type(item[0]) is int else None
    if decode is None:
        raise DecodeError(f"message: unknown code {item[0]!r}")
    return decode(item)


def _cached_message(raw: bytes) -> WireMessage:
    if len(raw) < 2 or raw[1] not in _relayed_codes:  # raw[1] is the code of a short array
        return _message(_unpack_datagram(raw))
    msg = _message_cache.get(raw)
    if msg is None:
        msg = _message(_unpack_datagram(raw))
        if len(_message_cache) >= _CACHE_MAX:
            _message_cache.clear()
        _message_cache[raw] = msg
        if msg not in _relayed_bytes:  # relay our own encoding, not whatever a peer chose
            canonical: bytes = _packb([msg.CODE, *_encoders[type(msg)](msg)])
            _remember_relayed(msg, raw if canonical == raw else canonical)
    return msg


def _remember_relayed(message: WireMessage, data: bytes) -> None:
    if len(_relayed_bytes) >= _CACHE_MAX:
        _relayed_bytes.clear()
    _relayed_bytes[message] = data


def decode_packet(data: bytes) -> list[WireMessage]:
    """The messages of one datagram; raises DecodeError if any part is invalid."""
    if type(data) is bytes and 3 < len(data) <= MAX_DATAGRAM and data[0] == PROTOCOL_VERSION:
        if data[1] == 0x91 and data[3] not in _relayed_codes:
            # one message that is not relayed (a probe, an ack): decoded in one call, no cache
            # (from a copy of the bytes: for a datagram, cheaper than a memoryview's slice)
            try:
                items = _unpack_datagram(data[1:])
            except Exception as exc:  # msgpack raises many types on garbage; all mean the same
                raise DecodeError(f"packet: not msgpack ({type(exc).__name__})") from None
            item = items[0]
            if type(item) is list and item and type(code := item[0]) is int:  # _message inlined
                decode = _decoders.get(code)
                if decode is not None:
                    return [decode(item)]
            return [_message(item)]  # refuses it
    else:
        _check_frame(data, MAX_DATAGRAM, "packet")
    try:
        unpacker = _unpacker(data, MAX_DATAGRAM)
        count = unpacker.read_array_header()
        if not 1 <= count <= MAX_MESSAGES_PER_PACKET:
            raise DecodeError(f"packet: expected a list of 1..{MAX_MESSAGES_PER_PACKET} messages")
        spans = []
        start = unpacker.tell()
        for _ in range(count):
            unpacker.skip()
            end = unpacker.tell()
            spans.append((start + 1, end + 1))
            start = end
        if start + 1 != len(data):
            raise DecodeError("packet: trailing bytes")
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many types on garbage; all mean the same
        raise DecodeError(f"packet: not msgpack ({type(exc).__name__})") from None
    try:
        return [_cached_message(data[a:b]) for a, b in spans]
    except DecodeError:
        raise
    except Exception as exc:  # skip() does not check UTF-8, maps or ext types: unpack does
        raise DecodeError(f"packet: not msgpack ({type(exc).__name__})") from None


def decode_stream(data: bytes) -> WireMessage:
    """The one message of a stream frame (plain or compressed)."""
    if type(data) is bytes and data[:1] == _COMPRESSED_BYTE:
        data = _VERSION_BYTE + inflate(data)
    _check_frame(data, MAX_STREAM_FRAME, "stream")
    try:
        unpacker = _unpacker(data, MAX_STREAM_FRAME)
        size = unpacker.read_array_header()
        code = unpacker.unpack() if size else None
        if code == PushPull.CODE and type(code) is int and size == 4:
            return _decode_push_pull_stream(data, unpacker)
        item = _unpackb(memoryview(data)[1:], MAX_STREAM_FRAME)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"stream: not msgpack ({type(exc).__name__})") from None
    return _message(item)


def decode_message(data: bytes) -> WireMessage:
    """One message as `encode_message` wrote it (no version byte): a push-pull section."""
    if type(data) is not bytes or len(data) > MAX_STREAM_FRAME:
        raise DecodeError(f"message: expected at most {MAX_STREAM_FRAME} bytes")
    try:
        item = _unpackb(data, MAX_STREAM_FRAME)
    except Exception as exc:
        raise DecodeError(f"message: not msgpack ({type(exc).__name__})") from None
    return _message(item)


def _decode_push_pull_stream(data: bytes, unpacker: msgpack.Unpacker) -> PushPull:
    """PushPull without materialising every member twice: members are cached by their bytes."""
    join = f.boolean(unpacker.unpack(), "push_pull.join")
    count = unpacker.read_array_header()
    if count > MAX_PUSH_PULL_MEMBERS:
        raise DecodeError(f"push_pull.members: more than {MAX_PUSH_PULL_MEMBERS}")
    members: list[MemberState] = []
    append, skip, tell = members.append, unpacker.skip, unpacker.tell
    start = tell() + 1
    cache = _member_cache
    for _ in range(count):
        skip()
        end = tell() + 1
        raw = data[start:end]
        start = end
        member = cache.get(raw)
        if member is None:
            member = _dec_member(_unpackb(raw, MAX_STREAM_FRAME))
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[raw] = member
        append(member)
    user = f.blob(unpacker.unpack(), "push_pull.user", MAX_USER_STATE)
    if unpacker.tell() + 1 != len(data):
        raise DecodeError("stream: trailing bytes")
    return PushPull(join, tuple(members), user)


# -- membership messages ------------------------------------------------------------------


_new = object.__new__
_set_ping_seq, _set_ping_target, _set_ping_source, _set_ack_seq, _set_ack_payload = (
    cls.__dict__[field].__set__  # the slot's own setter (a frozen class refuses __setattr__)
    for cls, field in ((Ping, "seq"), (Ping, "target"), (Ping, "source"), (Ack, "seq"), (Ack, "payload"))
)
"""Build a checked ping or ack without attrs' frozen `__init__` (which binds
`object.__setattr__` anew and calls it per field: about half a decoded probe's cost): the
same object, its slots set directly. Only for fields checked here; Ping and Ack have no
validators, converters or defaults to apply (tests/wire holds them to that)."""


def _dec_ping(v: list[Any]) -> Ping:
    if len(v) == 4:  # the common case checked inline: the same checks as the calls below
        _, seq, target, source = v
        if (
            type(seq) is int
            and 0 <= seq <= MAX_UINT32
            and type(target) is str
            and 0 < len(target) <= SHORT_NAME
            and type(source) is str
            and 0 < len(source) <= SHORT_NAME
        ):
            ping: Ping = _new(Ping)  # Ping(seq, target, source), see _new above
            _set_ping_seq(ping, seq)
            _set_ping_target(ping, target)
            _set_ping_source(ping, source)
            return ping
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
    if len(v) == 3:  # the common case checked inline: the same checks as the calls below
        _, seq, payload = v
        if (
            type(seq) is int
            and 0 <= seq <= MAX_UINT32
            and type(payload) is bytes
            and len(payload) <= MAX_PAYLOAD
        ):
            ack: Ack = _new(Ack)  # Ack(seq, payload), see _new above
            _set_ack_seq(ack, seq)
            _set_ack_payload(ack, payload)
            return ack
    f.fields(v, 2, "ack")
    return Ack(f.uint(v[1], "ack.seq"), f.blob(v[2], "ack.payload", MAX_PAYLOAD))


def _dec_nack(v: list[Any]) -> Nack:
    f.fields(v, 1, "nack")
    return Nack(f.uint(v[1], "nack.seq"))


def _dec_alive(v: list[Any]) -> Alive:
    f.fields(v, 5, "alive")
    return Alive(
        f.uint(v[1], "alive.incarnation", MAX_INCARNATION),
        f.name(v[2], "alive.node"),
        f.address(v[3], "alive.addr"),
        f.blob(v[4], "alive.meta", MAX_META),
        f.vsn(v[5], "alive.vsn"),
    )


def _dec_suspect(v: list[Any]) -> Suspect:
    f.fields(v, 3, "suspect")
    return Suspect(
        f.uint(v[1], "suspect.incarnation", MAX_INCARNATION),
        f.name(v[2], "suspect.node"),
        f.name(v[3], "suspect.sender"),
    )


def _dec_dead(v: list[Any]) -> Dead:
    f.fields(v, 3, "dead")
    return Dead(
        f.uint(v[1], "dead.incarnation", MAX_INCARNATION),
        f.name(v[2], "dead.node"),
        f.name(v[3], "dead.sender"),
    )


_STATES = tuple(State)


def _dec_member(v: Any) -> MemberState:
    if type(v) is not list or len(v) != 6:
        raise DecodeError("push_pull.member: expected 6 fields")
    state = f.uint(v[4], "push_pull.member.state", len(_STATES) - 1)
    return MemberState(
        f.name(v[0], "push_pull.member.name"),
        f.address(v[1], "push_pull.member.addr"),
        f.blob(v[2], "push_pull.member.meta", MAX_META),
        f.uint(v[3], "push_pull.member.incarnation", MAX_INCARNATION),
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


def _inc(value: int) -> int:
    """An incarnation on its way out: one that peers could not decode is our bug, not theirs."""
    if not 0 <= value <= MAX_INCARNATION:
        raise LocalProtocolError(f"incarnation {value} does not fit the wire (0..{MAX_INCARNATION})")
    return value


register(Ping, lambda m: [m.seq, m.target, m.source], _dec_ping)
register(IndirectPing, lambda m: [m.seq, m.target, list(m.target_addr), m.source, m.nack], _dec_indirect)
register(Ack, lambda m: [m.seq, m.payload], _dec_ack)
register(Nack, lambda m: [m.seq], _dec_nack)
register(
    Alive,
    lambda m: [_inc(m.incarnation), m.node, list(m.addr), m.meta, list(m.vsn)],
    _dec_alive,
    relayed=True,
)
register(Suspect, lambda m: [_inc(m.incarnation), m.node, m.sender], _dec_suspect, relayed=True)
register(Dead, lambda m: [_inc(m.incarnation), m.node, m.sender], _dec_dead, relayed=True)
register(
    PushPull,
    lambda m: [
        m.join,
        [[s.name, list(s.addr), s.meta, _inc(s.incarnation), int(s.state), list(s.vsn)] for s in m.members],
        m.user,
    ],
    _dec_push_pull,
)
