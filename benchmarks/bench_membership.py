"""Membership benchmarks in the simulator (virtual time; real engines, real codec).

Scenarios (issue: foundation, section 6):
- bootstrap of N = 100, 1000, 2000 via one seed, LAN config: virtual time until every node
  sees all N alive;
- one new update (a meta change) reaching 99.99% of N = 1000;
- crash detection at N = 100: time to the first suspicion and to "dead" on every observer;
- false dead declarations at N = 100 under 10% loss over one virtual hour;
- Lifeguard stall: one node stalled 5 s every 30 s for 10 min: healthy nodes declared dead;
- simulator speed (delivered packets per wall second) and peak memory at N = 2000.

`python benchmarks/bench_membership.py [--quick]` or `nox -s bench -- membership`.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import sys
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import histogram_png, out_dir, percentile, summary, write_json
from swimnet.config import Config
from swimnet.membership.events import MemberEvent, MemberFailed, MemberSuspected, MemberUpdated
from swimnet.sim import Simulation
from swimnet.tables import TableChange


def _cluster(n: int, seed: int, **kw: Any) -> tuple[Simulation, list[str], float]:
    sim = Simulation(seed=seed, config=Config.lan(), **kw)
    names = sim.add_nodes(n)
    sim.join_all(via=names[0])
    step = 0.05 if n <= 100 else 0.1 if n <= 1000 else 0.25
    ok = sim.run_until(sim.converged, timeout=120.0, step=step)
    if not ok:
        raise RuntimeError(f"{sim.describe()}: {n} nodes did not converge")
    return sim, names, step


def bootstrap(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        wall = time.perf_counter()
        sim, _, step = _cluster(n, seed=1)
        elapsed = time.perf_counter() - wall
        row = {
            "nodes": n,
            "converge_virtual_s": round(sim.now, 3),
            "resolution_s": step,
            "wall_s": round(elapsed, 1),
            "delivered_packets": sim.delivered,
            "stream_bytes": sum(s["stream_bytes_sent"] for s in sim.stats.values()),
        }
        print(f"bootstrap N={n}: converged at {sim.now:.2f} s virtual ({elapsed:.0f} s wall)")
        rows.append(row)
    return rows


def dissemination(n: int = 1000, seed: int = 3) -> dict[str, Any]:
    sim, names, _ = _cluster(n, seed)
    sim.run_for(60.0)  # let the bootstrap broadcasts drain
    source = names[n // 2]
    seen: dict[str, float] = {}

    def record(now: float, observer: str, event: MemberEvent | TableChange) -> None:
        if isinstance(event, MemberUpdated) and event.member.name == source:
            seen.setdefault(observer, now)

    sim.on_event = record
    start = sim.now
    sim.call(source, lambda engine: engine.set_meta(b"version-2", sim.now))
    target = int(0.9999 * (n - 1) + 0.999999)  # 99.99% of the other nodes, rounded up
    sim.run_until(lambda: len(seen) >= target, timeout=30.0, step=0.02)
    delays = sorted(t - start for t in seen.values())
    result = {
        "nodes": n,
        "reached": len(seen),
        "time_to_99_99_pct_s": round(delays[target - 1], 3) if len(delays) >= target else None,
        "time_to_50_pct_s": round(percentile(delays, 50), 3),
        "delays": summary(delays),
    }
    print(f"dissemination N={n}: 99.99% after {result['time_to_99_99_pct_s']} s (virtual)")
    return result


def crash_detection(n: int = 100, trials: int = 10) -> dict[str, Any]:
    first_suspect: list[float] = []
    dead: list[float] = []
    for trial in range(trials):
        sim, names, _ = _cluster(n, seed=100 + trial)
        sim.run_for(30.0)
        victim = names[1 + trial % (n - 1)]
        suspected: list[float] = []
        dead_at: dict[str, float] = {}

        def record(
            now: float,
            observer: str,
            event: MemberEvent | TableChange,
            victim: str = victim,
            suspected: list[float] = suspected,
            dead_at: dict[str, float] = dead_at,
        ) -> None:
            if isinstance(event, TableChange) or event.member.name != victim:
                return
            if isinstance(event, MemberSuspected):
                suspected.append(now)
            elif isinstance(event, MemberFailed):
                dead_at.setdefault(observer, now)

        sim.on_event = record
        start = sim.now
        sim.crash(victim)
        sim.run_until(lambda dead_at=dead_at: len(dead_at) == n - 1, timeout=300.0, step=0.5)
        first_suspect.append(min(suspected) - start)
        dead.extend(t - start for t in dead_at.values())
    result = {
        "nodes": n,
        "trials": trials,
        "first_suspect_s": summary(first_suspect),
        "dead_on_every_observer_s": summary(dead),
    }
    print(
        f"crash detection N={n}: first suspect median {result['first_suspect_s']['median']} s, "
        f"dead median {result['dead_on_every_observer_s']['median']} s, "
        f"p99 {result['dead_on_every_observer_s']['p99']} s"
    )
    histogram_png(
        "membership_crash_detection", {"first suspect": first_suspect, "dead": dead}, "seconds", out_dir()
    )
    return result


def false_dead_under_loss(n: int = 100, loss: float = 0.10, hours: float = 1.0) -> dict[str, Any]:
    sim, _, _ = _cluster(n, seed=7)
    failed: list[tuple[float, str, str]] = []
    suspicions = [0]

    def record(now: float, observer: str, event: MemberEvent | TableChange) -> None:
        if isinstance(event, MemberFailed):
            failed.append((now, observer, event.member.name))
        elif isinstance(event, MemberSuspected):
            suspicions[0] += 1

    sim.on_event = record
    sim.set_loss(loss)
    wall = time.perf_counter()
    sim.run_for(hours * 3600.0)
    result = {
        "nodes": n,
        "loss": loss,
        "virtual_hours": hours,
        "false_dead_declarations": len(failed),
        "suspicions_raised": suspicions[0],
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    print(f"loss {loss:.0%} for {hours} h at N={n}: {len(failed)} false dead, {suspicions[0]} suspicions")
    return result


def stall(n: int = 100, stall_s: float = 5.0, every_s: float = 30.0, minutes: float = 10.0) -> dict[str, Any]:
    sim, names, _ = _cluster(n, seed=11)
    slow = names[7]
    failed: list[tuple[float, str, str]] = []

    def record(now: float, observer: str, event: MemberEvent | TableChange) -> None:
        if isinstance(event, MemberFailed):
            failed.append((now, observer, event.member.name))

    sim.on_event = record
    start = sim.now
    t = start + 5.0
    while t < start + minutes * 60.0:
        sim.at(t, lambda: sim.stall(slow, stall_s))
        t += every_s
    sim.run_for(minutes * 60.0 + 60.0)
    healthy_declared = [f for f in failed if f[2] != slow]
    by_slow = [f for f in failed if f[1] == slow]
    result = {
        "nodes": n,
        "stalled_node": slow,
        "stall_s": stall_s,
        "every_s": every_s,
        "minutes": minutes,
        "healthy_declared_dead": len(healthy_declared),
        "declarations_by_stalled_node": len(by_slow),
        "stalled_node_declared_dead": len(failed) - len(healthy_declared),
    }
    print(
        f"stall {stall_s}s/{every_s}s for {minutes} min: {len(healthy_declared)} healthy declared dead, "
        f"stalled node declared dead {result['stalled_node_declared_dead']} times"
    )
    return result


def simulator_speed(n: int = 2000, window: float = 30.0) -> dict[str, Any]:
    wall = time.perf_counter()
    sim, _, _ = _cluster(n, seed=5)
    bootstrap_wall = time.perf_counter() - wall
    sim.run_for(30.0)
    before = sim.delivered
    wall = time.perf_counter()
    sim.run_for(window)
    elapsed = time.perf_counter() - wall
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "nodes": n,
        "steady_window_virtual_s": window,
        "steady_delivered_packets_per_wall_s": round((sim.delivered - before) / elapsed),
        "bootstrap_wall_s": round(bootstrap_wall, 1),
        "peak_rss_mib": round(rss_mib),
    }
    print(
        f"simulator N={n}: {result['steady_delivered_packets_per_wall_s']:,} delivered packets/s (steady), "
        f"peak RSS {rss_mib:.0f} MiB"
    )
    return result


def run(directory: pathlib.Path, quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["bootstrap"] = bootstrap((100, 300) if quick else (100, 1000, 2000))
    results["dissemination"] = dissemination(300 if quick else 1000)
    results["crash_detection"] = crash_detection(100, trials=3 if quick else 10)
    results["false_dead_under_loss"] = false_dead_under_loss(100, hours=0.1 if quick else 1.0)
    results["stall"] = stall(100, minutes=2 if quick else 10)
    results["simulator"] = simulator_speed(300 if quick else 2000)
    write_json("membership", results, directory)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    run(out_dir(), quick=args.quick)
