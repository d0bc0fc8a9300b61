"""A burst of joins through one seed converges without waiting for periodic push-pulls.

Joiners arrive 10 ms apart over 20 ms links. A newcomer is unverified almost everywhere, so
gossip about later joiners can die out before it reaches it, and a random partner's sync lists
only the members that partner verified itself. The last post-join sync goes back to the member
that answered the join, which verified every member that joined through it since.
"""

from __future__ import annotations

import pytest

from swimnet.config import Config
from swimnet.sim import Simulation


@pytest.mark.parametrize("seed", [2, 5])
def test_a_join_burst_converges_within_seconds(seed: int) -> None:
    sim = Simulation(seed, Config.lan(), latency=0.02)
    names = sim.add_nodes(200)
    for i, name in enumerate(names[1:]):
        sim.at(0.01 * i, lambda name=name: sim.join(name, names[0]))
    # the joins take 2 s; the first periodic push-pull at this size comes after a minute or more
    assert sim.run_until(sim.converged, timeout=15, step=0.05), f"not converged, seed {seed}"
