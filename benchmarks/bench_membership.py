"""Membership benchmarks in the simulator (virtual time; real engines, real codec).

Scenarios (issue: foundation, section 6):
- bootstrap of N = 100, 1000, 2000 via one seed, LAN config: virtual time until every node
  sees all N alive;
- a join burst: N = 200 joining one seed 10 ms apart over 20 ms links, seeds 0-9: virtual
  time until every node sees all N alive (a joiner that missed later joiners used to wait
  for a periodic push-pull), stream bytes in all and through the seed, and how many
  last post-join syncs went to the member learned last rather than a random one;
- one new update (a meta change) reaching 99.99% of N = 1000;
- crash detection at N = 100: time to the first suspicion and to "dead" on every observer;
- false dead declarations at N = 100 under 10% loss over one virtual hour;
- Lifeguard stall: one node stalled 5 s every 30 s for 10 min: healthy nodes declared dead;
- simulator speed at N = 2000 in steady state (30 s after convergence): delivered packets
  per wall second, and per CPU second of this process (the figure that does not depend on
  what else the machine runs), with the peak memory;
- a large cluster: N = 5000 bootstrapped through one seed, then one crash detected by every
  other node, in a process of its own: wall and CPU time, peak RSS, bytes of RSS per member
  entry (N^2 of them), virtual times.

`python benchmarks/bench_membership.py [--quick]` or `nox -s bench -- membership`;
`python benchmarks/bench_membership.py --large 5000` runs the large cluster alone.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
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


def _paced_joins(n: int, seed: int) -> tuple[Simulation, list[str]]:
    """n nodes over 20 ms links, all but the first joining it 10 ms apart from t = 0."""
    sim = Simulation(seed=seed, config=Config.lan(), latency=0.02)
    names = sim.add_nodes(n)
    for i, name in enumerate(names[1:]):
        sim.at(0.01 * i, lambda name=name: sim.join(name, names[0]))
    return sim, names


def join_burst(n: int = 200, seeds: range = range(10), timeout: float = 60.0) -> dict[str, Any]:
    runs = []
    for seed in seeds:
        sim, names = _paced_joins(n, seed)
        ok = sim.run_until(sim.converged, timeout=timeout, step=0.05)
        runs.append(
            {
                "seed": seed,
                "converge_virtual_s": round(sim.now, 2) if ok else None,
                "stream_bytes": sum(s["stream_bytes_sent"] for s in sim.stats.values()),
                "seed_stream_bytes": sim.stats[names[0]]["stream_bytes_sent"],
                "join_syncs_to_latest": sum(sim.engine(name).stats["join_sync_to_latest"] for name in names),
            }
        )
    times = [r["converge_virtual_s"] for r in runs]
    done = sorted(t for t in times if t is not None)
    result = {
        "nodes": n,
        "join_interval_s": 0.01,
        "latency_s": 0.02,
        "timeout_s": timeout,
        "not_converged": len(times) - len(done),
        "converge_virtual_s": summary(done) if done else {},
        "runs": runs,
    }
    shown = ", ".join("-" if t is None else f"{t:.2f}" for t in times)
    span = f"seeds {seeds.start}-{seeds.stop - 1}"
    print(f"join burst N={n}, 10 ms apart, 20 ms links, {span}: converged at {shown} s virtual")
    return result


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
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run_for(window)
    elapsed, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "nodes": n,
        "steady_window_virtual_s": window,
        "steady_delivered_packets": sim.delivered - before,
        "steady_delivered_packets_per_wall_s": round((sim.delivered - before) / elapsed),
        "steady_delivered_packets_per_cpu_s": round((sim.delivered - before) / cpu_s),
        "steady_cpu_share": round(cpu_s / elapsed, 3),
        "bootstrap_virtual_s": round(sim.now - 30.0 - window, 3),
        "bootstrap_wall_s": round(bootstrap_wall, 1),
        "peak_rss_mib": round(rss_mib),
    }
    print(
        f"simulator N={n}: {result['steady_delivered_packets_per_wall_s']:,} delivered packets/wall-s, "
        f"{result['steady_delivered_packets_per_cpu_s']:,}/CPU-s (steady; this process had "
        f"{result['steady_cpu_share']:.0%} of a core), peak RSS {rss_mib:.0f} MiB"
    )
    return result


def _all_see_all(sim: Simulation, pending: list[str]) -> list[str]:
    """The nodes of `pending` not converged yet; stops at the first one (they converge
    together, so a check costs one view until the end)."""
    for i, name in enumerate(pending):
        if not sim.converged_at(name):
            return pending[i:]
    return []


def large_cluster_run(n: int, seed: int = 9) -> dict[str, Any]:
    """Bootstrap of `n` nodes through one seed, then one crash detected by every other node.

    Memory per member entry: the growth of this process's RSS from before the nodes were
    made to the convergence, over the entries every view then holds (about n^2)."""
    wall, cpu = time.perf_counter(), time.process_time()
    rss_start = _current_rss_bytes()
    sim = Simulation(seed=seed, config=Config.lan())
    names = sim.add_nodes(n)
    sim.join_all(via=names[0])
    pending = list(names)
    while pending and sim.now < 300.0:
        sim.run_for(1.0)
        pending = _all_see_all(sim, pending) or _all_see_all(sim, list(names))  # confirm at the end
    if pending:
        raise RuntimeError(f"{sim.describe()}: {n} nodes did not converge")
    converged_at, converge_wall = sim.now, time.perf_counter() - wall
    entries = sum(len(sim.view(name)) for name in names)
    rss_converged = _current_rss_bytes()
    victim = names[n // 2]
    dead_at: dict[str, float] = {}

    def record(now: float, observer: str, event: MemberEvent | TableChange) -> None:
        if isinstance(event, MemberFailed) and event.member.name == victim:
            dead_at.setdefault(observer, now)

    sim.on_event = record
    crashed_at = sim.now
    sim.crash(victim)
    sim.run_until(lambda: len(dead_at) == n - 1, timeout=600.0, step=1.0)
    delays = [t - crashed_at for t in dead_at.values()]
    return {
        "nodes": n,
        "converge_virtual_s": round(converged_at, 3),
        "converge_wall_s": round(converge_wall, 1),
        "crash_detected_by": f"{len(dead_at)}/{n - 1}",
        "crash_dead_s": summary(delays),
        "virtual_s": round(sim.now, 3),
        "delivered_packets": sim.delivered,
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "member_entries": entries,
        "rss_at_convergence_mib": round(rss_converged / 2**20),
        "bytes_per_member_entry": round((rss_converged - rss_start) / entries),
    }


def _current_rss_bytes() -> int:
    """This process's resident set now (Linux /proc; 0 elsewhere)."""
    try:
        fields = pathlib.Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * resource.getpagesize()


