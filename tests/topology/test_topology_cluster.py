"""Topology in the running protocol (simulator): coordinates learned from direct probes match
the true latencies, biased peer choice never breaks convergence, and an indirect-probe helper
is never the probe's target."""

from __future__ import annotations

import statistics

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimnet.config import Config
from swimnet.sim import Simulation, Zones
from swimnet.wire.codec import decode_packet
from swimnet.wire.messages import Address, IndirectPing


def _zoned(n: int, zones: int, seed: int, bias: float = 0.7) -> tuple[Simulation, dict[str, str]]:
    zone_of = {f"n{i}": f"z{i % zones}" for i in range(n)}
    sim = Simulation(
        seed=seed,
        config=Config.lan(topology_bias=bias),
        latency=Zones(zone_of, in_zone=0.0005, cross_zone=0.005, jitter=0.05),
    )
    sim.add_nodes(n)
    sim.join_all(via="n0")
    assert sim.run_until(sim.converged, timeout=60), sim.describe()
    return sim, zone_of


def test_coordinates_learn_a_lan_wan_split() -> None:
    sim, zone_of = _zoned(24, 2, seed=3)
    sim.run_for(300)  # ~12 direct probes of every member each
    errors = []
    for a in sim.names:
        for b in sim.names:
            if a == b:
                continue
            true = 0.001 if zone_of[a] == zone_of[b] else 0.010
            estimate = sim.node(a).rtt_estimate(b)
            assert estimate is not None, (a, b, sim.describe())
            errors.append(abs(estimate - true) / true)
    assert statistics.median(errors) < 0.25, (statistics.median(errors), sim.describe())
    # far peers look far, near peers look near, for everyone
    for a in sim.names:
        near = [sim.node(a).rtt_estimate(b) or 0 for b in sim.names if b != a and zone_of[b] == zone_of[a]]
        far = [sim.node(a).rtt_estimate(b) or 0 for b in sim.names if zone_of[b] != zone_of[a]]
        assert max(near) < min(far), (a, sim.describe())


def test_indirect_probe_helpers_are_never_the_target() -> None:
    sim, _ = _zoned(20, 2, seed=5)
    name_of: dict[Address, str] = {sim.address(n): n for n in sim.names}
    bad: list[tuple[str, str]] = []
    seen = [0]

    def tap(now: float, receiver: str, src: Address, data: bytes) -> None:
        for msg in decode_packet(data):
            if isinstance(msg, IndirectPing):
                seen[0] += 1
                if msg.target == receiver or name_of.get(msg.target_addr) == receiver:
                    bad.append((receiver, msg.target))

    sim.tap = tap
    sim.set_loss(0.3)  # many failed direct probes -> many indirect ones
    sim.run_for(120)
    assert seen[0] > 50, sim.describe()
    assert bad == [], sim.describe()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    bias=st.sampled_from([0.7, 1.0]),
    splits=st.lists(
        st.tuples(st.sampled_from(["zones", "halves"]), st.floats(5, 60)), min_size=1, max_size=3
    ),
)
def test_bias_never_breaks_convergence_across_zone_partitions(
    seed: int, bias: float, splits: list[tuple[str, float]]
) -> None:
    sim, zone_of = _zoned(15, 3, seed=seed, bias=bias)
    sim.run_for(30)
    for kind, duration in splits:
        if kind == "zones":  # every zone on its own
            groups = [[n for n in sim.names if zone_of[n] == z] for z in sorted(set(zone_of.values()))]
        else:  # one zone cut off from the two others
            groups = [
                [n for n in sim.names if zone_of[n] == "z0"],
                [n for n in sim.names if zone_of[n] != "z0"],
            ]
        sim.partition(groups)
        sim.run_for(duration)
        sim.heal()
        sim.run_for(5)
    assert sim.run_until(sim.converged, timeout=180), sim.describe()
