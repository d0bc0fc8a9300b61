"""A burst of joins through one seed converges without waiting for periodic push-pulls.

200 nodes join 10 ms apart over 20 ms links (the reproducer of issue 15's "two-mode" join
convergence). A newcomer is unverified almost everywhere, so gossip about later joiners can
die out before it reaches it, and its random post-join sync partners, members that joined
before it mostly, list the later joiners only once they verified them themselves. Its last
post-join sync goes to the member it heard of last and holds unverified: a later joiner,
whose join answer listed everyone the seed had verified by then (see swimnet.membership.swim).
Without that rule 6 of these 10 seeds took 11.85 s to over 40 s virtual; with it, 3.05-5.2 s.
"""

from __future__ import annotations

import pytest

from swimnet.config import Config
from swimnet.sim import Simulation


@pytest.mark.parametrize("seed", range(10))
def test_a_join_burst_converges_within_seconds(seed: int) -> None:
    sim = Simulation(seed, Config.lan(), latency=0.02)
    names = sim.add_nodes(200)
    for i, name in enumerate(names[1:]):
        sim.at(0.01 * i, lambda name=name: sim.join(name, names[0]))
    # the joins take 2 s and a joiner's post-join syncs end 3.6 s after its join at the
    # latest; beyond that, a node missing members waited for a periodic push-pull (every
    # 30 s or more at this size)
    assert sim.run_until(sim.converged, timeout=8, step=0.05), f"not converged: {sim.describe()}"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_burst_with_gaps_converges_within_seconds_of_its_last_join(seed: int) -> None:
    """Joins in groups with gaps between them (a slow burst, as joins on a busy host come):
    the catch-ups a node makes in a gap may find nothing new, and then it misses a member
    of a later group; the backstop catch-up after the last group repairs it. Catch-ups
    stopped by the first gap left seed 0 to its periodic push-pull, 120 s after the last join."""
    sim = Simulation(seed, Config.lan(), latency=0.002)
    names = sim.add_nodes(300)
    groups, gap = 10, 3.0  # 30 joins 10 ms apart, then 3 s without one: longer than the fast quiet
    per = (len(names) - 1 + groups - 1) // groups
    for i, name in enumerate(names[1:]):
        sim.at((i // per) * gap + i * 0.01, lambda name=name: sim.join(name, names[0]))
    last_join = (len(names) - 2) // per * gap + (len(names) - 2) * 0.01
    sim.run_for(last_join)
    assert sim.run_until(sim.converged, timeout=10, step=0.05), f"not converged: {sim.describe()}"
