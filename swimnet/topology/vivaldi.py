"""The Vivaldi client: learns this node's coordinate from measured RTTs (serf's client.go).

Rules:
- `update` refuses a sample by raising `RejectedSample(reason)` and then changes nothing:
  an RTT that is not in (0, max_rtt] seconds (NaN included), or a peer coordinate that is
  incompatible, invalid (NaN/inf) or out of limits;
- an accepted sample goes through, in order: the per-peer median filter of the last
  `latency_filter_size` RTTs; the error-weighted spring step and error update (CE, CC; the
  first `seed_updates` samples step with `seed_cc` instead of CC, so a fresh coordinate
  finds its place in a few probes; 0, serf's behaviour, by default);
  the adjustment term (mean of rtt - raw distance over a window, halved); gravity towards
  the origin, force -(|c| / rho)^2;
- if the coordinate ever becomes invalid or leaves the limits a peer would accept, it is
  reset to the origin and `resets` counts it, so whatever `coordinate` returns can always
  be sent on the wire;
- per-peer filter state lives until `forget(peer)`: the owner calls it when a member goes;
- no clock, no I/O; randomness only through the injected `random.Random`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Final, Literal

import attrs

from swimnet.errors import ConfigError, SwimnetError
from swimnet.topology.coordinate import MAX_DIMENSIONALITY, ZERO_THRESHOLD, Coordinate, unit_vector_at

RejectReason = Literal[
    "rtt_out_of_range",
    "coordinate_incompatible",
    "coordinate_invalid",
    "coordinate_out_of_limits",
]
REJECT_REASONS: Final[tuple[RejectReason, ...]] = (
    "rtt_out_of_range",
    "coordinate_incompatible",
    "coordinate_invalid",
    "coordinate_out_of_limits",
)

_ZERO_THRESHOLD = 1.0e-6


class RejectedSample(SwimnetError, ValueError):
    """An RTT sample was refused; `reason` (one of REJECT_REASONS) is for counters."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: RejectReason = reason


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ConfigError(attribute.name, f"must be a finite number > 0, got {value!r}")


