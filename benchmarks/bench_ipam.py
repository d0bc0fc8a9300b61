"""IPAM benchmark in the simulator (virtual time; real engines, real codec, the agent's loop
from `benchmarks.ipam_sim`: debounced 50 ms refresh, records persisted then published).

Scenarios:
- two agents: 2 members allocate 500 endpoints each in one /22 (1021 usable addresses, so
  the network ends 98% full), both starting at the same instant, each a client issuing its
  next create as soon as the previous one is answered: zero duplicates expected; latency of
  each create (virtual seconds from issue to answer), p50 / p99 / max, time to finish,
  claims, withdrawals (contention), record writes and the largest record (bytes: it must fit
  a gossip packet, 1200 B, to spread in gossip time);
- eight agents: 8 members x 120 endpoints in a /22, the same way (more voters, more
  contention as the pool fills);
- partition: 2 members x 300 in a /22, each client pacing one create per 100 ms, the two
  cut apart after their first 50 for 20 s: creates go on from the blocks each holds (its
  spare: as many free addresses as it uses), then wait for the other side's votes until
  the heal (the latency tail is the partition); zero duplicates after.

The simulator runs the same engines the agents run, on a virtual LAN (0.2-2 ms links,
Config.lan: gossip every 200 ms), so those figures are protocol latencies, not CPU time.
Then the same first scenario with real agents (`bench_ipam_agents`: two daemons in this
process on loopback, 500 endpoints each in a /22, wall-clock latency of each create).

`python benchmarks/bench_ipam.py [--quick]` or `nox -s bench -- ipam`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.bench_ipam_agents import real_agents
from benchmarks.common import out_dir, percentile, summary, write_json
from benchmarks.ipam_sim import IpamCluster, Request
from swimnet.ipam import Record
from swimnet.sim import Simulation, Uniform

SUBNET = "10.1.0.0/22"
GATEWAY = "10.1.0.1"
GOSSIP_FIT = 1200


def _cluster(agents: int, seed: int) -> tuple[Simulation, IpamCluster]:
    sim = Simulation(seed=seed, latency=Uniform(0.0002, 0.002))
    names = sim.add_nodes(agents)
    sim.join_all(names[0])
    assert sim.run_until(sim.converged, 30.0), sim.describe()
    c = IpamCluster(sim, SUBNET, GATEWAY, timeout=120.0)
    for i, name in enumerate(names):
        c.start(name, bootstrap=i == 0)
    sim.run_for(5.0)
    return sim, c


def _clients(c: IpamCluster, per_agent: int, pace: float = 0.0) -> dict[str, int]:
    """One client per agent: each answered create issues the next one on the same agent,
    at once (back to back) or `pace` seconds later."""
    issued = {name: 0 for name in c.sim.names}

    def next_one(name: str) -> None:
        if issued[name] < per_agent:
            issued[name] += 1
            c.request(name)

    def done(r: Request) -> None:
        if pace:
            c.sim.at(c.sim.now + pace, lambda: next_one(r.node))
        else:
            next_one(r.node)

    c.on_done = done
    for name in c.sim.names:
        next_one(name)
    return issued


def _report(name: str, sim: Simulation, c: IpamCluster, start: float, wall: float) -> dict[str, Any]:
    answered = [r for r in c.requests if r.done is not None]
    latencies = [r.done - r.issued for r in answered if r.outcome == "granted"]  # type: ignore[operator]
    size = c.pool.size
    largest = 0
    blocks = {}
    for member, saved in c.persisted.items():
        if saved.record is not None:
            largest = max(largest, len(saved.record))
            record = Record.decode(saved.record, member, size)
            blocks[member] = sum(len(x.items) for x in record.claims if x.kind == 0)
    waited = [r for r in answered if r.outcome == "granted" and r.done != r.issued]
    result = {
        "scenario": name,
        "agents": len(sim.names),
        "requests": len(c.requests),
        "granted": sum(1 for r in c.requests if r.outcome == "granted"),
        "other_outcomes": sorted({r.outcome for r in c.requests} - {"granted"}),
        "duplicates": len(c.duplicates()),
        "latency_s": summary(latencies),
        "p50_s": round(percentile(latencies, 50), 4) if latencies else None,
        "p99_s": round(percentile(latencies, 99), 4) if latencies else None,
        "waited": len(waited),
        "finish_s": round(max(r.done for r in answered) - start, 3) if answered else None,  # type: ignore[type-var]
        "claims": c.notes.get("claimed", 0),
        "confirmed": c.notes.get("confirmed", 0),
        "withdrawn": c.notes.get("withdrew", 0),
        "record_writes": c.writes,
        "largest_record_bytes": largest,
        "record_fits_gossip": largest <= GOSSIP_FIT,
        "blocks_held": blocks,
        "wall_s": round(wall, 2),
        "seed": sim.seed,
    }
    print(
        f"{name}: {result['granted']}/{result['requests']} granted, duplicates {result['duplicates']}, "
        f"latency p50 {result['p50_s']} s p99 {result['p99_s']} s max {result['latency_s'].get('max')} s, "
        f"{result['waited']} waited, finished in {result['finish_s']} s virtual, claims {result['claims']} "
        f"(withdrawn {result['withdrawn']}), largest record {largest} B, {wall:.1f} s wall"
    )
    return result


def concurrent(agents: int, per_agent: int, seed: int = 1) -> dict[str, Any]:
    sim, c = _cluster(agents, seed)
    wall = time.perf_counter()
    start = sim.now
    _clients(c, per_agent)
    sim.run_until(lambda: sum(1 for r in c.requests if r.done is not None) >= agents * per_agent, 600.0)
    return _report(f"{agents} agents x {per_agent}", sim, c, start, time.perf_counter() - wall)


def partitioned(per_agent: int, pace: float = 0.1, heal_at: float = 20.0, seed: int = 1) -> dict[str, Any]:
    before = per_agent // 6
    sim, c = _cluster(2, seed)
    wall = time.perf_counter()
    start = sim.now
    _clients(c, per_agent, pace)

    def answered(name: str) -> int:
        return sum(1 for r in c.requests if r.node == name and r.done is not None)

    sim.run_until(lambda: all(answered(n) >= before for n in sim.names), 60.0)
    sim.partition([["n0"], ["n1"]])
    cut = sim.now
    sim.run_until(lambda: sim.now - cut >= heal_at, heal_at + 1)
    sim.heal()
    sim.run_until(lambda: sum(1 for r in c.requests if r.done is not None) >= 2 * per_agent, 600.0)
    name = f"2 agents x {per_agent} (one create per {pace} s), cut apart for {heal_at:.0f} s"
    result = _report(name, sim, c, start, time.perf_counter() - wall)
    result["served_while_cut"] = sum(
        1 for r in c.requests if r.outcome == "granted" and r.done is not None and 0 <= r.done - cut < heal_at
    )
    print(f"  served while cut apart: {result['served_while_cut']}")
    return result


def run(directory: pathlib.Path | None = None, quick: bool = False) -> list[dict[str, Any]]:
    per = 100 if quick else 500
    results = [
        concurrent(2, per),
        concurrent(8, per // 4 if quick else 120),
        partitioned(per // 2 if quick else 300),
        real_agents(per),
    ]
    write_json("ipam", results, directory or out_dir())
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    run(quick=parser.parse_args().quick)
