"""Topology-aware peer selection in the simulator: 300 nodes in 3 zones.

Zones: 0.2 ms round trip inside a zone, 30 ms across (one-way delays of half that, +-10%
jitter). For each bias (0 = memberlist's uniform choice, then the default), in the same run:
- coordinates settle for 1.2 x N virtual s (every node has probed every other about once:
  a node learns a peer's coordinate from its direct probe acks);
- traffic window of 60 virtual s with an update workload (one member changes its meta
  every second, so gossip flows): cross-zone and in-zone packets and bytes per second;
- dissemination: time for one update to reach every node (5 updates, from each zone);
- the median relative error of coordinate RTT estimates against the true RTTs.

`python benchmarks/bench_topology.py [--quick]` or `nox -s bench -- topology`.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import out_dir, percentile, write_json
from swimnet.config import Config
from swimnet.membership.events import MemberEvent, MemberUpdated
from swimnet.sim import Simulation, Zones
from swimnet.tables import TableChange

IN_ZONE_RTT = 0.0002
CROSS_ZONE_RTT = 0.030


def _build(n: int, zones: int, bias: float, seed: int) -> tuple[Simulation, list[str], dict[str, str]]:
    names = [f"n{i}" for i in range(n)]
    zone_of = {name: f"z{i % zones}" for i, name in enumerate(names)}
    model = Zones(zone_of, in_zone=IN_ZONE_RTT / 2, cross_zone=CROSS_ZONE_RTT / 2, jitter=0.1)
    sim = Simulation(seed=seed, config=Config.lan(topology_bias=bias), latency=model)
    sim.add_nodes(n)
    sim.classify = lambda a, b: "in_zone" if zone_of[a] == zone_of[b] else "cross_zone"
    sim.join_all(via=names[0])
    if not sim.run_until(sim.converged, timeout=120.0, step=0.1):
        raise RuntimeError(f"{sim.describe()}: did not converge")
    return sim, names, zone_of


def _disseminate(sim: Simulation, source: str, n: int) -> float:
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


def _coordinate_error(
    sim: Simulation, names: list[str], zone_of: dict[str, str], rng: random.Random
) -> float:
    errors = []
    for _ in range(2000):
        a, b = rng.sample(names, 2)
        true = IN_ZONE_RTT if zone_of[a] == zone_of[b] else CROSS_ZONE_RTT
        estimate = sim.node(a).coordinate.distance_to(sim.node(b).coordinate)
        errors.append(abs(estimate - true) / true)
    return percentile(errors, 50)


def measure(bias: float, n: int, zones: int, seed: int, window: float) -> dict[str, Any]:
    sim, names, zone_of = _build(n, zones, bias, seed)
    sim.run_for(1.2 * n)
    rng = random.Random(seed)
    # traffic window with an update workload
    start = sim.now
    for i in range(int(window)):
        source = names[rng.randrange(n)]
        sim.at(
            start + i, lambda s=source: sim.call(s, lambda e: e.set_meta(f"w{sim.now:.2f}".encode(), sim.now))
        )
    sim.traffic.clear()
    sim.run_for(window)
    traffic = {k: round(v / window, 1) for k, v in sorted(sim.traffic.items())}
    sim.run_for(30.0)
    spread = [_disseminate(sim, names[(i * 37) % n], n) for i in range(5)]
    result = {
        "bias": bias,
        "nodes": n,
        "zones": zones,
        "per_second": traffic,
        "cross_zone_share_of_packets": round(
            traffic.get("cross_zone_packets", 0)
            / max(1.0, traffic.get("cross_zone_packets", 0) + traffic.get("in_zone_packets", 0)),
            3,
        ),
        "update_to_all_s": [round(s, 3) for s in spread],
        "update_to_all_median_s": round(percentile(spread, 50), 3),
        "coordinate_median_relative_error": round(_coordinate_error(sim, names, zone_of, rng), 4),
    }
    print(
        f"bias {bias}: cross-zone {traffic.get('cross_zone_packets', 0)} pkt/s "
        f"{traffic.get('cross_zone_bytes', 0)} B/s, in-zone {traffic.get('in_zone_packets', 0)} pkt/s; "
        f"update to all: median {result['update_to_all_median_s']} s; "
        f"coordinate error median {result['coordinate_median_relative_error']:.1%}"
    )
    return result


def run(directory: pathlib.Path, quick: bool = False) -> dict[str, Any]:
    n = 90 if quick else 300
    default_bias = Config.lan().topology_bias
    rows = [measure(b, n, 3, seed=21, window=20.0 if quick else 60.0) for b in (0.0, default_bias)]
    base, biased = rows
    reduction = {
        key: round(1 - biased["per_second"].get(key, 0) / base["per_second"][key], 3)
        for key in ("cross_zone_packets", "cross_zone_bytes", "cross_zone_stream_bytes")
        if base["per_second"].get(key)
    }
    result = {"runs": rows, "cross_zone_reduction": reduction}
    print(f"cross-zone reduction with bias {default_bias}: {reduction}")
    write_json("topology", result, directory)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(out_dir(), quick=args.quick)
