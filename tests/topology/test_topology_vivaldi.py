"""The Vivaldi client: update direction, rejections, NaN defence, latency filter, config."""

from __future__ import annotations

import math
import random

import attrs
import pytest

from swimnet.errors import ConfigError
from swimnet.topology import (
    REJECT_REASONS,
    Coordinate,
    CoordinateClient,
    RejectedSample,
    VivaldiConfig,
)
from swimnet.topology.vivaldi import LatencyFilter

CONFIG3 = VivaldiConfig(dimensionality=3)


def client(config: VivaldiConfig = CONFIG3, seed: int = 1) -> CoordinateClient:
    return CoordinateClient(config, random.Random(seed))


def at(vec: tuple[float, ...], config: VivaldiConfig = CONFIG3) -> Coordinate:
    return attrs.evolve(config.origin(), vec=vec)


def test_fresh_client_sits_at_the_origin() -> None:
    c = client(VivaldiConfig(dimensionality=7))
    assert c.coordinate == Coordinate(vec=(0.0,) * 7, error=1.5, adjustment=0.0, height=10e-6)
    assert c.resets == 0


def test_defaults_are_serfs() -> None:
    cfg = VivaldiConfig()
    assert (cfg.dimensionality, cfg.error_max, cfg.ce, cfg.cc) == (8, 1.5, 0.25, 0.25)
    assert (cfg.adjustment_window, cfg.height_min, cfg.latency_filter_size) == (20, 10e-6, 3)
    assert (cfg.gravity_rho, cfg.max_rtt) == (150.0, 10.0)


def test_update_moves_away_from_a_peer_that_is_further_than_expected() -> None:
    c = client()
    other = at((0.0, 0.0, 0.001))
    new = c.update("node", other, 2 * 0.001)
    assert new.vec[2] < 0.0
    assert c.coordinate == new
    assert new.is_within_limits()


def test_estimates_converge_for_two_nodes() -> None:
    rng = random.Random(3)
    a, b = CoordinateClient(VivaldiConfig(), rng), CoordinateClient(VivaldiConfig(), rng)
    for _ in range(200):
        a.update("b", b.coordinate, 0.050)
        b.update("a", a.coordinate, 0.050)
    assert a.distance_to(b.coordinate) == pytest.approx(0.050, rel=0.02)
    assert a.rtt_estimate(b.coordinate) == a.distance_to(b.coordinate)
    assert a.coordinate.error < 0.1


@pytest.mark.parametrize("rtt", [0.0, -0.035, 10.000001, 11.0, 9.2e18, math.nan, math.inf, -math.inf])
def test_absurd_rtt_is_rejected_and_changes_nothing(rtt: float) -> None:
    c = client()
    other = at((0.0, 0.0, 0.001))
    c.update("node", other, 0.002)
    before, dist = c.coordinate, c.distance_to(other)
    with pytest.raises(RejectedSample) as info:
        c.update("node", other, rtt)
    assert info.value.reason == "rtt_out_of_range"
    assert c.coordinate == before and c.distance_to(other) == dist
    # the rejected sample did not enter the median filter either
    assert c.update("node", other, 0.002) == client_after_two_samples(other)


def client_after_two_samples(other: Coordinate) -> Coordinate:
    c = client()
    c.update("node", other, 0.002)
    return c.update("node", other, 0.002)


def test_largest_accepted_rtt_is_max_rtt() -> None:
    c = client()
    c.update("node", at((0.0, 0.0, 1.0)), 10.0)
    assert c.coordinate.is_within_limits()


