"""The swimnet demo: a simulated 12-node cluster, narrated.

Runs the real protocol engines in the deterministic simulator (virtual time, one seed):
bootstrap through one seed, a crashed node detected, a network partition healed. Nothing
here touches the network. Run it with `nox -s demo` or `python -m examples.demo`.
"""

from __future__ import annotations

import argparse

from swimnet.config import Config
from swimnet.engine import EngineEvent
from swimnet.membership.events import MemberFailed, MemberJoined, MemberSuspected
from swimnet.sim import Simulation


def say(sim: Simulation, text: str) -> None:
    print(f"[t={sim.now:7.2f}s] {text}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--nodes", type=int, default=12)
    args = parser.parse_args(argv)

    sim = Simulation(seed=args.seed, config=Config.lan())
    names = sim.add_nodes(args.nodes)
    print(f"swimnet demo: {len(names)} simulated nodes, LAN timings, seed {args.seed}\n")

    # 1. bootstrap
    say(sim, f"every node joins through {names[0]} (one push-pull each)")
    sim.join_all(via=names[0])
    sim.run_until(sim.converged, timeout=60)
    say(sim, f"converged: all {len(names)} nodes see each other alive")
    print(f"           view of {names[3]}: {sorted(sim.view(names[3]).items())[:4]} ...\n")

    # 2. a crash
    victim = names[5]
    timeline: list[tuple[float, str, EngineEvent]] = []
    sim.on_event = lambda now, observer, event: timeline.append((now, observer, event))
    say(sim, f"{victim} crashes (no goodbye)")
    sim.crash(victim)
    observers = [n for n in names if n != victim]
    sim.run_until(lambda: all(sim.view(n)[victim] == "dead" for n in observers), timeout=120)
    suspected = next(t for t, _, e in timeline if isinstance(e, MemberSuspected) and e.member.name == victim)
    accuser = next(o for _, o, e in timeline if isinstance(e, MemberSuspected) and e.member.name == victim)
    failed = [t for t, _, e in timeline if isinstance(e, MemberFailed) and e.member.name == victim]
    print(f"           {accuser} probed it, got no ack (direct or indirect): suspect at t={suspected:.2f}s")
    print(
        f"           suspicion timed out; declared dead by all {len(failed)} others between "
        f"t={min(failed):.2f}s and t={max(failed):.2f}s"
    )
    say(sim, f"{victim} restarts with an empty state and a higher incarnation")
    sim.restart(victim)
    sim.run_until(sim.converged, timeout=60)
    say(sim, f"{victim} is alive again everywhere (incarnation {sim.node(victim).incarnation})\n")

    # 3. a partition
    left, right = names[: len(names) // 2], names[len(names) // 2 :]
    say(sim, f"network splits: {left[0]}..{left[-1]} | {right[0]}..{right[-1]}")
    sim.partition([left, right])
    sim.run_until(lambda: sim.view(left[0]).get(right[0], "dead") == "dead", timeout=120)
    say(sim, f"{left[0]} now sees {right[0]} as {sim.view(left[0]).get(right[0], 'forgotten')}")
    sim.run_for(60)
    say(sim, f"a minute later each side has reaped the other: {left[0]} knows {len(sim.view(left[0]))} nodes")
    timeline.clear()
    say(sim, "network heals; nobody is told, the rejoin timer finds the other side")
    sim.heal()
    healed = sim.run_until(sim.converged, timeout=300)
    rejoined = sum(1 for _, _, e in timeline if isinstance(e, MemberJoined))
    if healed:
        say(sim, f"re-merged: all {len(names)} nodes alive everywhere again ({rejoined} join events)")
    else:
        say(sim, "did NOT re-merge within 300 s (this is a bug: please report the seed)")
        raise SystemExit(f"the cluster did not re-merge (seed {args.seed})")
    sent = sum(s["packets_sent"] for s in sim.stats.values())
    print(f"\n{sent} packets simulated, every one encoded and decoded by the real codec.")


if __name__ == "__main__":
    main()
