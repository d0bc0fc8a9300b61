"""Wire form of a coordinate: round trips, and only DecodeError for anything else."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import DecodeError
from swimnet.topology import (
    COORDINATE_LIMIT,
    MAX_DIMENSIONALITY,
    Coordinate,
    VivaldiConfig,
    coordinate_from_wire,
    coordinate_to_wire,
)

bounded = st.floats(min_value=-COORDINATE_LIMIT, max_value=COORDINATE_LIMIT, allow_nan=False)
non_negative = st.floats(min_value=0.0, max_value=COORDINATE_LIMIT, allow_nan=False)
coordinates = st.builds(
    Coordinate,
    vec=st.lists(bounded, min_size=1, max_size=MAX_DIMENSIONALITY).map(tuple),
    error=non_negative,
    adjustment=bounded,
    height=non_negative,
)


@given(coordinates)
def test_round_trip(c: Coordinate) -> None:
    assert c.is_within_limits()
    wire = coordinate_to_wire(c)
    assert len(wire) == len(c.vec) + 3
    assert coordinate_from_wire(wire) == c
    assert coordinate_from_wire(wire, len(c.vec)) == c
    # and through msgpack, the way the engine carries it in an ack payload
    packed = msgpack.packb(wire)
    assert coordinate_from_wire(msgpack.unpackb(packed)) == c
    assert coordinate_from_wire(msgpack.unpackb(packed, use_list=False)) == c


def test_default_coordinate_is_small_on_the_wire() -> None:
    packed = msgpack.packb(coordinate_to_wire(VivaldiConfig().origin()))
    assert len(packed) == 1 + 11 * 9  # array header + 11 float64


def test_integers_are_accepted_as_numbers() -> None:
    assert coordinate_from_wire([1, 0, 1, 0, 0]) == Coordinate((1.0, 0.0), 1.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "obj",
    [
        None,
        b"\x00" * 88,
        "coordinate",
        {"vec": [0.0]},
        [],
        [0.0, 0.0, 0.0],  # no dimensions
        [0.0] * (MAX_DIMENSIONALITY + 4),  # too many
        [0.0, 1.5, 0.0, "0.0"],
        [0.0, 1.5, 0.0, None],
        [True, 1.5, 0.0, 0.0],  # bool is not a number here
        [math.nan, 1.5, 0.0, 0.0],
        [math.inf, 1.5, 0.0, 0.0],
        [0.0, 1.5, 0.0, -math.inf],
        [2.0e3, 1.5, 0.0, 0.0],  # huge
        [2**64, 1.5, 0.0, 0.0],  # huge integer: no OverflowError
        [-(2**1100), 1.5, 0.0, 0.0],
        [0.0, -0.1, 0.0, 0.0],  # negative error
        [0.0, 1.5, 0.0, -1e-6],  # negative height
        [[0.0], 1.5, 0.0, 0.0],
    ],
)
def test_bad_wire_forms(obj: Any) -> None:
    with pytest.raises(DecodeError):
        coordinate_from_wire(obj)


def test_dimensionality_must_match_when_given() -> None:
    wire = coordinate_to_wire(VivaldiConfig(dimensionality=3).origin())
    assert coordinate_from_wire(wire, 3).vec == (0.0, 0.0, 0.0)
    with pytest.raises(DecodeError):
        coordinate_from_wire(wire, 8)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.binary(max_size=4),
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=12)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)
number_lists = st.lists(st.one_of(st.floats(), st.integers(), st.booleans()), min_size=0, max_size=40)


@given(st.one_of(anything, number_lists))
def test_decoding_anything_raises_only_decode_error(obj: Any) -> None:
    try:
        c = coordinate_from_wire(obj)
    except DecodeError:
        return
    assert c.is_within_limits()
    assert all(type(x) is float for x in (*c.vec, c.error, c.adjustment, c.height))
