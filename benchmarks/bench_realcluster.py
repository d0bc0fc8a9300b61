"""Benchmark: a real cluster of N trio runtimes in ONE process (one trio run) on 127.0.0.1.

The procedure of the reference harness used for hashicorp/memberlist, LAN preset, each node
bound to 127.0.0.1 on its own port (port 0):
1. converge: nodes 1..N-1 join node 0 one after another; `converge_s` runs from the first
   join until every node sees N members alive;
2. steady state: after a 2 s settle, a 10 s window of process CPU (user+sys from
   resource.getrusage) per node per second, and UDP+TCP payload bytes sent (stream frames
   include their 4-byte length prefix) per node per second;
3. crash: the last node is closed without leaving (cancelled); the time until each other
   node reports it dead (MemberFailed), min / median / p90 / max;
4. memory: resident set size growth since before the nodes started, per node.
Each size runs twice, plaintext and encrypted (XChaCha20-Poly1305, one key, a label), so the
CPU and byte cost of encryption compare within one run.
Prints one JSON line per cluster size and writes ``out_dir/realcluster.json``;
``python benchmarks/bench_realcluster.py`` writes to ``benchmarks/results/``. Nothing here
asserts a figure; the memberlist targets are recorded next to the results for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import resource
import statistics
import sys
from collections import Counter
from typing import Any

import trio

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from swimnet.config import Config, format_address
from swimnet.membership.events import MemberFailed
from swimnet.runtime import Node, open_node
from swimnet.security import Keyring
from swimnet.wire.messages import State

SIZES = (10, 50, 100, 200)
SETTLE_S = 2.0
WINDOW_S = 10.0
CONVERGE_TIMEOUT_S = 300.0
DETECT_TIMEOUT_S = 180.0
TARGETS_AT_100 = {
    "steady_cpu_ms_per_node_s": 2 * 0.31,
    "bytes_per_node_s": 89,
    "crash_detect_median_s": 11.0,
    "note": "memberlist reference harness at N=100, LAN preset (CPU target is 2x memberlist)",
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_TRAFFIC = ("udp_bytes_sent", "stream_bytes_sent", "udp_packets_sent", "streams_opened")


def _traffic(nodes: list[Node]) -> dict[str, int]:
    """Sums over all nodes of the runtime's sent-traffic counters."""
    totals = dict.fromkeys(_TRAFFIC, 0)
    for node in nodes:
        stats = node.stats
        for key in _TRAFFIC:
            totals[key] += stats[key]
    return totals


