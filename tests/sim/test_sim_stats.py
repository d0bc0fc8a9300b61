"""The simulator's per-node traffic counts (`Simulation.stats`): what the engines sent and what
was delivered, however often they are read, across stalls and restarts."""

from __future__ import annotations

from sim_helpers import why

from swimnet.config import Config
from swimnet.sim import Simulation


def _datagram_counts(sim: Simulation, name: str) -> tuple[int, int, int, int]:
    s = sim.stats[name]
    return s["packets_sent"], s["bytes_sent"], s["packets_received"], s["bytes_received"]


def test_counts_match_the_engines_and_the_deliveries_whenever_read() -> None:
    sim = Simulation(seed=71, config=Config.lan(), loss=0.05)
    names = sim.add_nodes(12)
    sim.join_all(via=names[0])
    seen: dict[str, tuple[int, int, int, int]] = {}
    for step in range(8):
        sim.run_for(1.5)
        if step == 2:
            sim.stall("n3", 2.0)  # its backlog is delivered (and counted) when the stall ends
        for name in names:
            counts = _datagram_counts(sim, name)
            assert counts >= seen.get(name, (0, 0, 0, 0)), why(sim, f"{name}'s counts went back")
            seen[name] = counts
    sim.run_for(5.0)
    for name in names:
        e = sim.engine(name).stats
        expected = (e["packets_sent"], e["bytes_sent"], e["packets_received"], e["bytes_received"])
        assert _datagram_counts(sim, name) == expected, why(sim, f"{name}: simulator and engine disagree")
    assert sum(s["packets_received"] for s in sim.stats.values()) == sim.delivered, why(sim, "deliveries")
    assert all(s["stream_bytes_sent"] > 0 for s in sim.stats.values()), why(sim, "no push-pull")


def test_counts_of_a_node_outlive_its_restart() -> None:
    sim = Simulation(seed=72, config=Config.lan())
    names = sim.add_nodes(6)
    sim.join_all(via=names[0])
    sim.run_for(5.0)
    before = _datagram_counts(sim, "n4")
    sim.crash("n4")
    sim.run_for(2.0)
    assert _datagram_counts(sim, "n4") == before, why(sim, "a crashed node sent or received")
    sim.restart("n4", join_via="n0")
    sim.run_for(5.0)
    after = _datagram_counts(sim, "n4")
    fresh = sim.engine("n4").stats
    assert after[0] == before[0] + fresh["packets_sent"], why(sim, "sent before and after the restart")
    assert after[2] == before[2] + fresh["packets_received"], why(sim, "received, across the restart")
