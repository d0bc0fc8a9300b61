"""Coordinate messages on the wire: round trips, and strict refusal of every bad field."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from wire_strategies import names

from swimnet.errors import DecodeError
from swimnet.wire.codec import decode_message, decode_packet, encode_message, encode_packet
from swimnet.wire.topology import (
    MAX_COORDINATE_BYTES,
    MAX_SECTION_COORDINATES,
    CoordinateRecord,
    CoordinateState,
    CoordinateUpdate,
)

uint64 = st.integers(0, 2**64 - 1)
blobs = st.binary(max_size=MAX_COORDINATE_BYTES)
updates = st.builds(CoordinateUpdate, name=names, epoch=uint64, updates=uint64, coordinate=blobs)
records = st.builds(CoordinateRecord, name=names, epoch=uint64, updates=uint64, coordinate=blobs)
states = st.builds(CoordinateState, records=st.lists(records, max_size=20).map(tuple))


@given(st.lists(updates, min_size=1, max_size=10))
def test_updates_round_trip_in_packets(batch: list[CoordinateUpdate]) -> None:
    assert decode_packet(encode_packet(batch)) == batch


@given(states)
def test_sections_round_trip(state: CoordinateState) -> None:
    assert decode_message(encode_message(state)) == state


def test_a_section_holds_at_most_the_bound() -> None:
    record = ["n", 1, 1, b"\x00" * 44]
    assert len(decode_message(msgpack.packb([97, [record] * MAX_SECTION_COORDINATES])).records) == (
        MAX_SECTION_COORDINATES
    )
    with pytest.raises(DecodeError):
        decode_message(msgpack.packb([97, [record] * (MAX_SECTION_COORDINATES + 1)]))


_good = ["n", 1, 2, b"\x00" * 44]


@pytest.mark.parametrize(
    "fields",
    [
        ["", 1, 2, b""],
        [b"n", 1, 2, b""],
        ["n", -1, 2, b""],
        ["n", 1, -(2**63), b""],
        ["n", 1.0, 2, b""],
        ["n", True, 2, b""],
        ["n", 1, 2, "text"],
        ["n", 1, 2, b"\x00" * (MAX_COORDINATE_BYTES + 1)],
        ["n", 1, 2],
        [*_good, 0],
    ],
)
def test_bad_fields_are_refused(fields: list[Any]) -> None:
    with pytest.raises(DecodeError):
        decode_message(msgpack.packb([96, *fields]))
    with pytest.raises(DecodeError):
        decode_message(msgpack.packb([97, [fields]]))


@pytest.mark.parametrize("body", [[97], [97, None], [97, {}], [97, [_good], 1], [97, [[_good]]]])
def test_bad_sections_are_refused(body: list[Any]) -> None:
    with pytest.raises(DecodeError):
        decode_message(msgpack.packb(body))
