"""Decoded pings and acks are built without attrs' `__init__` (their slots set directly, the
per-packet case): they must be the very values `Ping(...)` and `Ack(...)` give, and the
classes must stay plain enough for that (no validator, converter or field the codec does not
set)."""

from __future__ import annotations

import attrs
import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import DecodeError
from swimnet.wire import Ack, Ping
from swimnet.wire.codec import decode_packet, encode_ack, encode_ping, pack_packet
from swimnet.wire.fields import SHORT_NAME
from swimnet.wire.limits import MAX_PAYLOAD, MAX_UINT32, PROTOCOL_VERSION

names = st.text(min_size=1, max_size=SHORT_NAME // 4)
seqs = st.integers(0, MAX_UINT32)


@pytest.mark.parametrize(("cls", "fields"), [(Ping, ["seq", "target", "source"]), (Ack, ["seq", "payload"])])
def test_ping_and_ack_have_only_the_fields_the_codec_sets_and_nothing_to_run_on_them(
    cls: type, fields: list[str]
) -> None:
    assert [a.name for a in attrs.fields(cls)] == fields
    assert all(a.validator is None and a.converter is None for a in attrs.fields(cls))
    assert "__attrs_post_init__" not in vars(cls) and "__attrs_pre_init__" not in vars(cls)


@given(seqs, names, names)
def test_a_decoded_ping_is_the_ping_its_constructor_gives(seq: int, target: str, source: str) -> None:
    (msg,) = decode_packet(pack_packet([encode_ping(seq, target, source)]))
    built = Ping(seq, target, source)
    assert type(msg) is Ping and msg == built and hash(msg) == hash(built) and repr(msg) == repr(built)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        msg.seq = 1  # type: ignore[misc]


@given(seqs, st.binary(max_size=MAX_PAYLOAD))
def test_a_decoded_ack_is_the_ack_its_constructor_gives(seq: int, payload: bytes) -> None:
    (msg,) = decode_packet(pack_packet([encode_ack(seq, payload)]))
    built = Ack(seq, payload)
    assert type(msg) is Ack and msg == built and hash(msg) == hash(built) and repr(msg) == repr(built)
    assert attrs.evolve(msg, seq=0) == Ack(0, payload)


def test_the_per_packet_unpack_keeps_every_limit_of_the_codec() -> None:
    """A one-message datagram (the fast path) is unpacked with all of `_UNPACK_LIMITS`: a map
    or an ext type is refused by msgpack itself, before any field check sees it."""
    from swimnet.wire.codec import _UNPACK_LIMITS

    assert set(_UNPACK_LIMITS) == {"raw", "strict_map_key", "max_array_len", "max_map_len", "max_ext_len"}
    for field in ({"a": 1}, msgpack.ExtType(1, b"x")):
        datagram = bytes([PROTOCOL_VERSION]) + msgpack.packb([[Ping.CODE, field, "a", "b"]])
        with pytest.raises(DecodeError, match="not msgpack"):
            decode_packet(datagram)