@pytest.mark.parametrize(
    ("peer", "reason"),
    [
        (at((math.nan, 0.0, 0.0)), "coordinate_invalid"),
        (at((0.0, math.inf, 0.0)), "coordinate_invalid"),
        (attrs.evolve(CONFIG3.origin(), error=math.nan), "coordinate_invalid"),
        (attrs.evolve(CONFIG3.origin(), height=-math.inf), "coordinate_invalid"),
        (at((0.0, 0.0)), "coordinate_incompatible"),
        (at((0.0,) * 6), "coordinate_incompatible"),
        (at((0.0, 5.0e3, 0.0)), "coordinate_out_of_limits"),
        (attrs.evolve(CONFIG3.origin(), error=-1.0), "coordinate_out_of_limits"),
        (attrs.evolve(CONFIG3.origin(), height=-0.001), "coordinate_out_of_limits"),
        (attrs.evolve(CONFIG3.origin(), adjustment=1e9), "coordinate_out_of_limits"),
    ],
)
def test_bad_peer_coordinate_is_rejected(peer: Coordinate, reason: str) -> None:
    c = client()
    before = c.coordinate
    with pytest.raises(RejectedSample) as info:
        c.update("node", peer, 0.250)
    assert info.value.reason == reason
    assert reason in REJECT_REASONS
    assert c.coordinate == before
    with pytest.raises(RejectedSample):
        c.set_coordinate(peer)
    assert c.coordinate == before
    assert c.tracked_peers == 0


def test_rtt_estimate_is_none_when_unusable() -> None:
    c = client()
    assert c.rtt_estimate(None) is None
    assert c.rtt_estimate(at((0.0, 0.0))) is None
    assert c.rtt_estimate(at((math.nan, 0.0, 0.0))) is None
    assert c.rtt_estimate(at((0.0, 0.0, 0.5))) == pytest.approx(0.5 + 2 * 10e-6)


def test_poisoned_state_resets_to_the_origin() -> None:
    c = client()
    # bypass the checks on purpose, as serf's NaN-defence test pokes its internals
    c._coord = at((math.nan, 0.0, 0.0))
    new = c.update("node", CONFIG3.origin(), 0.250)
    assert new == CONFIG3.origin()
    assert c.resets == 1


def test_coincident_start_uses_the_injected_rng() -> None:
    runs = []
    for seed in (5, 5, 6):
        c = client(VivaldiConfig(), seed)
        runs.append(c.update("peer", VivaldiConfig().origin(), 0.010))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_latency_filter_is_a_moving_median() -> None:
    f = LatencyFilter(3)
    # serf's TestClient_latencyFilter
    for sample, expected in [(0.201, 0.201), (0.200, 0.201), (0.207, 0.201)]:
        assert f.add("alice", sample) == expected
    # the glitch is medianed out and never seen by Vivaldi
    for sample, expected in [(1.9, 0.207), (0.203, 0.207), (0.199, 0.203), (0.211, 0.203)]:
        assert f.add("alice", sample) == expected
    assert f.add("bob", 0.310) == 0.310  # peers are not coupled
    assert len(f) == 2
    f.forget("alice")
    assert f.add("alice", 0.888) == 0.888  # forgotten peers start over
    f.forget("nobody")


def test_client_forget_drops_filter_state() -> None:
    c = client()
    other = at((0.0, 0.0, 0.01))
    c.update("a", other, 0.02)
    c.update("b", other, 0.02)
    assert c.tracked_peers == 2
    c.forget("a")
    assert c.tracked_peers == 1


def test_adjustment_disabled_with_window_zero() -> None:
    c = client(VivaldiConfig(dimensionality=3, adjustment_window=0))
    for _ in range(10):
        c.update("n", at((0.0, 0.0, 0.001)), 0.005)
    assert c.coordinate.adjustment == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dimensionality": 0},
        {"dimensionality": 33},
        {"error_max": 0.0},
        {"error_max": math.nan},
        {"ce": 0.0},
        {"cc": 1.5},
        {"adjustment_window": -1},
        {"height_min": -1e-6},
        {"latency_filter_size": 0},
        {"gravity_rho": math.inf},
        {"max_rtt": 0.0},
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        VivaldiConfig(**kwargs)  # type: ignore[arg-type]