def _unit_interval(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ConfigError(attribute.name, f"must be in (0, 1], got {value!r}")


def _count(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(attribute.name, f"must be an integer in {low}..{high}")

    return check


@attrs.frozen
class VivaldiConfig:
    """Tuning of the coordinate system; the defaults are serf's DefaultConfig()."""

    dimensionality: int = attrs.field(default=8, validator=_count(1, MAX_DIMENSIONALITY))
    error_max: float = attrs.field(default=1.5, validator=_positive)
    """Starting error, and the cap on the error estimate."""
    ce: float = attrs.field(default=0.25, validator=_unit_interval)
    """Maximum impact of one observation on the error estimate."""
    cc: float = attrs.field(default=0.25, validator=_unit_interval)
    """Maximum impact of one observation on the coordinate."""
    adjustment_window: int = attrs.field(default=20, validator=_count(0, 10_000))
    """Samples in the adjustment term's window; 0 disables the adjustment."""
    height_min: float = attrs.field(default=10.0e-6, validator=_positive)
    latency_filter_size: int = attrs.field(default=3, validator=_count(1, 1_000))
    gravity_rho: float = attrs.field(default=150.0, validator=_positive)
    max_rtt: float = attrs.field(default=10.0, validator=_positive)
    """Largest RTT sample accepted (seconds)."""
    seed_updates: int = attrs.field(default=0, validator=_count(0, 1_000_000))
    """The first this many accepted samples step with `seed_cc` (0: never, as serf)."""
    seed_cc: float = attrs.field(default=0.75, validator=_unit_interval)
    """CC while seeding: a fresh coordinate moves further towards what each sample says."""

    def origin(self) -> Coordinate:
        return Coordinate.origin(self.dimensionality, error=self.error_max, height=self.height_min)

    def accepts_rtt(self, rtt: float) -> bool:
        """`rtt` (seconds) is a sample worth anything: in (0, max_rtt] (NaN is not)."""
        return 0.0 < rtt <= self.max_rtt


class LatencyFilter:
    """Per-peer moving median of the last `size` RTT samples (upper median when even)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._samples: dict[str, deque[float]] = {}

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, peer: str, rtt: float) -> float:
        """Record a sample and return the filtered RTT for `peer`."""
        samples = self._samples.get(peer)
        if samples is None:
            samples = self._samples[peer] = deque(maxlen=self._size)
        samples.append(rtt)
        ordered = sorted(samples)
        return ordered[len(ordered) // 2]

    def forget(self, peer: str) -> None:
        self._samples.pop(peer, None)


class CoordinateClient:
    """This node's coordinate, updated from (peer coordinate, measured RTT) samples."""

    def __init__(self, config: VivaldiConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._origin = config.origin()
        self._coord = self._origin
        self._filter = LatencyFilter(config.latency_filter_size)
        self._adjustment_samples = [0.0] * config.adjustment_window
        self._adjustment_index = 0
        self._resets = 0
        self._updates = 0

    @property
    def config(self) -> VivaldiConfig:
        return self._config

    @property
    def coordinate(self) -> Coordinate:
        """The current estimate (always valid and within limits)."""
        return self._coord

    @property
    def resets(self) -> int:
        """How many times the coordinate was reset to the origin after going bad."""
        return self._resets

    @property
    def updates(self) -> int:
        """Samples accepted so far (never decreases, not even on a reset)."""
        return self._updates

    @property
    def tracked_peers(self) -> int:
        """Peers with latency-filter state (forget() them when they leave)."""
        return len(self._filter)

    def set_coordinate(self, coord: Coordinate) -> None:
        """Force a known coordinate (e.g. one restored from disk); refused like a peer's."""
        self._check_peer(coord)
        self._coord = coord

    def forget(self, peer_name: str) -> None:
        """Drop the latency filter state of a peer that left."""
        self._filter.forget(peer_name)

    def distance_to(self, coord: Coordinate) -> float:
        """Estimated RTT (seconds) to a node at `coord`; raises DimensionalityError."""
        return self._coord.distance_to(coord)

    def rtt_estimate(self, coord: Coordinate | None) -> float | None:
        """Estimated RTT (seconds) to `coord`, or None when unknown or unusable."""
        if coord is None or not coord.is_compatible_with(self._coord) or not coord.is_valid():
            return None
        return self._coord.distance_to(coord)

    def update(self, peer_name: str, peer_coord: Coordinate, rtt: float) -> Coordinate:
        """Learn from one direct probe of `peer_name`; returns the new coordinate.

        Raises RejectedSample (and changes nothing) for an absurd RTT or peer coordinate.

        The steps (spring, adjustment, gravity; see the module rules) run on plain floats and
        build one Coordinate at the end: the same operations in the same order as
        `Coordinate.distance_to` / `apply_force`, so the same bits.
        """
        self._check_peer(peer_coord)
        if not self._config.accepts_rtt(rtt):
            raise RejectedSample("rtt_out_of_range", f"{rtt!r} s is not in (0, {self._config.max_rtt}]")
        cfg = self._config
        rng = self._rng
        height_min = cfg.height_min
        filtered = self._filter.add(peer_name, rtt)
        own = self._coord
        vec, error, adjustment, height = own.vec, own.error, own.adjustment, own.height
        other_vec, other_height = peer_coord.vec, peer_coord.height
        # the spring step and the error estimate (serf's updateVivaldi)
        raw = math.dist(vec, other_vec) + height + other_height
        adjusted = raw + adjustment + peer_coord.adjustment
        dist = adjusted if adjusted > 0.0 else raw
        sample = max(filtered, _ZERO_THRESHOLD)
        wrongness = abs(dist - sample) / sample
        total_error = max(error + peer_coord.error, _ZERO_THRESHOLD)
        weight = error / total_error
        error = min(cfg.ce * weight * wrongness + error * (1.0 - cfg.ce * weight), cfg.error_max)
        cc = cfg.seed_cc if self._updates < cfg.seed_updates else cfg.cc
        force = cc * weight * (sample - dist)
        vec, height = _moved(vec, height, force, other_vec, other_height, height_min, rng)
        # the adjustment term (serf's updateAdjustment): raw distances, adjustments left out
        window = cfg.adjustment_window
        if window:
            samples = self._adjustment_samples
            samples[self._adjustment_index] = filtered - (math.dist(vec, other_vec) + height + other_height)
            self._adjustment_index = (self._adjustment_index + 1) % window
            adjustment = sum(samples) / (2.0 * window)
        # gravity towards the origin (serf's updateGravity)
        origin = self._origin
        raw = math.dist(origin.vec, vec) + origin.height + height
        adjusted = raw + origin.adjustment + adjustment
        scaled = (adjusted if adjusted > 0.0 else raw) / cfg.gravity_rho
        vec, height = _moved(vec, height, -(scaled * scaled), origin.vec, origin.height, height_min, rng)
        coord = Coordinate(vec, error, adjustment, height)
        if not coord.is_within_limits():
            self._resets += 1
            coord = origin
        self._coord = coord
        self._updates += 1
        return coord

    def _check_peer(self, coord: Coordinate) -> None:
        if not coord.is_compatible_with(self._coord):
            raise RejectedSample(
                "coordinate_incompatible",
                f"{len(coord.vec)} dimensions, expected {len(self._coord.vec)}",
            )
        if not coord.is_valid():
            raise RejectedSample("coordinate_invalid", "a component is NaN or infinite")
        if not coord.is_within_limits():
            raise RejectedSample("coordinate_out_of_limits", "a component is out of bounds")


def _moved(
    vec: tuple[float, ...],
    height: float,
    force: float,
    other_vec: tuple[float, ...],
    other_height: float,
    height_min: float,
    rng: random.Random,
) -> tuple[tuple[float, ...], float]:
    """`Coordinate.apply_force` on the (vec, height) of a coordinate: force seconds away from
    the other point (towards it when negative), the height in proportion."""
    unit, mag = unit_vector_at(vec, other_vec, rng)
    moved = tuple([x + u * force for x, u in zip(vec, unit, strict=True)])
    if mag > ZERO_THRESHOLD:
        height = max((height + other_height) * force / mag + height, height_min)
    return moved, height
