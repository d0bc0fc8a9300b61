"""One seed drives the whole simulated run: same seed, bit-for-bit the same run."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from sim_helpers import digest, scripted_run

import swimnet
from swimnet.config import Config
from swimnet.sim import Constant, Simulation

HERE = Path(__file__).resolve().parent
REPO = Path(swimnet.__file__).resolve().parent.parent


def test_same_seed_same_run() -> None:
    first, second = scripted_run(7), scripted_run(7)
    for key in first:
        assert first[key] == second[key], f"{key} differs between two runs of Simulation(seed=7)"


def test_different_seeds_give_different_runs() -> None:
    assert len({digest(scripted_run(seed)) for seed in (1, 2, 3)}) == 3


def test_same_seed_same_run_across_processes_and_hash_seeds() -> None:
    """No hidden dependence on set/dict ordering of str hashes (PYTHONHASHSEED) or globals."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from sim_helpers import digest, scripted_run; print(digest(scripted_run(11)))"
    )
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", code, str(HERE)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        digests.add(out.stdout.strip())
    digests.add(digest(scripted_run(11)))
    assert len(digests) == 1, f"Simulation(seed=11) differs between processes: {digests}"


class _SameDelay:
    """A fixed delay the simulator cannot tell from any other model: its datagrams go through
    the event heap, not the FIFO lane of `Constant` delays (the reference order)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, src: str, dst: str, rng: random.Random) -> float:
        return self.seconds


def _traced_run(first: Any, then: Any) -> str:
    """Digest of every delivered datagram (time, receiver, sender, bytes), every event and
    every counter of a run with a crash, a stall, loss and a change of latency model."""
    sim = Simulation(seed=21, latency=first, loss=0.05)
    trace = hashlib.sha256()
    sim.tap = lambda now, receiver, src, data: trace.update(repr((now, receiver, src)).encode() + data)
    sim.on_event = lambda now, observer, event: trace.update(repr((now, observer, event)).encode())
    sim.add_nodes(30)
    sim.join_all("n0")
    sim.run_for(6.0)
    sim.crash("n7")
    sim.stall("n3", 2.0)
    sim.run_for(6.0)
    sim.latency = then  # shorter delays: later datagrams overtake those in flight
    sim.run_for(20.0)
    trace.update(repr(sorted((name, sorted(c.items())) for name, c in sim.stats.items())).encode())
    trace.update(repr((sim.now, sim.delivered, sim.dropped)).encode())
    return trace.hexdigest()


def test_fixed_delay_lane_keeps_the_order_of_the_heap() -> None:
    """Constant delays take the simulator's FIFO lane; the same delays given as an opaque
    model take the heap: the two runs are the same, datagram for datagram."""
    lane = _traced_run(Constant(0.004), Constant(0.0005))
    heap = _traced_run(_SameDelay(0.004), _SameDelay(0.0005))
    assert lane == heap, "Simulation(seed=21): the FIFO lane changed the order of events"


def _timers_run(sim_config: Config) -> str:
    """Digest of a run (every datagram, event and counter, and the sequence numbers spent) of
    LAN nodes, whatever `sim_config` says: it only sets which timers take the clock."""
    sim = Simulation(seed=22, config=sim_config, loss=0.05)
    trace = hashlib.sha256()
    sim.tap = lambda now, receiver, src, data: trace.update(repr((now, receiver, src)).encode() + data)
    sim.on_event = lambda now, observer, event: trace.update(repr((now, observer, event)).encode())
    names = [sim.add_node(config=Config.lan()) for _ in range(30)]
    sim.join_all(names[0])
    sim.run_for(8.0)
    sim.crash(names[7])
    sim.stall(names[3], 2.0)
    sim.run_for(20.0)
    trace.update(repr(sorted((name, sorted(c.items())) for name, c in sim.stats.items())).encode())
    trace.update(repr((sim.now, sim.delivered, sim.dropped, sim._seq)).encode())
    return trace.hexdigest()


def test_timers_in_the_clock_keep_the_order_of_the_heap() -> None:
    """Probe timeouts take the simulator's clock (a FIFO beside the heap) when the
    simulation's config says probes time out as the nodes' do; with a far shorter timeout
    there, every timer takes the heap: the two runs are the same, event for event."""
    clock = _timers_run(Config.lan())
    heap = _timers_run(Config.lan(probe_timeout=0.001))
    assert clock == heap, "Simulation(seed=22): the timer clock changed the order of events"
