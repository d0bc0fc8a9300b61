"""Coordinate geometry: serf's coordinate_test.go cases, rewritten as tables."""

from __future__ import annotations

import math
import random

import pytest

from swimnet.topology import COORDINATE_LIMIT, Coordinate, DimensionalityError


def coord(
    vec: tuple[float, ...], *, error: float = 1.5, adjustment: float = 0.0, height: float = 0.0
) -> Coordinate:
    return Coordinate(vec=vec, error=error, adjustment=adjustment, height=height)


A = (-0.5, 1.3, 2.4)
B = (1.2, -2.3, 3.4)
AB = 4.104875150354758


@pytest.mark.parametrize(
    ("adj_a", "adj_b", "h_a", "h_b", "expected"),
    [
        (0.0, 0.0, 0.0, 0.0, AB),
        (-1.0e6, 0.0, 0.0, 0.0, AB),  # a negative total adjustment is ignored
        (0.1, 0.2, 0.0, 0.0, AB + 0.3),  # positive adjustments count
        (0.1, 0.2, 0.7, 0.1, AB + 0.3 + 0.8),  # heights count
        (-0.2, 0.0, 0.0, 0.0, AB - 0.2),  # a negative adjustment that stays positive counts
    ],
)
def test_distance(adj_a: float, adj_b: float, h_a: float, h_b: float, expected: float) -> None:
    a = coord(A, adjustment=adj_a, height=h_a)
    b = coord(B, adjustment=adj_b, height=h_b)
    assert a.distance_to(b) == pytest.approx(expected, abs=1e-9)
    assert b.distance_to(a) == pytest.approx(expected, abs=1e-9)
    raw_self, adjusted_self = 2 * h_a, 2 * h_a + 2 * adj_a
    expected_self = adjusted_self if adjusted_self > 0.0 else raw_self
    assert a.distance_to(a) == pytest.approx(expected_self, abs=1e-9)


def test_raw_distance_ignores_adjustments() -> None:
    a = coord(A, adjustment=1.0e6, height=0.7)
    b = coord(B, height=0.1)
    assert a.raw_distance_to(b) == pytest.approx(AB + 0.8)


def test_validity_of_each_component() -> None:
    base = coord((0.0, 0.0, 0.0))
    assert base.is_valid()
    for bad in (math.nan, math.inf, -math.inf):
        variants = [
            coord((bad, 0.0, 0.0)),
            coord((0.0, 0.0, bad)),
            coord((0.0, 0.0, 0.0), error=bad),
            coord((0.0, 0.0, 0.0), adjustment=bad),
            coord((0.0, 0.0, 0.0), height=bad),
        ]
        for v in variants:
            assert not v.is_valid(), v
            assert not v.is_within_limits(), v


@pytest.mark.parametrize(
    "c",
    [
        coord((COORDINATE_LIMIT * 1.01, 0.0)),
        coord((0.0, -COORDINATE_LIMIT * 1.01)),
        coord((0.0, 0.0), height=-1e-9),
        coord((0.0, 0.0), error=-1e-9),
        coord((0.0, 0.0), error=COORDINATE_LIMIT * 2),
        coord((0.0, 0.0), adjustment=-COORDINATE_LIMIT * 2),
        coord(()),
        coord((0.0,) * 33),
    ],
)
def test_out_of_limits(c: Coordinate) -> None:
    assert not c.is_within_limits()


def test_compatibility() -> None:
    c3, alien = coord((0.0,) * 3), coord((0.0,) * 2)
    assert c3.is_compatible_with(c3) and alien.is_compatible_with(alien)
    assert not c3.is_compatible_with(alien) and not alien.is_compatible_with(c3)
    with pytest.raises(DimensionalityError):
        c3.distance_to(alien)
    with pytest.raises(DimensionalityError):
        c3.apply_force(1.0, alien, height_min=0.0, rng=random.Random(0))


def test_apply_force() -> None:
    rng = random.Random(0)
    origin = coord((0.0, 0.0, 0.0))
    above = coord((0.0, 0.0, 2.9))
    # normalised direction, away from the other point, scaled by the force
    c = origin.apply_force(5.3, above, height_min=0.0, rng=rng)
    assert c.vec == pytest.approx((0.0, 0.0, -5.3))
    c = c.apply_force(2.0, coord((3.4, 0.0, -5.3)), height_min=0.0, rng=rng)
    assert c.vec == pytest.approx((-2.0, 0.0, -5.3))
    # on top of each other: a random direction, one unit away, no division by zero
    c = origin.apply_force(1.0, origin, height_min=0.0, rng=rng)
    assert origin.distance_to(c) == pytest.approx(1.0)
    # the height moves in proportion, and never below the minimum
    h_min = 10.0e-6
    low = coord((0.0, 0.0, 0.0), height=h_min)
    c = low.apply_force(5.3, above, height_min=h_min, rng=rng)
    assert c.vec == pytest.approx((0.0, 0.0, -5.3))
    assert c.height == pytest.approx(h_min + 5.3 * h_min / 2.9)
    c = low.apply_force(-5.3, above, height_min=h_min, rng=rng)
    assert c.vec == pytest.approx((0.0, 0.0, 5.3))
    assert c.height == h_min


def test_random_direction_comes_from_the_injected_rng() -> None:
    origin = coord((0.0,) * 8)
    first = origin.apply_force(1.0, origin, height_min=0.0, rng=random.Random(7))
    again = origin.apply_force(1.0, origin, height_min=0.0, rng=random.Random(7))
    other = origin.apply_force(1.0, origin, height_min=0.0, rng=random.Random(8))
    assert first == again
    assert first != other
    assert math.hypot(*first.vec) == pytest.approx(1.0)
