"""A long paced join burst converges soon after the joins stop, not at a periodic push-pull.

300 nodes join one seed 100 ms apart (a 30 s burst, like the real cluster's 500 joins at
N = 500 that take 70 s in one CPU-bound process) over 0.5-5 ms links losing 2% of datagrams.
A few nodes miss one or two of the later joiners: gossip about them does not reach them (a
recent joiner is unverified at most members, so little gossip goes to it), and their random
push-pull partners list a later joiner only once they verified it themselves. Before the
catch-up push-pull (see swimnet.membership.swim) they waited for their next periodic
push-pull, every 120 s at this size: seeds 0, 1 and 2 still had 1, 3 and 2 nodes missing
members 20 s after the last join. With it, once a node has learned no new member for
CATCH_UP_QUIET probe intervals it pulls from the member it learned of last, and the cluster
converges within 6-10 s of the last join.
"""

from __future__ import annotations

import pytest
from sim_helpers import why

from swimnet.config import Config
from swimnet.membership.swim import CATCH_UP_MAX
from swimnet.sim import Simulation, Uniform

NODES = 300
SPACING = 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_a_paced_join_burst_catches_up_without_periodic_push_pulls(seed: int) -> None:
    sim = Simulation(seed, Config.lan(), latency=Uniform(0.0005, 0.005), loss=0.02)
    names = sim.add_nodes(NODES)
    for i, name in enumerate(names[1:]):
        sim.at(SPACING * i, lambda name=name: sim.join(name, names[0]))
    joins_end = SPACING * (NODES - 2)
    sim.run_for(joins_end)
    # periodic push-pulls come every 120 s at 300 nodes, and each node's first one after its
    # join fell within 30 s of its start: 20 s after the last join none is due for most
    converged = sim.run_until(sim.converged, timeout=20.0, step=0.1)
    laggards = [n for n in names if not sim.converged_at(n)]
    assert converged, why(sim, f"{len(laggards)} nodes still miss members: {laggards}")
    catch_ups = [sim.engine(n).stats["catch_up_push_pulls"] for n in names]
    assert max(catch_ups) <= CATCH_UP_MAX, why(sim, "more catch-up push-pulls than the bound")
