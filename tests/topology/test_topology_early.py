"""Topology-aware from the first minute (simulator): coordinates travel with membership, so
the bias works within a minute of a cold start, a joining node gossips near-first at once,
a liar cannot starve a zone, and failure detection across zones is untouched.

Zones: 0.3 ms round trip inside a zone, 40 ms across; one member changes its meta every
second so gossip flows. Every assertion names the seed (sim.describe()).
"""

from __future__ import annotations

import math
import random
import statistics

from swimnet.config import Config
from swimnet.membership.events import MemberEvent, MemberUpdated
from swimnet.sim import Simulation, Zones
from swimnet.tables import TableChange
from swimnet.topology import Coordinate
from swimnet.topology.codec import coordinate_to_bytes
from swimnet.wire.codec import encode_packet
from swimnet.wire.messages import State
from swimnet.wire.topology import CoordinateUpdate

ZONES = 3


def _cluster(n: int, seed: int, bias: float = 0.7) -> tuple[Simulation, dict[str, str]]:
    zone_of = {f"n{i}": f"z{i % ZONES}" for i in range(n)} | {f"j{i}": f"z{i % ZONES}" for i in range(3)}
    sim = Simulation(
        seed=seed,
        config=Config.lan(topology_bias=bias),
        latency=Zones(zone_of, in_zone=0.00015, cross_zone=0.020, jitter=0.1),
    )
    sim.add_nodes(n)
    sim.classify = lambda a, b: ("j_" if a[0] == "j" else "") + ("in" if zone_of[a] == zone_of[b] else "x")
    sim.join_all(via="n0")
    assert sim.run_until(sim.converged, timeout=60), sim.describe()
    return sim, zone_of


def _workload(sim: Simulation, seconds: int, seed: int) -> None:
    rng = random.Random(seed)
    names = [n for n in sim.names if n[0] == "n"]
    start = sim.now
    for i in range(seconds):
        source = rng.choice(names)
        sim.at(
            start + i, lambda s=source: sim.call(s, lambda e: e.set_meta(f"{sim.now:.1f}".encode(), sim.now))
        )


def _cross_share(sim: Simulation, seconds: float, prefix: str = "") -> float:
    sim.traffic.clear()
    sim.run_for(seconds)
    cross, near = sim.traffic[f"{prefix}x_packets"], sim.traffic[f"{prefix}in_packets"]
    return cross / max(1, cross + near)


def test_the_bias_works_within_a_minute_of_a_cold_start() -> None:
    shares = {}
    for bias in (0.0, 0.7):
        sim, _ = _cluster(60, seed=11, bias=bias)
        _workload(sim, 60, seed=11)
        sim.run_for(20)
        shares[bias] = _cross_share(sim, 40)  # 20 s .. 60 s after convergence
    assert shares[0.0] > 0.6, (shares, sim.describe())
    assert shares[0.7] < 0.6 * shares[0.0], (shares, sim.describe())


def test_a_joiner_inherits_coordinates_and_gossips_near_first_in_its_first_minute() -> None:
    sim, zone_of = _cluster(45, seed=12)
    _workload(sim, 200, seed=12)
    sim.run_for(120)
    sim.add_node("j1")  # zone z1; it joins through n0, in z0
    sim.join("j1", via="n0")
    sim.run_for(1.0)
    joiner = sim.engine("j1")
    known = [n for n in sim.names if n[0] == "n" and joiner.rtt_estimate(n) is not None]
    assert len(known) >= 40, (len(known), sim.describe())  # inherited in the join push-pull
    sim.run_for(14.0)
    near = [joiner.rtt_estimate(n) or 1.0 for n in sim.names if n[0] == "n" and zone_of[n] == "z1"]
    far = [joiner.rtt_estimate(n) or 0.0 for n in sim.names if n[0] == "n" and zone_of[n] != "z1"]
    assert statistics.median(near) < 0.010 < statistics.median(far), (near, far, sim.describe())
    share = _cross_share(sim, 45.0, prefix="j_")  # 15 s .. 60 s after joining
    assert share < 0.45, (share, sim.describe())  # uniform choice: about 2/3


