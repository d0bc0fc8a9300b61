"""Table messages: codec round trips, bounds, and garbage that must raise only DecodeError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimnet.errors import DecodeError
from swimnet.wire.codec import decode_packet, decode_stream, encode_message, encode_stream, pack_packet
from swimnet.wire.limits import MAX_UINT64, PROTOCOL_VERSION
from swimnet.wire.messages import WireMessage
from swimnet.wire.tables import (
    DENSE_HASHES,
    MAX_KEY,
    MAX_VALUE,
    AttachmentRecord,
    AttachmentState,
    EntryRecord,
    NetworkEvent,
    Region,
    SyncReply,
    SyncRequest,
    SyncSection,
    TableEvent,
)

names = st.text(min_size=1, max_size=20)
ltimes = st.integers(0, MAX_UINT64)
residuals = st.integers(0, 2**32 - 1)
values = st.binary(max_size=64)

network_events = st.builds(NetworkEvent, ltimes, names, names, st.booleans(), residuals)
table_events = st.builds(TableEvent, ltimes, names, names, names, names, values, st.booleans(), residuals)
attachment_states = st.builds(
    AttachmentState,
    st.lists(st.builds(AttachmentRecord, names, names, ltimes, st.booleans(), residuals), max_size=5).map(
        tuple
    ),
)


@st.composite
def regions(draw: st.DrawFn, hashes: bool) -> Region:
    level = draw(st.integers(0, 1 if hashes else 2))
    index = draw(st.integers(0, 256**level - 1))
    if hashes:
        if draw(st.booleans()):
            data = draw(st.binary(min_size=DENSE_HASHES, max_size=DENSE_HASHES))
        else:
            idx = sorted(draw(st.sets(st.integers(0, 255), max_size=20)))
            data = b"".join(bytes([i]) + draw(st.binary(min_size=8, max_size=8)) for i in idx)
    else:
        data = draw(st.binary(max_size=5 * 24).map(lambda b: b[: len(b) - len(b) % 24]))
    return Region(level, index, data)


@st.composite
def sections(draw: st.DrawFn, network: str) -> SyncSection:
    atts = draw(
        st.lists(
            st.builds(AttachmentRecord, names, st.just(network), ltimes, st.booleans(), residuals), max_size=3
        )
    )
    entries = draw(
        st.lists(
            st.builds(EntryRecord, names, names, values, names, ltimes, st.booleans(), residuals), max_size=3
        )
    )
    return SyncSection(
        network,
        draw(st.none() | ltimes),
        tuple(atts),
        draw(st.booleans()),
        tuple(draw(st.lists(regions(True), max_size=3))),
        tuple(draw(st.lists(regions(False), max_size=3))),
        tuple(entries),
        draw(st.binary(max_size=40).map(lambda b: b[: len(b) - len(b) % 8])),
        draw(st.booleans()),
    )


@st.composite
def sync_messages(draw: st.DrawFn) -> SyncRequest | SyncReply:
    nets = draw(st.lists(names, unique=True, max_size=3))
    secs = tuple(draw(sections(n)) for n in nets)
    sender, round_ = draw(names), draw(st.integers(0, 2**32 - 1))
    return SyncRequest(sender, round_, secs) if draw(st.booleans()) else SyncReply(sender, round_, secs)


@settings(max_examples=150)
@given(st.lists(network_events | table_events, min_size=1, max_size=8))
def test_gossip_round_trip(messages: list[WireMessage]) -> None:
    assert decode_packet(pack_packet([encode_message(m) for m in messages])) == messages


@settings(max_examples=100)
@given(attachment_states | sync_messages())
def test_stream_round_trip(message: WireMessage) -> None:
    assert decode_stream(encode_stream(message)) == message


def _raw(*items: object) -> bytes:
    packed: bytes = msgpack.packb(list(items), use_bin_type=True)
    return bytes([PROTOCOL_VERSION]) + packed


def _section(**changes: object) -> list[object]:
    base: dict[str, object] = {
        "network": "n",
        "attach_hash": None,
        "attachments": [],
        "full": False,
        "hashes": [],
        "summaries": [],
        "entries": [],
        "wants": b"",
        "more": False,
    }
    base.update(changes)
    return list(base.values())


@pytest.mark.parametrize(
    "raw",
    [
        _raw(33, 1, "o", "n", "t", "k" * (MAX_KEY + 1), b"", False, 0),  # key too long
        _raw(33, 1, "o", "n", "t", "k", b"v" * (MAX_VALUE + 1), False, 0),  # value too long
        _raw(33, 1, "o", "n", "", "k", b"", False, 0),  # empty table
        _raw(33, -1, "o", "n", "t", "k", b"", False, 0),  # negative ltime
        _raw(33, 1, "o", "n", "t", "k", "v", False, 0),  # value as str
        _raw(33, 1, "o", "n", "t", "k", b"", 0, 0),  # int as bool
        _raw(32, 1, "x", "n" * 256, False, 0),  # network too long
        _raw(32, 1, "x", "n", False),  # missing field
        _raw(34, [["a", "n", 1, False]]),  # short attachment
        _raw(35, "a", 0, [_section(), _section()]),  # duplicate network
        _raw(35, "a", 0, [_section(hashes=[[2, 0, b"\0" * DENSE_HASHES]])]),  # leaf has no children
        _raw(35, "a", 0, [_section(hashes=[[1, 256, b"\0" * DENSE_HASHES]])]),  # index out of range
        _raw(35, "a", 0, [_section(hashes=[[0, 0, b"\0" * 100]])]),  # not a hash list
        _raw(
            35, "a", 0, [_section(hashes=[[0, 0, b"\x05" + b"\0" * 8 + b"\x05" + b"\0" * 8]])]
        ),  # not sorted
        _raw(35, "a", 0, [_section(summaries=[[0, 0, b"\0" * 25]])]),  # partial summary
        _raw(35, "a", 0, [_section(wants=b"\0" * 7)]),  # partial want
        _raw(35, "a", 0, [_section(attach_hash=-3)]),
        _raw(35, "a", 0, [_section(entries=[["t", "k", b"", "o", 1, False]])]),  # short entry
        _raw(35, "a", 0, [_section()[:-1]]),  # short section
        _raw(35, "a", 0, "sections"),
        _raw(36, "a", 0, [[]]),
    ],
)
def test_invalid_fields_are_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_stream(raw)


def test_bounds_are_accepted() -> None:
    event = TableEvent(2**64 - 1, "o" * 255, "n" * 255, "t" * 255, "é" * (MAX_KEY // 2), b"v" * MAX_VALUE)
    assert decode_packet(pack_packet([encode_message(event)])) == [event]


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=5)
    | st.binary(max_size=30),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=300)
@given(st.integers(32, 40), st.lists(junk, max_size=9))
def test_structured_garbage_raises_only_decode_error(code: int, fields: list[object]) -> None:
    for decode, data in ((decode_stream, _raw(code, *fields)), (decode_packet, _raw([code, *fields]))):
        with contextlib.suppress(DecodeError):
            decode(data)


@settings(max_examples=200)
@given(sync_messages() | table_events | network_events | attachment_states, st.data())
def test_mutated_messages_raise_only_decode_error(message: WireMessage, data: st.DataObject) -> None:
    raw = bytearray(encode_stream(message))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(DecodeError):
            decode_stream(candidate)
