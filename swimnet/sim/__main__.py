"""`python -m swimnet.sim --nodes 1000 --seed 7`: bootstrap a simulated cluster, crash a node,
and print a readable summary of what happened and how long it took in virtual time."""

from __future__ import annotations

import argparse
import resource
import sys
import time

from swimnet.config import Config
from swimnet.membership.events import MemberFailed, MemberSuspected
from swimnet.sim.simulation import Simulation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swimnet.sim", description=__doc__)
    parser.add_argument("--nodes", type=int, default=100, help="cluster size (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the whole run (default 1)")
    parser.add_argument("--profile", choices=["lan", "wan", "local"], default="lan")
    parser.add_argument("--loss", type=float, default=0.0, help="datagram loss probability")
    parser.add_argument("--latency", type=float, default=0.0005, help="one-way delay in seconds")
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")

    config = getattr(Config, args.profile)()
    wall = time.perf_counter()
    sim = Simulation(seed=args.seed, config=config, latency=args.latency, loss=args.loss)
    names = sim.add_nodes(args.nodes)
    print(f"seed {args.seed}: {args.nodes} nodes, {args.profile} profile, loss {args.loss:.0%}")
    sim.join_all(via=names[0])
    ok = sim.run_until(sim.converged, timeout=120.0)
    print(f"  bootstrap: {'converged' if ok else 'NOT converged'} at t={sim.now:.2f}s (virtual)")

    victim = names[-1]
    first_suspect: list[float] = []
    dead_at: dict[str, float] = {}

    def record(now: float, observer: str, event: object) -> None:
        member = getattr(event, "member", None)
        if member is None or member.name != victim:
            return
        if isinstance(event, MemberSuspected) and not first_suspect:
            first_suspect.append(now)
        elif isinstance(event, MemberFailed):
            dead_at.setdefault(observer, now)

    sim.on_event = record
    crashed_at = sim.now
    sim.crash(victim)
    observers = len(names) - 1
    sim.run_until(lambda: len(dead_at) == observers, timeout=300.0)
    if first_suspect:
        print(f"  crash of {victim}: first suspicion after {first_suspect[0] - crashed_at:.2f}s")
    if dead_at:
        delays = sorted(t - crashed_at for t in dead_at.values())
        print(
            f"  {len(dead_at)}/{observers} nodes declared it dead: first {delays[0]:.2f}s, "
            f"median {delays[len(delays) // 2]:.2f}s, last {delays[-1]:.2f}s"
        )
    sent = sum(s["packets_sent"] for s in sim.stats.values())
    elapsed = time.perf_counter() - wall
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {sent} packets sent, {sim.delivered} delivered, {sim.dropped} dropped; "
        f"{elapsed:.1f}s wall ({sim.delivered / elapsed:,.0f} delivered packets/s), peak RSS {rss:.0f} MiB"
    )
    return 0 if ok and len(dead_at) == observers else 1


if __name__ == "__main__":
    sys.exit(main())
