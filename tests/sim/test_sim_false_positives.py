"""No false failure detections: packet loss alone, or a node that stalls now and then
(Lifeguard's overloaded member), must never get a running node declared dead.

Checked with both probe paths: the default (UDP probe plus memberlist's stream fallback;
the simulator's streams are reliable) and UDP only, where Lifeguard alone (indirect probes,
nacks, local health, suspicion with refutation) has to carry it.
"""

from __future__ import annotations

import pytest
from sim_helpers import cluster, why

from swimnet.config import Config

CONFIGS = {
    "default": Config.lan(),
    "udp-only": Config.lan(tcp_fallback_probe=False),
}


@pytest.mark.parametrize("probe", list(CONFIGS))
def test_ten_percent_loss_for_300s_declares_no_one_dead(probe: str) -> None:
    sim, events = cluster(seed=10, n=30, config=CONFIGS[probe])
    sim.set_loss(0.10)
    sim.run_for(300.0)
    assert events.of("MemberFailed") == [], why(
        sim, f"false deaths under loss: {events.of('MemberFailed')[:5]}"
    )
    assert len(sim.running()) == 30
    sim.set_loss(0.0)
    assert sim.run_until(sim.converged, 60.0), why(sim, "not converged once the loss stopped")


def _stall_run(seed: int, config: Config) -> None:
    sim, events = cluster(seed=seed, n=20, config=config)
    start = sim.now
    for i in range(10):
        sim.at(start + 10.0 + 30.0 * i, lambda: sim.stall("n3", 5.0))
    sim.run_for(310.0)
    failed = events.of("MemberFailed")
    assert [r for r in failed if r.subject != "n3"] == [], why(
        sim, f"healthy nodes declared dead: {failed[:5]}"
    )
    assert failed == [], why(sim, f"the stalled node was declared dead: {failed[:5]}")
    # the stalls were real: the others did suspect n3 (and n3 refuted every time)
    assert events.of("MemberSuspected", "n3"), why(sim, "the stalls went unnoticed: the test tests nothing")
    assert sim.run_until(sim.converged, 30.0), why(sim, "not converged after the stalls")


@pytest.mark.parametrize("seed", [21, 22])
@pytest.mark.parametrize("probe", list(CONFIGS))
def test_node_stalling_5s_every_30s_is_never_declared_dead(probe: str, seed: int) -> None:
    _stall_run(seed, CONFIGS[probe])


def test_stalls_and_loss_together_declare_no_one_dead() -> None:
    sim, events = cluster(seed=30, n=16)
    sim.set_loss(0.05)
    start = sim.now
    for i in range(6):
        sim.at(start + 5.0 + 25.0 * i, lambda i=i: sim.stall(f"n{1 + i % 3}", 4.0))
    sim.run_for(160.0)
    assert events.false_deaths() == [], why(sim, f"false deaths: {events.false_deaths()[:5]}")