def _alive_count(node: Node) -> int:
    return sum(1 for state in node.view().values() if state == State.ALIVE)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class _Member:
    """A node running in its own task, so it can be crashed (cancelled) on its own."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.node: Node | None = None

    async def run(self, config: Config, *, task_status: trio.TaskStatus[Node]) -> None:
        try:
            with self.scope:
                async with open_node(config) as node:
                    self.node = node
                    task_status.started(node)
                    await trio.sleep_forever()
        finally:
            self.done.set()


async def _measure(n: int, encrypted: bool = False) -> dict[str, Any]:
    rss_before = _rss_bytes()
    members = [_Member() for _ in range(n)]
    key = os.urandom(32)
    result: dict[str, Any] = {"benchmark": "realcluster", "nodes": n, "preset": "lan", "encrypted": encrypted}
    async with trio.open_nursery() as nursery:
        nodes: list[Node] = []
        for i, member in enumerate(members):
            security: dict[str, Any] = {"keyring": Keyring([key]), "label": "bench"} if encrypted else {}
            config = Config.lan(name=f"node-{i:03d}", bind="127.0.0.1:0", **security)
            nodes.append(await nursery.start(member.run, config))
        seed = format_address(nodes[0].address)

        # 1. convergence
        start = trio.current_time()
        for node in nodes[1:]:
            await node.join([seed])
        joined_s = trio.current_time() - start
        with trio.fail_after(CONVERGE_TIMEOUT_S):
            while not all(_alive_count(node) == n for node in nodes):
                await trio.sleep(0.05)
        result["converge_s"] = round(trio.current_time() - start, 3)
        result["joins_done_s"] = round(joined_s, 3)

        # 2. steady state
        await trio.sleep(SETTLE_S)
        cpu0, before, t0 = _cpu_s(), _traffic(nodes), trio.current_time()
        await trio.sleep(WINDOW_S)
        elapsed = trio.current_time() - t0
        cpu1, after = _cpu_s(), _traffic(nodes)
        rate = {key: (after[key] - before[key]) / n / elapsed for key in _TRAFFIC}
        result["steady_window_s"] = round(elapsed, 3)
        result["steady_cpu_ms_per_node_s"] = round(1000 * (cpu1 - cpu0) / n / elapsed, 4)
        result["steady_bytes_per_node_s"] = round(rate["udp_bytes_sent"] + rate["stream_bytes_sent"], 1)
        result["steady_udp_bytes_per_node_s"] = round(rate["udp_bytes_sent"], 1)
        result["steady_tcp_bytes_per_node_s"] = round(rate["stream_bytes_sent"], 1)
        result["steady_udp_packets_per_node_s"] = round(rate["udp_packets_sent"], 3)
        result["steady_streams_opened_per_node_s"] = round(rate["streams_opened"], 4)
        result["rss_mb_total"] = round(_rss_bytes() / 2**20, 1)
        result["rss_kb_per_node"] = round((_rss_bytes() - rss_before) / n / 1024, 1)

        # 3. crash of the last node, seen by every other node
        victim, observers = nodes[-1], nodes[:-1]
        detect: list[float] = []

        async def watch(node: Node, crashed: trio.Event, started: trio.Event) -> None:
            async with node.subscribe() as events:
                started.set()
                await crashed.wait()
                t_crash = trio.current_time()
                async for event in events:
                    if isinstance(event, MemberFailed) and event.member.name == victim.name:
                        detect.append(trio.current_time() - t_crash)
                        return

        crashed = trio.Event()
        with trio.move_on_after(DETECT_TIMEOUT_S):
            async with trio.open_nursery() as watchers:
                for node in observers:
                    started = trio.Event()
                    watchers.start_soon(watch, node, crashed, started)
                    await started.wait()
                members[-1].scope.cancel()
                await members[-1].done.wait()
                crashed.set()
        result["crash_detected_by"] = f"{len(detect)}/{len(observers)}"
        if detect:
            result["crash_detect_s"] = {
                "min": round(min(detect), 3),
                "median": round(statistics.median(detect), 3),
                "p90": round(_percentile(detect, 0.9), 3),
                "max": round(max(detect), 3),
            }
        totals: Counter[str] = Counter()
        for node in observers:
            totals.update(node.stats)
        result["drops"] = {
            k: v for k, v in sorted(totals.items()) if k.startswith(("drop_", "internal_error"))
        }
        result["streams_failed"] = {k: v for k, v in sorted(totals.items()) if k.startswith("stream_failed_")}
        nursery.cancel_scope.cancel()
    return result


def run(
    out_dir: pathlib.Path, sizes: tuple[int, ...] = SIZES, encryption: tuple[bool, ...] = (False, True)
) -> list[dict[str, Any]]:
    """Measure every cluster size, plaintext then encrypted (one trio run each), print JSON
    lines, write realcluster.json."""
    results: list[dict[str, Any]] = []
    for n in sizes:
        for encrypted in encryption:
            result = trio.run(_measure, n, encrypted)
            print(json.dumps(result, sort_keys=True), flush=True)
            results.append(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "realcluster",
        "procedure": __doc__.split("\n\n")[1].strip() if __doc__ else "",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "targets_at_100": TARGETS_AT_100,
        "results": results,
    }
    (out_dir / "realcluster.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--plaintext-only", action="store_true", help="skip the encrypted runs")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent / "results"
    )
    args = parser.parse_args()
    run(args.out, tuple(args.sizes), (False,) if args.plaintext_only else (False, True))


if __name__ == "__main__":
    main()
