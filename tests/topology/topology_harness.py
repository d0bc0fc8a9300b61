"""A pure simulation harness for Vivaldi (serf's coordinate/phantom.go, rewritten).

A truth matrix holds true RTTs in seconds; `simulate` runs cycles in which every client
observes the true RTT to one uniformly chosen peer (skipping itself, as serf does);
`evaluate` compares every pair's estimate with the truth. One seed drives everything.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import attrs

from swimnet.topology import CoordinateClient, VivaldiConfig

Truth = list[list[float]]


def _matrix(nodes: int) -> Truth:
    return [[0.0] * nodes for _ in range(nodes)]


def make_clients(nodes: int, config: VivaldiConfig, rng: random.Random) -> list[CoordinateClient]:
    return [CoordinateClient(config, rng) for _ in range(nodes)]


def line(nodes: int, spacing: float) -> Truth:
    truth = _matrix(nodes)
    for i in range(nodes):
        for j in range(i + 1, nodes):
            truth[i][j] = truth[j][i] = (j - i) * spacing
    return truth


def grid(nodes: int, spacing: float) -> Truth:
    truth = _matrix(nodes)
    side = math.isqrt(nodes)
    for i in range(nodes):
        for j in range(i + 1, nodes):
            dx, dy = j % side - i % side, j // side - i // side
            truth[i][j] = truth[j][i] = math.hypot(dx, dy) * spacing
    return truth


def split(nodes: int, lan: float, wan: float) -> Truth:
    truth = _matrix(nodes)
    half = nodes // 2
    for i in range(nodes):
        for j in range(i + 1, nodes):
            cross = (i <= half) != (j <= half)
            truth[i][j] = truth[j][i] = lan + (wan if cross else 0.0)
    return truth


def circle(nodes: int, radius: float) -> Truth:
    """Node 0 is equidistant (2 * radius) from all others, which sit on a circle."""
    truth = _matrix(nodes)
    for i in range(nodes):
        for j in range(i + 1, nodes):
            if i == 0:
                rtt = 2.0 * radius
            else:
                t1, t2 = 2.0 * math.pi * i / nodes, 2.0 * math.pi * j / nodes
                rtt = math.dist((math.cos(t1), math.sin(t1)), (math.cos(t2), math.sin(t2))) * radius
            truth[i][j] = truth[j][i] = rtt
    return truth


def gaussian(nodes: int, mean: float, deviation: float, rng: random.Random) -> Truth:
    truth = _matrix(nodes)
    for i in range(nodes):
        for j in range(i + 1, nodes):
            truth[i][j] = truth[j][i] = rng.gauss(mean, deviation)
    return truth


def simulate(clients: Sequence[CoordinateClient], truth: Truth, cycles: int, rng: random.Random) -> None:
    nodes = len(clients)
    names = [f"node_{j}" for j in range(nodes)]
    for _ in range(cycles):
        for i, client in enumerate(clients):
            j = rng.randrange(nodes)
            if j != i:
                client.update(names[j], clients[j].coordinate, truth[i][j])


@attrs.frozen
class Stats:
    error_avg: float
    error_max: float


def evaluate(clients: Sequence[CoordinateClient], truth: Truth) -> Stats:
    errors = [
        abs(clients[i].distance_to(clients[j].coordinate) - truth[i][j]) / truth[i][j]
        for i in range(len(clients))
        for j in range(i + 1, len(clients))
    ]
    return Stats(error_avg=sum(errors) / len(errors), error_max=max(errors))