def _disseminated(sim: Simulation, source: str, timeout: float) -> dict[str, float]:
    """`source` changes its meta: when each observer first saw it, seconds after (until all
    did or `timeout`)."""
    seen: dict[str, float] = {}

    def record(now: float, observer: str, event: MemberEvent | TableChange) -> None:
        if isinstance(event, MemberUpdated) and event.member.name == source:
            seen.setdefault(observer, now)

    sim.on_event = record
    start = sim.now
    sim.call(source, lambda e: e.set_meta(f"probe{start:.2f}".encode(), sim.now))
    sim.run_until(lambda: len(seen) >= len(sim.running()) - 1, timeout=timeout, step=0.05)
    sim.on_event = None
    return {observer: when - start for observer, when in seen.items()}


def test_a_far_node_claiming_to_be_near_everyone_starves_no_zone() -> None:
    # A starved zone hears updates late, or only from push-pulls (60 s here). Each zone's
    # nodes must hear each update within 2 s, but one node of a few dozen may miss one by
    # gossip: biased gossip toward one node can die out, and the push-pull catches it (a
    # property of biased gossip, not of the liar: seeds 13-22, 60 updates, all reached
    # everyone within 1 s but one, whose last node heard it after 12.5 s, seed 15; an
    # earlier tree, seed 13: 20 s). So 90% of each zone, not every node.
    sim, zone_of = _cluster(45, seed=15)
    sim.run_for(120)
    liar = "n0"
    coords = [sim.engine(n).coordinate for n in sim.names if n != liar]
    dims = len(coords[0].vec)
    centre = tuple(statistics.fmean(c.vec[d] for c in coords) for d in range(dims))
    lie = Coordinate(centre, 0.05, 0.0, 1e-5)
    reach = min(lie.raw_distance_to(c) + c.adjustment for c in coords)
    lie = Coordinate(centre, 0.05, -reach + 0.0003, 1e-5)  # "0.3 ms from everyone"
    forged = encode_packet([CoordinateUpdate(liar, 2**40, 2**40, coordinate_to_bytes(lie))])
    for name in sim.names:
        if name != liar:
            sim.inject(name, forged, sim.address(liar))
    fooled = {z: 0 for z in ("z0", "z1", "z2")}
    for name in sim.names:
        estimate = sim.engine(name).rtt_estimate(liar)
        if name != liar and estimate is not None and estimate < 0.010:
            fooled[zone_of[name]] += 1
    assert min(fooled.values()) >= 10, (fooled, sim.describe())  # the lie works in every zone
    sim.classify = lambda a, b: f"to_{zone_of[b]}" if zone_of[a] != zone_of[b] else "in"
    sim.traffic.clear()
    for source in ("n3", "n4", "n5", "n6", "n7", "n8"):  # updates from every zone
        seen = _disseminated(sim, source, timeout=20.0)
        for zone in ("z0", "z1", "z2"):
            observers = [n for n in sim.names if zone_of[n] == zone and n != source]
            quick = sum(1 for n in observers if seen.get(n, math.inf) < 2.0)
            assert quick >= 0.9 * len(observers), (source, zone, quick, len(observers), sim.describe())
    for zone in ("z0", "z1", "z2"):  # every zone keeps hearing from the others
        assert sim.traffic[f"to_{zone}_packets"] > 50, (dict(sim.traffic), sim.describe())


def test_a_crash_in_one_zone_is_seen_dead_in_every_zone() -> None:
    sim, _ = _cluster(45, seed=14)
    sim.run_for(60)
    sim.crash("n1")  # zone z1

    def everyone_knows() -> bool:
        return all(sim.engine(x).view().get("n1", State.DEAD) >= State.DEAD for x in sim.running())

    assert sim.run_until(everyone_knows, timeout=60, step=0.5), sim.describe()
