"""A Vivaldi network coordinate and its geometry (serf's coordinate/coordinate.go).

Rules:
- every quantity is in seconds (float), except `error`, which is dimensionless;
- a `Coordinate` is a frozen value; `apply_force` returns a new one;
- distance = |a - b| + a.height + b.height, plus a.adjustment + b.adjustment only when
  that sum stays positive (serf's semantics);
- `is_valid()` means every component is finite; `is_within_limits()` additionally bounds
  what a sane peer can send (|component| <= COORDINATE_LIMIT, height and error >= 0);
- randomness (a random direction when two coordinates coincide) comes only from the
  `random.Random` passed in.
"""

from __future__ import annotations

import math
import random

import attrs

from swimnet.errors import SwimnetError

ZERO_THRESHOLD = 1.0e-6
"""Below this distance (seconds) two coordinates are considered on top of each other."""
COORDINATE_LIMIT = 1.0e3
"""Largest absolute value (seconds, or dimensionless for error) of any component a sane
coordinate holds. Real RTTs are at most 10 s and gravity keeps coordinates near the
origin, so this only refuses garbage or poisoning attempts."""
MAX_DIMENSIONALITY = 32


class DimensionalityError(SwimnetError, ValueError):
    """Two coordinates with a different number of dimensions were combined."""


@attrs.frozen
class Coordinate:
    """A point in the Euclidean space plus a non-Euclidean height (access-link delay)."""

    vec: tuple[float, ...]
    error: float
    adjustment: float
    height: float

    @classmethod
    def origin(cls, dimensionality: int, *, error: float, height: float) -> Coordinate:
        """The coordinate at the origin that a fresh client starts from."""
        return cls(vec=(0.0,) * dimensionality, error=error, adjustment=0.0, height=height)

    def is_valid(self) -> bool:
        """True when every component is a finite float (no NaN, no infinity)."""
        isfinite = math.isfinite
        return (
            all(map(isfinite, self.vec))
            and isfinite(self.error)
            and isfinite(self.adjustment)
            and isfinite(self.height)
        )

    def is_within_limits(self) -> bool:
        """True when valid, 1..MAX_DIMENSIONALITY dimensions and every component bounded."""
        limit = COORDINATE_LIMIT
        return (
            self.is_valid()
            and 1 <= len(self.vec) <= MAX_DIMENSIONALITY
            and -limit <= min(self.vec)
            and max(self.vec) <= limit
            and 0.0 <= self.error <= limit
            and -limit <= self.adjustment <= limit
            and 0.0 <= self.height <= limit
        )

    def is_compatible_with(self, other: Coordinate) -> bool:
        """True when both have the same dimensionality (so they can be combined)."""
        return len(self.vec) == len(other.vec)

    def raw_distance_to(self, other: Coordinate) -> float:
        """Euclidean distance plus both heights, without adjustments (seconds)."""
        self._check_compatible(other)
        return math.dist(self.vec, other.vec) + self.height + other.height

    def distance_to(self, other: Coordinate) -> float:
        """Estimated RTT in seconds: raw distance plus both adjustments if that stays > 0."""
        dist = self.raw_distance_to(other)
        adjusted = dist + self.adjustment + other.adjustment
        return adjusted if adjusted > 0.0 else dist

    def apply_force(
        self, force: float, other: Coordinate, *, height_min: float, rng: random.Random
    ) -> Coordinate:
        """Move `force` seconds away from `other` (towards it when negative).

        The height moves in proportion (serf: scaled by (h + h_other) / |a - b|) and never
        drops below `height_min`; it is left alone when the two points coincide.
        """
        self._check_compatible(other)
        unit, mag = unit_vector_at(self.vec, other.vec, rng)
        vec = tuple([x + u * force for x, u in zip(self.vec, unit, strict=True)])
        height = self.height
        if mag > ZERO_THRESHOLD:
            height = max((height + other.height) * force / mag + height, height_min)
        return Coordinate(vec, self.error, self.adjustment, height)

    def _check_compatible(self, other: Coordinate) -> None:
        if len(self.vec) != len(other.vec):
            raise DimensionalityError(
                f"coordinate dimensionality does not match: {len(self.vec)} != {len(other.vec)}"
            )


def unit_vector_at(
    a: tuple[float, ...], b: tuple[float, ...], rng: random.Random
) -> tuple[tuple[float, ...], float]:
    """Unit vector pointing from b to a, and |a - b|.

    When the points coincide: a random direction from `rng` and a distance of 0 (and, if
    even that degenerates, the first axis).
    """
    diff = [x - y for x, y in zip(a, b, strict=True)]
    mag = math.hypot(*diff)
    if mag > ZERO_THRESHOLD:
        return tuple([d / mag for d in diff]), mag
    diff = [rng.random() - 0.5 for _ in a]
    rmag = math.hypot(*diff)
    if rmag > ZERO_THRESHOLD:
        return tuple([d / rmag for d in diff]), 0.0
    return (1.0,) + (0.0,) * (len(a) - 1), 0.0
