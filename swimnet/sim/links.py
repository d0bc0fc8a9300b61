"""Link models for the simulator: how long a packet takes between two nodes.

A latency model is a callable (src, dst, rng) -> seconds. Rules: models are pure given the
rng they are handed, so one seed reproduces every delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import attrs

LatencyModel = Callable[[str, str, random.Random], float]


@attrs.frozen
class Constant:
    """Every packet takes `seconds`."""

    seconds: float = 0.0005

    def __call__(self, src: str, dst: str, rng: random.Random) -> float:
        return self.seconds


@attrs.frozen
class Uniform:
    """Delay drawn uniformly from [low, high]."""

    low: float = 0.0002
    high: float = 0.002

    def __call__(self, src: str, dst: str, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@attrs.frozen
class Zones:
    """Nodes placed in zones: `in_zone` within one, `cross_zone` between two, +- jitter (fraction).

    Nodes not in `zone_of` are in zone "".
    """

    zone_of: Mapping[str, str]
    in_zone: float = 0.0002
    cross_zone: float = 0.030
    jitter: float = 0.1

    def __call__(self, src: str, dst: str, rng: random.Random) -> float:
        base = self.in_zone if self.zone_of.get(src, "") == self.zone_of.get(dst, "") else self.cross_zone
        return base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0)) if self.jitter else base


@attrs.frozen
class Matrix:
    """Per-pair one-way delays; missing pairs use `default`."""

    delays: Mapping[tuple[str, str], float]
    default: float = 0.0005

    def __call__(self, src: str, dst: str, rng: random.Random) -> float:
        return self.delays.get((src, dst), self.delays.get((dst, src), self.default))


def as_model(latency: float | LatencyModel) -> LatencyModel:
    if isinstance(latency, int | float):
        return Constant(float(latency))
    return latency
