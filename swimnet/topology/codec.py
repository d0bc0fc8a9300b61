"""Compact wire form of a coordinate, carried in the probe ack payload.

Form: a flat list `[v0, ..., v(d-1), error, adjustment, height]` of floats (d >= 1), i.e.
a msgpack array of float64 when the engine packs it.

Rules: `coordinate_from_wire` accepts any object and raises only `DecodeError`; it takes a
list or tuple of 4..MAX_DIMENSIONALITY+3 numbers (float or int, never bool), every one
finite and within `COORDINATE_LIMIT`, error and height >= 0; with `dimensionality` given
the length must match exactly. What it returns satisfies `Coordinate.is_within_limits()`.
"""

from __future__ import annotations

from typing import Any

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
