"""Whole-cluster behaviour in the simulator: join, crash, leave, restart."""

from __future__ import annotations

from sim_helpers import cluster, everyone_sees, leave_and_stop, states_of, why

from swimnet.engine import Engine
from swimnet.sim import Simulation


def test_fifty_nodes_converge() -> None:
    sim, events = cluster(seed=50, n=50, timeout=30.0)
    assert sim.converged(), why(sim, "not converged")
    for name in sim.names:
        assert set(sim.view(name)) == set(sim.names), why(sim, f"{name} misses members")
    assert events.of("MemberFailed") == [], why(sim, "deaths while joining")


def test_crash_is_detected_by_everyone() -> None:
    sim, events = cluster(seed=51, n=30)
    sim.crash("n7")
    crashed_at = sim.now
    detected = sim.run_until(everyone_sees(sim, "n7", {"dead"}), timeout=60.0)
    assert detected, why(sim, f"n7 crashed at {crashed_at:.1f}s, not dead everywhere: {states_of(sim, 'n7')}")
    observers = {r.observer for r in events.of("MemberFailed", "n7")}
    assert observers == set(sim.running()), why(sim, "every running node reports n7's failure")
    assert events.false_deaths() == [], why(sim, f"running nodes declared dead: {events.false_deaths()}")
    assert sim.converged(), why(sim, "not converged after the crash was detected")


def test_leave_is_seen_as_left_not_dead() -> None:
    sim, events = cluster(seed=52, n=30)
    leave_and_stop(sim, "n5")
    seen = sim.run_until(everyone_sees(sim, "n5", {"left"}), timeout=30.0)
    assert seen, why(sim, f"n5 left but is seen as {states_of(sim, 'n5')}")
    sim.run_for(20.0)  # long after: still left, never failed
    assert all(s in ("left", None) for s in states_of(sim, "n5").values()), why(sim, "left turned into dead")
    assert events.of("MemberFailed", "n5") == [], why(sim, "a graceful leave must not read as a failure")
    assert {r.observer for r in events.of("MemberLeft", "n5")} == set(sim.running()), why(sim, "MemberLeft")


def _incarnations(sim: Simulation, subject: str) -> dict[str, int]:
    out = {}
    for name in sim.running():
        if name != subject:
            for m in sim.node(name).members():
                if m.name == subject:
                    out[name] = m.incarnation
    return out


def test_restart_comes_back_alive_with_a_higher_incarnation() -> None:
    sim, _ = cluster(seed=53, n=20)
    before = sim.node("n4").local_member.incarnation
    sim.crash("n4")
    assert sim.run_until(everyone_sees(sim, "n4", {"dead"}), 60.0), why(sim, "crash not detected")
    sim.restart("n4")
    assert sim.run_until(sim.converged, 60.0), why(sim, "restarted node not re-adopted")
    seen = _incarnations(sim, "n4")
    assert len(seen) == 19 and min(seen.values()) > before, why(sim, f"incarnations seen: {seen}")


def test_restart_that_forgot_its_incarnation_still_comes_back() -> None:
    """A restarted node starting again at incarnation 1 overtakes what the cluster remembers."""

    def amnesiac(cfg, *, rng, now, incarnation):  # type: ignore[no-untyped-def]
        return Engine(cfg, rng=rng, now=now, incarnation=1)

    sim, _ = cluster(seed=54, n=12, engine_factory=amnesiac)
    for meta in (b"1", b"2", b"3"):  # each change bumps n4's incarnation
        sim.node("n4").set_meta(meta, sim.now)
        sim.run_for(2.0)
    remembered = sim.node("n4").local_member.incarnation
    assert remembered == 4
    sim.crash("n4")
    assert sim.run_until(everyone_sees(sim, "n4", {"dead"}), 60.0), why(sim, "crash not detected")
    sim.restart("n4")
    assert sim.node("n4").local_member.incarnation == 1
    assert sim.run_until(sim.converged, 60.0), why(
        sim, f"amnesiac restart never re-adopted: {states_of(sim, 'n4')}"
    )
    seen = _incarnations(sim, "n4")
    assert min(seen.values()) > remembered, why(sim, f"incarnations seen: {seen}")
