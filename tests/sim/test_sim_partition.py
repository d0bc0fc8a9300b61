"""Partition healing: after a split long enough for each side to declare the other dead and
reap it (memberlist never heals from there), the cluster re-merges by itself once the network
is restored, through swimnet's rejoin mechanism (re-contacting reaped failed members).
"""

from __future__ import annotations

import pytest
from sim_helpers import cluster, why

from swimnet.config import Config
from swimnet.sim import Simulation

PARTITION = 120.0
HEAL_BOUND = 60.0
"""DESIGN target: re-merge within 2x the push-pull interval (30 s) after the network is back."""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_cluster_remerges_after_reaping(seed: int) -> None:
    sim, events = cluster(seed=seed, n=40)
    names = sim.names
    left, right = names[:20], names[20:]
    sim.partition([left, right])
    sim.run_for(PARTITION)

    for side, other in ((left, right), (right, left)):
        for name in side:
            view = sim.view(name)
            assert not set(other) & set(view), why(sim, f"{name} still remembers the other side: {view}")
            assert all(view[n] == "alive" for n in side), why(sim, f"{name}'s own side: {view}")
    failed_pairs = {(r.observer, r.subject) for r in events.of("MemberFailed")}
    assert all((a, b) in failed_pairs for a in left for b in right), why(
        sim, "each side declared the other dead"
    )

    sim.heal()
    healed_at = sim.now
    merged = sim.run_until(sim.converged, HEAL_BOUND)
    assert merged, why(sim, f"not re-merged {HEAL_BOUND}s after the heal at {healed_at:.1f}s")
    for name in names:
        assert set(sim.view(name)) == set(names), why(sim, f"{name} sees {sim.view(name)}")


def test_isolated_node_rejoins_after_being_reaped() -> None:
    sim, _ = cluster(seed=9, n=16)
    sim.partition([["n11"]])  # n11 alone; everyone else is the (unlisted) other group
    sim.run_for(PARTITION)
    # (n11 itself is slow to give up on the others: every probe fails without a nack, so
    # Lifeguard stretches its probe interval to 8 s: that is its local health at work)
    for name in sim.names:
        if name != "n11":
            assert "n11" not in sim.view(name), why(sim, f"{name} should have reaped n11")
    sim.heal()
    assert sim.run_until(sim.converged, HEAL_BOUND), why(sim, "isolated node did not rejoin")


def test_three_way_split_remerges() -> None:
    sim, _ = cluster(seed=4, n=24)
    names = sim.names
    sim.partition([names[:8], names[8:16], names[16:]])
    sim.run_for(PARTITION)
    sim.heal()
    # two merges may be needed one after the other
    assert sim.run_until(sim.converged, 2 * HEAL_BOUND), why(sim, "three-way split did not re-merge")


def test_split_heals_within_bound_despite_many_crashed_members() -> None:
    slow = []
    for seed in range(6):
        sim, _ = cluster(seed=seed, n=22)
        for name in ["n0", *(f"n{i}" for i in range(3, 22))]:  # the seed node and 19 others die
            sim.crash(name)
        sim.run_for(120.0)  # declared dead and reaped everywhere
        sim.partition([["n1"], ["n2"]])
        sim.run_for(PARTITION)
        sim.heal()
        if not sim.run_until(sim.converged, HEAL_BOUND):
            slow.append(sim.describe())
    assert slow == [], f"not re-merged within {HEAL_BOUND}s of the heal: {slow}"


MERGE_BOUND = 5.0
"""Two settled clusters merged by one join: gossip spreads each side to the other within a
few gossip rounds (the periodic push-pull, 30 s away, must not be needed)."""


@pytest.mark.parametrize("seed", range(6))
def test_two_clusters_merge_through_one_join(seed: int) -> None:
    sim = Simulation(seed=seed, config=Config.lan())
    left, right = sim.add_nodes(50), sim.add_nodes(50)
    sim.partition([left, right])  # formed apart (the partition only keeps the joins apart)
    for side in (left, right):
        for name in side[1:]:
            sim.join(name, side[0])
    sim.run_for(10.0)
    for name in left + right:
        side = left if name in left else right
        assert set(sim.view(name)) == set(side), why(sim, f"{name} sees {sim.view(name)}")
    sim.heal()
    sim.join(left[5], right[0])  # a member of one cluster joins the other
    assert sim.run_until(sim.converged, MERGE_BOUND), why(sim, "the clusters did not merge")
