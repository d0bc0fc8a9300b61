"""CoordinateClient.update runs its three steps on plain floats: bit for bit what the steps
written with Coordinate's own geometry (distance_to, apply_force) give, rng draws included."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from swimnet.topology import Coordinate, VivaldiConfig
from swimnet.topology.vivaldi import CoordinateClient, LatencyFilter, RejectedSample


class _Reference:
    """serf's client.go steps, one Coordinate per step (the form update had before)."""

    def __init__(self, config: VivaldiConfig, rng: random.Random) -> None:
        self.config, self.rng = config, rng
        self.origin = config.origin()
        self.coord = self.origin
        self.filter = LatencyFilter(config.latency_filter_size)
        self.samples = [0.0] * config.adjustment_window
        self.index = 0
        self.updates = 0
        self.resets = 0

    def update(self, peer: str, other: Coordinate, rtt: float) -> Coordinate:
        cfg = self.config
        filtered = self.filter.add(peer, rtt)
        coord = self.coord
        dist = coord.distance_to(other)
        sample = max(filtered, 1.0e-6)
        wrongness = abs(dist - sample) / sample
        weight = coord.error / max(coord.error + other.error, 1.0e-6)
        error = cfg.ce * weight * wrongness + coord.error * (1.0 - cfg.ce * weight)
        coord = Coordinate(coord.vec, min(error, cfg.error_max), coord.adjustment, coord.height)
        cc = cfg.seed_cc if self.updates < cfg.seed_updates else cfg.cc
        coord = coord.apply_force(
            cc * weight * (sample - dist), other, height_min=cfg.height_min, rng=self.rng
        )
        if cfg.adjustment_window:
            self.samples[self.index] = filtered - coord.raw_distance_to(other)
            self.index = (self.index + 1) % cfg.adjustment_window
            adjustment = sum(self.samples) / (2.0 * cfg.adjustment_window)
            coord = Coordinate(coord.vec, coord.error, adjustment, coord.height)
        scaled = self.origin.distance_to(coord) / cfg.gravity_rho
        coord = coord.apply_force(-(scaled * scaled), self.origin, height_min=cfg.height_min, rng=self.rng)
        if not coord.is_within_limits():
            self.resets += 1
            coord = self.origin
        self.coord = coord
        self.updates += 1
        return coord


small = st.floats(min_value=-0.2, max_value=0.2, allow_nan=False)
peers = st.builds(
    Coordinate,
    vec=st.one_of(st.tuples(*[small] * 3), st.just((0.0, 0.0, 0.0))),  # coinciding points too
    error=st.floats(min_value=0.0, max_value=1.5),
    adjustment=st.floats(min_value=-0.01, max_value=0.01),
    height=st.floats(min_value=1e-5, max_value=0.01),
)
samples = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), peers, st.floats(min_value=-0.1, max_value=11.0)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150)
@given(samples, st.integers(0, 2**32), st.sampled_from([0, 2, 20]), st.sampled_from([0, 5]))
def test_update_is_bit_identical_to_the_step_by_step_form(
    steps: list[tuple[str, Coordinate, float]], seed: int, window: int, seed_updates: int
) -> None:
    config = VivaldiConfig(dimensionality=3, adjustment_window=window, seed_updates=seed_updates)
    client, reference = CoordinateClient(config, random.Random(seed)), _Reference(config, random.Random(seed))
    for peer, coord, rtt in steps:
        if not 0.0 < rtt <= config.max_rtt:
            try:
                client.update(peer, coord, rtt)
            except RejectedSample:
                continue
            raise AssertionError("an RTT out of range was accepted")
        got, expected = client.update(peer, coord, rtt), reference.update(peer, coord, rtt)
        assert got == expected
        assert all(math.isfinite(x) for x in got.vec)
    assert (client.updates, client.resets) == (reference.updates, reference.resets)
    assert client._rng.random() == reference.rng.random()  # the same draws were taken
