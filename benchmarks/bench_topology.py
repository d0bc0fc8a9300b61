"""Topology-aware peer selection in the simulator, from the first minute: N nodes in 3 zones.

Zones: 0.3 ms round trip inside a zone, 40 ms across (one-way delays of half that, +-10%
jitter). For each bias (0 = memberlist's uniform choice, then the default), the same seed:
- the cluster forms (everyone joins through n0) and converges; from then on one member
  changes its meta every second, so gossip flows;
- traffic: cross-zone and in-zone packets and bytes per second over the WINDOW seconds that
  end 30, 60, 120 and 300 s after convergence (`--marks`), and the cut the bias makes; with
  what coordinates took in that window, per node-second;
- coordinate bytes: what probe acks, coordinate gossip and push-pull sections carried for
  coordinates over the whole timeline, per node-second (section bytes before the stream
  compression: an upper bound);
- dissemination: time for one update to reach every node (5 updates, from each zone);
- failure detection across zones: a crashed node of z1 seen dead by every node; z2 cut off
  for 20 s, then the time for the cluster to converge again after the heal;
- joiners: 6 fresh nodes (2 a zone) join through n0, with the update workload running; the
  share of the packets they send in their first minute (from 10 s to 60 s after joining)
  that cross zones (probes and acks, a third of them, are never biased).

`python benchmarks/bench_topology.py [--quick] [--nodes 300 2000] [--marks 30 60 120 300]
[--bias 0.7]` or `nox -s bench -- topology` (300 and 2,000 nodes, every mark: long; the
2,000-node run takes most of an hour on two cores per bias).
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import time
from collections import Counter
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import out_dir, percentile, write_json
from swimnet.config import Config
from swimnet.membership.events import MemberEvent, MemberUpdated
from swimnet.sim import Simulation, Zones
from swimnet.tables import TableChange
from swimnet.wire.messages import State

IN_ZONE_RTT = 0.0003
CROSS_ZONE_RTT = 0.040
ZONES = 3
WINDOW = 10.0
MARKS = (30.0, 60.0, 120.0, 300.0)
JOINERS = 6
COORDINATE_BYTES = ("coordinate_ack_bytes", "coordinate_gossip_bytes", "coordinate_section_bytes")


class _Run:
    def __init__(self, n: int, bias: float, seed: int) -> None:
        self.n = n
        self.names = [f"n{i}" for i in range(n)]
        self.joiners = [f"j{i}" for i in range(JOINERS)]
        self.zone_of = {name: f"z{i % ZONES}" for i, name in enumerate(self.names + self.joiners)}
        model = Zones(self.zone_of, in_zone=IN_ZONE_RTT / 2, cross_zone=CROSS_ZONE_RTT / 2, jitter=0.1)
        self.sim = Simulation(seed=seed, config=Config.lan(topology_bias=bias), latency=model)
        self.sim.add_nodes(n)
        self.sim.classify = self._classify
        self.rng = random.Random(seed)

    def _classify(self, a: str, b: str) -> str:
        kind = "in_zone" if self.zone_of[a] == self.zone_of[b] else "cross_zone"
        return f"joiner_{kind}" if a[0] == "j" else kind

    def converge(self) -> float:
        sim = self.sim
        sim.join_all(via=self.names[0])
        if not sim.run_until(sim.converged, timeout=300.0, step=0.5):
            raise RuntimeError(f"{sim.describe()}: did not converge")
        return sim.now

    def workload(self, start: float, seconds: float) -> None:
        sim = self.sim
        running = set(sim.running())
        names = [name for name in self.names if name in running]
        for i in range(int(seconds) + 1):
            source = names[self.rng.randrange(len(names))]
            sim.at(
                start + i,
                lambda s=source: sim.call(s, lambda e: e.set_meta(f"w{sim.now:.2f}".encode(), sim.now)),
            )

    def window(self, seconds: float) -> dict[str, float]:
        """Traffic per second over the next `seconds`, and what coordinates took of it (per
        node-second: `coordinate_*`)."""
        self.sim.traffic.clear()
        before = self.coordinate_bytes()
        self.sim.run_for(seconds)
        spent = self.coordinate_bytes() - before
        out = {k: round(v / seconds, 1) for k, v in sorted(self.sim.traffic.items())}
        running = len(self.sim.running())
        for key in COORDINATE_BYTES:
            out[key] = round(spent[key] / (running * seconds), 1)
        return out

    def coordinate_bytes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for name in self.sim.running():
            stats = self.sim.engine(name).stats
            for key in COORDINATE_BYTES:
                total[key] += stats[key]
        return total

    def disseminate(self, source: str) -> float:
        sim, n = self.sim, len(self.sim.running())
        seen: dict[str, float] = {}

        def record(now: float, observer: str, event: MemberEvent | TableChange) -> None:
            if isinstance(event, MemberUpdated) and event.member.name == source:
                seen.setdefault(observer, now)

        sim.on_event = record
        start = sim.now
        sim.call(source, lambda engine: engine.set_meta(f"t{start:.3f}".encode(), sim.now))
        sim.run_until(lambda: len(seen) >= n - 1, timeout=30.0, step=0.01)
        sim.on_event = None
        return max(seen.values()) - start if len(seen) >= n - 1 else float("inf")

    def crash_detected(self, victim: str, timeout: float = 120.0) -> float:
        sim = self.sim
        sim.crash(victim)
        start = sim.now

        def everyone_knows() -> bool:
            return all(sim.engine(x).view().get(victim, State.DEAD) >= State.DEAD for x in sim.running())

        ok = sim.run_until(everyone_knows, timeout=timeout, step=0.25)
        return sim.now - start if ok else float("inf")

    def partition_heals(self, zone: str, seconds: float, timeout: float = 240.0) -> float:
        sim = self.sim
        sim.partition([[x for x in sim.running() if self.zone_of[x] == zone]])
        sim.run_for(seconds)
        sim.heal()
        start = sim.now
        ok = sim.run_until(sim.converged, timeout=timeout, step=0.5)
        return sim.now - start if ok else float("inf")

    def joiners_cross_share(self) -> float:
        sim = self.sim
        self.workload(sim.now, 60.0)  # gossip flows while they find their place
        for name in self.joiners:
            sim.add_node(name)
            sim.join(name, via=self.names[0])
        sim.run_for(10.0)
        traffic = self.window(50.0)
        cross, near = (
            traffic.get("joiner_cross_zone_packets", 0.0),
            traffic.get("joiner_in_zone_packets", 0.0),
        )
        return round(cross / max(1.0, cross + near), 3)


def _share(traffic: dict[str, float]) -> float:
    cross, near = traffic.get("cross_zone_packets", 0.0), traffic.get("in_zone_packets", 0.0)
    return round(cross / max(1.0, cross + near), 3)


def measure(bias: float, n: int, seed: int, marks: tuple[float, ...], extras: bool = True) -> dict[str, Any]:
    wall = time.monotonic()
    run = _Run(n, bias, seed)
    converged = run.converge()
    sim = run.sim
    run.workload(sim.now, max(marks))
    before = run.coordinate_bytes()
    at_mark: dict[str, Any] = {}
    for mark in marks:
        sim.run_for(max(0.0, converged + mark - WINDOW - sim.now))
        traffic = run.window(WINDOW)
        at_mark[f"{mark:g}"] = {"per_second": traffic, "cross_zone_share_of_packets": _share(traffic)}
        print(f"  bias {bias} n {n}: +{mark:g} s ({time.monotonic() - wall:.0f} s): {traffic}")
    elapsed = sim.now - converged
    spent = run.coordinate_bytes() - before
    coordinate_bytes = {key: round(spent[key] / (n * elapsed), 1) for key in COORDINATE_BYTES}
    coordinate_bytes["total"] = round(sum(spent.values()) / (n * elapsed), 1)
    if not extras:
        return {
            "bias": bias,
            "nodes": n,
            "seed": seed,
            "marks": at_mark,
            "coordinate_bytes_per_node_second": coordinate_bytes,
        }
    sim.run_for(10.0)
    spread = [run.disseminate(run.names[(i * 37 + 1) % n]) for i in range(5)]
    crash = run.crash_detected(run.names[1])  # z1
    heal = run.partition_heals("z2", 20.0)
    joiners = run.joiners_cross_share()
    result = {
        "bias": bias,
        "nodes": n,
        "zones": ZONES,
        "seed": seed,
        "converged_at_s": round(converged, 2),
        "marks": at_mark,
        "coordinate_bytes_per_node_second": coordinate_bytes,
        "update_to_all_s": [round(s, 3) for s in spread],
        "update_to_all_median_s": round(percentile(spread, 50), 3),
        "crash_seen_dead_everywhere_s": round(crash, 2),
        "zone_partition_heal_s": round(heal, 2),
        "joiners_cross_zone_share_first_minute": joiners,
        "wall_s": round(time.monotonic() - wall, 1),
    }
    print(
        f"bias {bias} n {n}: coordinates add {coordinate_bytes} B/node-s; update to all: median "
        f"{result['update_to_all_median_s']} s; crash seen dead everywhere in {crash:.1f} s; zone partition "
        f"healed {heal:.1f} s after the heal; joiners' cross-zone share {joiners}"
    )
    return result


def compare(base: dict[str, Any], biased: dict[str, Any]) -> dict[str, Any]:
    """The cut in cross-zone packets and bytes at each mark, and the joiners' cut."""
    cut: dict[str, Any] = {}
    for mark, row in biased["marks"].items():
        b, u = row["per_second"], base["marks"][mark]["per_second"]
        cut[mark] = {
            key: round(1 - b.get(key, 0.0) / u[key], 3)
            for key in ("cross_zone_packets", "cross_zone_bytes", "cross_zone_stream_bytes")
            if u.get(key)
        }
    joiners_base = base["joiners_cross_zone_share_first_minute"]
    return {
        "cross_zone_cut": cut,
        "joiners_cross_zone_cut": round(1 - biased["joiners_cross_zone_share_first_minute"] / joiners_base, 3)
        if joiners_base
        else None,
        "update_to_all_median_s": {
            "uniform": base["update_to_all_median_s"],
            "biased": biased["update_to_all_median_s"],
        },
    }


