"""The float32 packed coordinate and the versioned ack payload: round trips within float32
precision, and only DecodeError for anything a peer can send."""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import DecodeError
from swimnet.topology import COORDINATE_LIMIT, MAX_DIMENSIONALITY, Coordinate, VivaldiConfig
from swimnet.topology.codec import (
    MAX_COORDINATE_BYTES,
    coordinate_from_bytes,
    coordinate_from_wire,
    coordinate_to_bytes,
    decode_ack_payload,
    encode_ack_payload,
)
from swimnet.wire import topology as wire_topology

bounded = st.floats(min_value=-COORDINATE_LIMIT, max_value=COORDINATE_LIMIT, allow_nan=False)
non_negative = st.floats(min_value=0.0, max_value=COORDINATE_LIMIT, allow_nan=False)
coordinates = st.builds(
    Coordinate,
    vec=st.lists(bounded, min_size=1, max_size=MAX_DIMENSIONALITY).map(tuple),
    error=non_negative,
    adjustment=bounded,
    height=non_negative,
)


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


@given(coordinates)
def test_packed_round_trip_is_float32_rounding(c: Coordinate) -> None:
    data = coordinate_to_bytes(c)
    assert len(data) == 4 * (len(c.vec) + 3)
    back = coordinate_from_bytes(data, len(c.vec))
    assert back.vec == tuple(_f32(v) for v in c.vec)
    assert (back.error, back.adjustment, back.height) == (_f32(c.error), _f32(c.adjustment), _f32(c.height))
    assert back.is_within_limits()


def test_default_coordinate_packs_into_44_bytes_and_payload_into_50() -> None:
    origin = VivaldiConfig().origin()
    assert len(coordinate_to_bytes(origin)) == 44
    assert len(encode_ack_payload((1, 100), origin)) == 50
    assert len(encode_ack_payload((1, 60_000), origin)) == 52


def test_wire_and_topology_agree_on_the_largest_coordinate() -> None:
    assert wire_topology.MAX_COORDINATE_BYTES == MAX_COORDINATE_BYTES


def _packed(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


@pytest.mark.parametrize(
    ("data", "dims"),
    [
        (b"", None),
        (b"\x00" * 15, None),  # 3 values: no dimension
        (b"\x00" * 17, None),  # not whole floats
        (b"\x00" * (MAX_COORDINATE_BYTES + 4), None),
        (_packed(0.0, 0.0, 0.0, 0.0, 0.0), 8),  # wrong dimensionality
        (_packed(math.nan, 0.0, 0.0, 0.0), None),
        (_packed(math.inf, 0.0, 0.0, 0.0), None),
        (_packed(2 * COORDINATE_LIMIT, 0.0, 0.0, 0.0), None),
        (_packed(0.0, -1.0, 0.0, 0.0), None),  # negative error
        (_packed(0.0, 0.0, 0.0, -1.0), None),  # negative height
        ("not bytes", None),
        (None, None),
    ],
)
def test_bad_packed_coordinates_are_refused(data: Any, dims: int | None) -> None:
    with pytest.raises(DecodeError):
        coordinate_from_bytes(data, dims)


@given(st.binary(max_size=200), st.sampled_from([None, 1, 8]))
def test_any_bytes_decode_or_raise_decode_error(data: bytes, dims: int | None) -> None:
    try:
        c = coordinate_from_bytes(data, dims)
    except DecodeError:
        return
    assert c.is_within_limits()


@given(coordinates, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_ack_payload_round_trip(c: Coordinate, epoch: int, updates: int) -> None:
    version, back = decode_ack_payload(encode_ack_payload((epoch, updates), c), len(c.vec))
    assert version == (epoch, updates)
    assert back == coordinate_from_bytes(coordinate_to_bytes(c))


_origin = coordinate_to_bytes(VivaldiConfig().origin())


@pytest.mark.parametrize(
    "obj",
    [
        [1, [0.0] * 11],  # the unversioned form 1
        [2, 1, 1],
        [2, -1, 1, _origin],
        [2, 1, -5, _origin],
        [2, 1.0, 1, _origin],
        [2, True, 1, _origin],
        [2, 1, 1, _origin[:-4]],
        [2, 1, 1, list(_origin)],
        [2.0, 1, 1, _origin],
        {"v": 2},
        "2",
    ],
)
def test_bad_ack_payloads_are_refused(obj: Any) -> None:
    with pytest.raises(DecodeError):
        decode_ack_payload(msgpack.packb(obj), 8)


@given(st.binary(max_size=300))
def test_any_ack_payload_decodes_or_raises_decode_error(data: bytes) -> None:
    try:
        version, coord = decode_ack_payload(data, 8)
    except DecodeError:
        return
    assert coord.is_within_limits() and min(version) >= 0


@given(
    st.lists(
        st.one_of(st.floats(width=32), st.sampled_from([COORDINATE_LIMIT, -COORDINATE_LIMIT, 0.0, -0.0])),
        min_size=4,
        max_size=MAX_DIMENSIONALITY + 3,
    ),
    st.sampled_from([None, 1, 8]),
)
def test_packed_decoding_accepts_exactly_what_the_list_form_accepts(
    values: list[float], dims: int | None
) -> None:
    """`coordinate_from_bytes` checks its floats its own (faster) way: the verdicts and the
    values are those of `coordinate_from_wire` on the same numbers."""
    data = _packed(*values)
    unpacked = list(struct.unpack(f"<{len(values)}f", data))
    try:
        expected = coordinate_from_wire(unpacked, dims)
    except DecodeError:
        with pytest.raises(DecodeError):
            coordinate_from_bytes(data, dims)
        return
    assert coordinate_from_bytes(data, dims) == expected
