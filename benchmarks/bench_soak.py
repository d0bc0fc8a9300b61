"""Soak: a simulated cluster under every fault at once for a long virtual time, then checked.

Scenario (one seed drives it all): N nodes join one network each of two, then for `duration`
virtual seconds, at random moments: crashes and restarts (a restart is a new process with
empty state), partitions into two groups and heals, stalls of a few seconds, table writes and
deletes by running members, all under `loss` datagram loss. At the end every fault stops
at once (the last fault), and after two push-pull periods the checker (outside the system
under test) requires:
- no live node dead: every running node sees every running node alive;
- no acknowledged write lost: every key whose last operation was a put by a node that is
  still in the same life holds that value on every running member of the network;
- no deleted entry resurrected: a key whose last operation was a delete is absent everywhere;
- all views equal: membership converged and every network's tables equal on its members.

Keys are owned by their writer (`<node>-<i>`), so each key's expected state is its owner's
last operation in its current life (a restart voids the previous life's writes).

`python benchmarks/bench_soak.py [--nodes 200 --minutes 60]` or `nox -s bench -- soak`;
tests/sim/test_sim_soak.py runs a small one.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import out_dir, write_json
from swimnet.config import Config
from swimnet.membership.formulas import push_pull_scale
from swimnet.sim import Simulation, Uniform

NETS = ("blue", "red")
TABLE = "t"
KEYS_PER_NODE = 4


class Soak:
    """The scenario and its model (what each key must hold at the end)."""

    def __init__(self, nodes: int, seed: int, loss: float) -> None:
        self.rng = random.Random(seed)
        self.sim = Simulation(seed=seed, config=Config.lan(), latency=Uniform(0.0002, 0.002))
        self.names = self.sim.add_nodes(nodes)
        self.loss = loss
        self.net_of = {n: NETS[i % len(NETS)] for i, n in enumerate(self.names)}
        self.expected: dict[tuple[str, str], bytes | None] = {}
        """(owner, key) -> last value its current life wrote (None: deleted)."""
        self.counts = {"crashes": 0, "restarts": 0, "partitions": 0, "stalls": 0, "writes": 0, "deletes": 0}
        self.down: set[str] = set()

    def why(self, text: str) -> str:
        return f"{text} -- replay with {self.sim.describe()}"

    def start(self) -> None:
        sim = self.sim
        sim.join_all(via=self.names[0])
        if not sim.run_until(sim.converged, timeout=120.0, step=0.25):
            raise AssertionError(self.why("the cluster did not form"))
        for name in self.names:
            sim.node(name).join_network(self.net_of[name])
        sim.run_for(5.0)
        sim.set_loss(self.loss)

    def chaos(self, duration: float) -> None:
        sim, rng = self.sim, self.rng
        end = sim.now + duration
        partitioned_until = 0.0
        while sim.now < end:
            sim.run_for(min(rng.expovariate(1 / 2.0), end - sim.now))
            running = [n for n in self.names if n not in self.down]
            roll = rng.random()
            if roll < 0.55 and running:
                self._write(rng.choice(running))
            elif roll < 0.65 and len(self.down) < max(1, len(self.names) // 10):
                victim = rng.choice(running)
                sim.crash(victim)
                self.down.add(victim)
                self._void(victim)
                self.counts["crashes"] += 1
            elif roll < 0.75 and self.down:
                back = rng.choice(sorted(self.down))
                self.down.discard(back)
                via = [n for n in self.names if n not in self.down and n != back]
                sim.restart(back, join_via=rng.choice(via))
                sim.node(back).join_network(self.net_of[back])
                self.counts["restarts"] += 1
            elif roll < 0.8 and sim.now >= partitioned_until:
                cut = rng.randrange(1, len(self.names))
                shuffled = rng.sample(self.names, len(self.names))
                sim.partition([shuffled[:cut]])
                heal_at = sim.now + rng.uniform(5.0, 60.0)
                partitioned_until = heal_at
                sim.at(heal_at, sim.heal)
                self.counts["partitions"] += 1
            elif roll < 0.9 and running:
                sim.stall(rng.choice(running), rng.uniform(1.0, 6.0))
                self.counts["stalls"] += 1

    def _write(self, owner: str) -> None:
        key = f"{owner}-{self.rng.randrange(KEYS_PER_NODE)}"
        table = self.sim.node(owner).table(self.net_of[owner], TABLE)
        if (owner, key) in self.expected and self.rng.random() < 0.3:
            table.delete(key)
            self.expected[(owner, key)] = None
            self.counts["deletes"] += 1
        else:
            value = b"%d" % self.rng.randrange(1 << 30)
            table.put(key, value)
            self.expected[(owner, key)] = value
            self.counts["writes"] += 1

    def _void(self, name: str) -> None:
        for owner, key in [k for k in self.expected if k[0] == name]:
            del self.expected[(owner, key)]

    def settle(self) -> float:
        """Stop every fault; run two push-pull periods; return that quiet time."""
        sim = self.sim
        sim.heal()
        sim.set_loss(0.0)
        for name in sorted(self.down):  # everyone comes back (a new life each)
            via = [n for n in self.names if n not in self.down]
            sim.restart(name, join_via=via[0])
            sim.node(name).join_network(self.net_of[name])
        self.down.clear()
        quiet = 2 * push_pull_scale(sim.config.push_pull_interval, len(self.names))
        sim.run_for(quiet)
        return quiet

    def check(self) -> list[str]:
        sim = self.sim
        problems: list[str] = []
        for observer in self.names:
            view = sim.view(observer)
            dead = sorted(n for n in self.names if view.get(n) != "alive")
            if dead:
                problems.append(f"{observer} does not see alive: {dead[:5]}")
        for (owner, key), value in sorted(self.expected.items()):
            net = self.net_of[owner]
            for member in (n for n in self.names if self.net_of[n] == net):
                got = sim.node(member).table(net, TABLE).get(key)
                if got != value:
                    what = "deleted entry resurrected" if value is None else "acknowledged write lost"
                    problems.append(f"{what}: {key} on {member}: {got!r}, expected {value!r}")
        if not sim.converged():
            problems.append("membership views differ")
        for net in NETS:
            if not sim.tables_converged(net):
                problems.append(f"tables of {net} differ between members")
        return problems


def soak(nodes: int, duration: float, seed: int = 1, loss: float = 0.2) -> dict[str, Any]:
    wall = time.perf_counter()
    scenario = Soak(nodes, seed, loss)
    scenario.start()
    scenario.chaos(duration)
    quiet = scenario.settle()
    problems = scenario.check()
    return {
        "nodes": nodes,
        "virtual_s": round(duration, 1),
        "loss": loss,
        "seed": seed,
        "faults": scenario.counts,
        "settle_virtual_s": quiet,
        "problems": problems[:20],
        "problem_count": len(problems),
        "delivered_packets": scenario.sim.delivered,
        "wall_s": round(time.perf_counter() - wall, 1),
        "replay": scenario.sim.describe(),
    }


def run(directory: pathlib.Path, nodes: int = 200, minutes: float = 60.0, seed: int = 1) -> dict[str, Any]:
    result = soak(nodes, minutes * 60.0, seed)
    print(
        f"soak N={nodes}, {minutes:.0f} virtual min, 20% loss, faults {result['faults']}: "
        f"{result['problem_count']} problems ({result['wall_s']} s wall, {result['replay']})"
    )
    for problem in result["problems"]:
        print(f"  {problem}")
    write_json("soak", result, directory)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    run(out_dir(), args.nodes, args.minutes, args.seed)


if __name__ == "__main__":
    main()
