"""Seed sweep: the same 30-node scenario under many seeds (join, crash one, leave one,
converge). A failing seed is printed in the assertion and replays exactly."""

from __future__ import annotations

import random

import pytest
from sim_helpers import cluster, everyone_sees, leave_and_stop, states_of, why

from swimnet.sim import Uniform

SEEDS = range(100, 140)


@pytest.mark.parametrize("seed", SEEDS)
def test_join_crash_leave_converge(seed: int) -> None:
    sim, events = cluster(seed=seed, n=30, latency=Uniform(0.0002, 0.003))
    pick = random.Random(seed)
    crashed, leaving = pick.sample([n for n in sim.names if n != "n0"], 2)

    sim.crash(crashed)
    leave_and_stop(sim, leaving)
    detected = sim.run_until(everyone_sees(sim, crashed, {"dead", None}), 60.0)
    assert detected, why(sim, f"crash of {crashed} not detected: {states_of(sim, crashed)}")
    assert sim.run_until(everyone_sees(sim, leaving, {"left", None}), 30.0), why(
        sim, f"leave of {leaving} not seen: {states_of(sim, leaving)}"
    )
    assert sim.run_until(sim.converged, 60.0), why(sim, "the 28 remaining nodes did not converge")

    assert events.of("MemberFailed", leaving) == [], why(sim, f"{leaving} left but was declared dead")
    assert events.false_deaths() == [], why(sim, f"running nodes declared dead: {events.false_deaths()[:5]}")
    observers = {r.observer for r in events.of("MemberFailed", crashed)}
    assert observers == set(sim.running()), why(sim, f"not everyone saw {crashed} fail: {observers}")
