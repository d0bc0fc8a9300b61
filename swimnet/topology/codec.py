"""Compact wire forms of a coordinate: a flat list of numbers, and the same values packed as
float32 bytes (what probe acks, coordinate gossip and push-pull carry).

Form: a flat list `[v0, ..., v(d-1), error, adjustment, height]` of floats (d >= 1);
packed, those values as little-endian float32, 4 bytes each.

Rules: `coordinate_from_wire` accepts any object and raises only `DecodeError`; it takes a
list or tuple of 4..MAX_DIMENSIONALITY+3 numbers (float or int, never bool), every one
finite and within `COORDINATE_LIMIT`, error and height >= 0; with `dimensionality` given
the length must match exactly. What it returns satisfies `Coordinate.is_within_limits()`.
`coordinate_from_bytes` unpacks and then applies exactly those checks.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack

from swimnet.errors import DecodeError
from swimnet.topology.coordinate import COORDINATE_LIMIT, MAX_DIMENSIONALITY, Coordinate

_SCALARS = 3
"""error, adjustment, height after the vector."""


def coordinate_to_wire(coord: Coordinate) -> list[float]:
    """The flat list form of `coord`."""
    return [*coord.vec, coord.error, coord.adjustment, coord.height]


def coordinate_from_wire(obj: Any, dimensionality: int | None = None) -> Coordinate:
    """Parse and bound-check the wire form; DecodeError on anything else."""
    if type(obj) is not list and type(obj) is not tuple:
        raise DecodeError("coordinate: expected an array")
    dims = len(obj) - _SCALARS
    if not 1 <= dims <= MAX_DIMENSIONALITY:
        raise DecodeError(f"coordinate: expected 1..{MAX_DIMENSIONALITY} dimensions, got {dims}")
    if dimensionality is not None and dims != dimensionality:
        raise DecodeError(f"coordinate: expected {dimensionality} dimensions, got {dims}")
    values = [_number(v, i) for i, v in enumerate(obj)]
    error, adjustment, height = values[dims:]
    if error < 0.0:
        raise DecodeError("coordinate: negative error")
    if height < 0.0:
        raise DecodeError("coordinate: negative height")
    return Coordinate(vec=tuple(values[:dims]), error=error, adjustment=adjustment, height=height)


def _number(value: Any, index: int) -> float:
    kind = type(value)
    # int: bound first, float(huge int) would raise OverflowError; NaN fails the bound check
    if (kind is int or kind is float) and -COORDINATE_LIMIT <= value <= COORDINATE_LIMIT:
        return float(value)
    raise DecodeError(f"coordinate[{index}]: expected a finite number within ±{COORDINATE_LIMIT:g}")


# -- packed form: float32 ---------------------------------------------------------------------

MAX_COORDINATE_BYTES = 4 * (MAX_DIMENSIONALITY + _SCALARS)
"""The largest packed coordinate: float32 for every dimension and the three scalars."""
_MIN_COORDINATE_BYTES = 4 * (1 + _SCALARS)
_UNPACK = {
    4 * n: struct.Struct(f"<{n}f").unpack for n in range(1 + _SCALARS, MAX_DIMENSIONALITY + _SCALARS + 1)
}


def coordinate_to_bytes(coord: Coordinate) -> bytes:
    """The wire form as little-endian float32 (4 bytes a value: 44 for 8 dimensions).

    float32 keeps ~7 significant digits, ample for seconds of RTT; `coord` must be within
    limits (every coordinate a `CoordinateClient` holds is), so every value fits.
    """
    values = coordinate_to_wire(coord)
    return struct.pack(f"<{len(values)}f", *values)


def coordinate_from_bytes(data: Any, dimensionality: int | None = None) -> Coordinate:
    """Parse a packed coordinate with the same checks as `coordinate_from_wire`; DecodeError
    on anything else (wrong length, NaN, infinity, out of limits)."""
    if type(data) is not bytes:
        raise DecodeError("coordinate: expected bytes")
    size = len(data)
    if size % 4 or not _MIN_COORDINATE_BYTES <= size <= MAX_COORDINATE_BYTES:
        raise DecodeError(f"coordinate: expected 4 x (4..{MAX_DIMENSIONALITY + _SCALARS}) bytes")
    values: tuple[float, ...] = _UNPACK[size](data)
    dims = len(values) - _SCALARS
    # fast path, the same checks: every value is a float here, and a sum of float32 values
    # (never beyond float64's range) is finite exactly when every one of them is
    if (
        (dimensionality is None or dims == dimensionality)
        and math.isfinite(sum(values))
        and min(values) >= -COORDINATE_LIMIT
        and max(values) <= COORDINATE_LIMIT
        and values[dims] >= 0.0
        and values[dims + 2] >= 0.0
    ):
        return Coordinate(
            vec=values[:dims], error=values[dims], adjustment=values[dims + 1], height=values[dims + 2]
        )
    return coordinate_from_wire(list(values), dimensionality)  # raises, saying what is wrong


# -- the probe ack payload ----------------------------------------------------------------------

ACK_PAYLOAD_VERSION = 2
"""Payload form: msgpack `[2, epoch, updates, packed coordinate]` (the owner's version, see
swimnet.topology.book, then `coordinate_to_bytes`): 50 bytes for 8 dimensions and counters
under 128, 54 at most under 2**32. (Form 1, `[1, [floats...]]`, carried no version; it is refused.)"""
_MAX_COUNTER = 2**64 - 1
_pack_payload = msgpack.Packer(use_bin_type=True).pack


def encode_ack_payload(version: tuple[int, int], coord: Coordinate) -> bytes:
    data: bytes = _pack_payload([ACK_PAYLOAD_VERSION, version[0], version[1], coordinate_to_bytes(coord)])
    return data


def decode_ack_payload(payload: Any, dimensionality: int | None = None) -> tuple[tuple[int, int], Coordinate]:
    """(version, coordinate) of an ack payload; DecodeError on anything else."""
    if type(payload) is not bytes or len(payload) > 32 + MAX_COORDINATE_BYTES:
        raise DecodeError("coordinate payload: expected at most a few dozen bytes")
    try:
        obj = msgpack.unpackb(
            payload,
            max_bin_len=MAX_COORDINATE_BYTES,
            max_str_len=0,
            max_map_len=0,
            max_array_len=4,
            max_ext_len=0,
        )
    except Exception:  # msgpack's own errors on garbage
        raise DecodeError("coordinate payload: not msgpack") from None
    if type(obj) is not list or len(obj) != 4 or obj[0] != ACK_PAYLOAD_VERSION or type(obj[0]) is not int:
        raise DecodeError(f"coordinate payload: expected [{ACK_PAYLOAD_VERSION}, epoch, updates, coordinate]")
    epoch, updates = obj[1], obj[2]
    if type(epoch) is not int or type(updates) is not int:
        raise DecodeError("coordinate payload: expected integer epoch and updates")
    if not (0 <= epoch <= _MAX_COUNTER and 0 <= updates <= _MAX_COUNTER):
        raise DecodeError("coordinate payload: epoch or updates out of range")
    return (epoch, updates), coordinate_from_bytes(obj[3], dimensionality)