def run(
    directory: pathlib.Path,
    quick: bool = False,
    sizes: tuple[int, ...] = (300, 2000),
    marks: tuple[float, ...] = MARKS,
    biases: tuple[float, ...] | None = None,
    seed: int = 21,
    extras: bool = True,
) -> dict[str, Any]:
    if quick:
        sizes, marks = (90,), (30.0, 60.0)
    default_bias = Config.lan().topology_bias
    chosen = biases if biases is not None else (0.0, default_bias)
    result: dict[str, Any] = {}
    for n in sizes:
        rows = {bias: measure(bias, n, seed, marks, extras) for bias in chosen}
        entry: dict[str, Any] = {"runs": list(rows.values())}
        if 0.0 in rows and default_bias in rows and extras:
            entry["comparison"] = compare(rows[0.0], rows[default_bias])
            print(f"n {n}: cross-zone cut with bias {default_bias}: {entry['comparison']}")
        result[str(n)] = entry
    name = (
        "topology"
        if biases is None and not quick
        else f"topology_{'_'.join(map(str, sizes))}_{'_'.join(map(str, chosen))}"
    )
    write_json(name, result, directory)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--nodes", type=int, nargs="+", default=[300, 2000])
    parser.add_argument("--marks", type=float, nargs="+", default=list(MARKS))
    parser.add_argument(
        "--bias", type=float, nargs="+", default=None, help="biases to run (default: 0 and the default)"
    )
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--no-extras", action="store_true", help="traffic at the marks only")
    args = parser.parse_args()
    run(
        out_dir(),
        quick=args.quick,
        sizes=tuple(args.nodes),
        marks=tuple(args.marks),
        biases=None if args.bias is None else tuple(args.bias),
        seed=args.seed,
        extras=not args.no_extras,
    )