def large_cluster(n: int = 5000) -> dict[str, Any]:
    """`large_cluster_run` in a process of its own, so its peak RSS is its own."""
    script = pathlib.Path(__file__).resolve()
    done = subprocess.run(
        [sys.executable, str(script), "--large", str(n)], capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        result: dict[str, Any] = {"nodes": n, "error": f"exit {done.returncode}"}
        result["stderr"] = done.stderr[-2000:]
    else:
        result = json.loads(lines[-1])
    dead = result.get("crash_dead_s", {})
    print(
        f"large cluster N={n}: converged at {result.get('converge_virtual_s')} s virtual, crash seen dead by "
        f"{result.get('crash_detected_by')} (median {dead.get('median')} s); {result.get('wall_s')} s wall, "
        f"{result.get('cpu_s')} s CPU, peak RSS {result.get('peak_rss_mib')} MiB, "
        f"{result.get('bytes_per_member_entry')} B per member entry"
    )
    return result


def run(directory: pathlib.Path, quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results["bootstrap"] = bootstrap((100, 300) if quick else (100, 1000, 2000))
    results["join_burst"] = join_burst(200, range(3) if quick else range(10))
    results["dissemination"] = dissemination(300 if quick else 1000)
    results["crash_detection"] = crash_detection(100, trials=3 if quick else 10)
    results["false_dead_under_loss"] = false_dead_under_loss(100, hours=0.1 if quick else 1.0)
    results["stall"] = stall(100, minutes=2 if quick else 10)
    results["simulator"] = simulator_speed(300 if quick else 2000)
    results["large_cluster"] = large_cluster(500 if quick else 5000)
    write_json("membership", results, directory)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--large", type=int, metavar="N", help="only the large cluster run, printed as JSON")
    args = parser.parse_args()
    if args.large:
        print(json.dumps(large_cluster_run(args.large)), flush=True)
    else:
        run(out_dir(), quick=args.quick)
