"""Embedded DNS: queries per second and latency from one container namespace, memory per names.

Measures (a view of N names: N endpoints ep0..epN-1 on one network, and a dnsrr service per
10 of them):
- the decision alone, in-process: `handle()` on pre-encoded queries (fast path and the
  dnspython path), queries/s;
- the server: a `ResolverService` inside a namespace of its own, a load generator process
  (benchmarks/dns_load.py) inside the same namespace: replies/s with W queries outstanding
  (target >= 10,000/s), and p50/p99 latency at 1,000 queries/s (target p99 <= 2 ms);
- memory per 10,000 names: the view alone (from decoded records), and records + view as the
  `NamesIndex` holds them (tracemalloc);
- what a table change costs the index (decode + in-place update; visible at the next
  query), and a full build of the network for comparison.

Needs root and network namespaces for the server part (skipped otherwise); the namespace is
named bdns<pid>x<random> and removed. `python benchmarks/bench_dns.py [--quick]` or
`nox -s bench -- dns`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import pathlib
import random
import secrets
import sys
import time
import tracemalloc
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import dns.message
import trio
from pyroute2 import netns as pr_netns

from benchmarks.common import out_dir, percentile, write_json
from swimnet.dns import DnsMetrics, NamesIndex, ResolverConfig, handle
from swimnet.dns.exchange import slow_path
from swimnet.dns.names import EndpointRow, NetworkRecords, ServiceRow
from swimnet.dns.server import open_resolver
from swimnet.dns.upstream import Upstreams
from swimnet.overlay.model import PEERS_TABLE, EndpointRecord, ServiceRecord, mac_from_ip
from swimnet.tables.changes import ChangeKind, TableChange

ROOT = pathlib.Path(__file__).resolve().parent.parent
NETWORK = "big"
TARGET_QPS = 10_000
TARGET_P99_MS = 2.0


def records(n: int) -> NetworkRecords:
    eps = []
    for i in range(n):
        ip = f"10.{1 + i // 60000}.{(i // 240) % 250}.{1 + i % 240}"
        rec = EndpointRecord(name=f"ep{i}", ip=f"{ip}/8", mac=mac_from_ip(ip), vtep="192.0.2.11")
        eps.append(EndpointRow(f"id{i}", rec))
    services = [
        ServiceRow(
            ServiceRecord(f"svc{j}", None, "dnsrr", backends=tuple(f"id{i}" for i in range(j, j + 10)))
        )
        for j in range(0, n - 9, 10)
    ]
    return NetworkRecords(NETWORK, "10.0.0.0/8", tuple(eps), tuple(services))


def memory(n: int) -> dict[str, float]:
    gc.collect()
    rows = records(n)
    tracemalloc.start()
    index = NamesIndex()
    index.set_network(rows)
    view = index.view()
    view_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index, view
    gc.collect()
    tracemalloc.start()
    index = NamesIndex()
    index.set_network(records(n))
    index.view()
    total = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    names = index.view().name_count()
    per10k = 10_000 / names
    return {
        "names": names,
        "view_bytes_per_10k_names": round(view_bytes * per10k),
        "records_and_view_bytes_per_10k_names": round(total * per10k),
    }


def change_cost(n: int, count: int = 2000) -> dict[str, float]:
    """Microseconds per table change applied to an index of n names (decode included)."""
    index = NamesIndex()
    index.set_network(records(n))
    changes = []
    for i in range(count):
        ip = f"10.200.{i // 200}.{1 + i % 200}"
        rec = EndpointRecord(name=f"ep{i}", ip=f"{ip}/8", mac=mac_from_ip(ip), vtep="192.0.2.12")
        changes.append(TableChange(ChangeKind.UPDATED, NETWORK, PEERS_TABLE, f"id{i}", rec.encode(), "h2"))
    start = time.perf_counter()
    for change in changes:
        index.apply(change)
    moved = (time.perf_counter() - start) / count * 1e6
    deletes = [TableChange(ChangeKind.DELETED, c.network, c.table, c.key, c.value, c.owner) for c in changes]
    start = time.perf_counter()
    for change in deletes:
        index.apply(change)
    removed = (time.perf_counter() - start) / count * 1e6
    rows = records(n)
    start = time.perf_counter()
    NamesIndex().set_network(rows)
    build = time.perf_counter() - start
    return {
        "endpoint_moved_us": round(moved, 1),
        "endpoint_removed_us": round(removed, 1),
        "full_build_s": round(build, 3),
    }


def decision_rate(n: int, count: int) -> dict[str, float]:
    index = NamesIndex()
    index.set_network(records(n))
    view = index.view()
    rng = random.Random(1)
    out: dict[str, float] = {}
    for label, prefix, step in (("endpoint", "ep", 1), ("dnsrr10", "svc", 10)):
        wires = [
            dns.message.make_query(f"{prefix}{rng.randrange(n // step) * step}.", "A").to_wire()
            for _ in range(1000)
        ]
        start = time.perf_counter()
        for i in range(count):
            handle(wires[i % 1000], view, (NETWORK,), rng)
        out[f"fast_path_{label}_qps"] = round(count / (time.perf_counter() - start))
        start = time.perf_counter()
        slow = count // 10
        for i in range(slow):
            slow_path(wires[i % 1000], view, (NETWORK,), rng, False)
        out[f"dnspython_path_{label}_qps"] = round(slow / (time.perf_counter() - start))
    return out


def probe() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it creates a network namespace)"
    return None


async def _load(ns: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = await trio.run_process(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "benchmarks.dns_load", *args],
        capture_stdout=True,
        capture_stderr=True,
        cwd=str(ROOT),
        env=env,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def server(n: int, seconds: float) -> dict[str, Any]:
    index = NamesIndex()
    index.set_network(records(n))
    metrics = DnsMetrics()
    ns = f"bdns{os.getpid()}x{secrets.token_hex(3)}"
    pr_netns.create(ns)
    try:
        async with open_resolver(
            ns,
            index.view,
            lambda: (NETWORK,),
            upstreams=Upstreams.fixed([]),
            metrics=metrics,
            config=ResolverConfig(netns_etc=None),
        ):
            flood = {}
            for window in (1, 8, 64):
                got = await _load(
                    ns, "flood", "--names", str(n), "--seconds", str(seconds), "--window", str(window)
                )
                flood[f"window_{window}"] = {
                    k: round(v, 3) if isinstance(v, float) else v for k, v in got.items()
                }
            paced = await _load(
                ns, "paced", "--names", str(n), "--seconds", str(max(seconds, 3.0)), "--rate", "1000"
            )
    finally:
        with contextlib.suppress(OSError):
            pr_netns.remove(ns)
    lat = [x * 1000 for x in paced["latencies"]]
    best = max(v["qps"] for v in flood.values())
    return {
        "names": index.view().name_count(),
        "flood": flood,
        "best_qps": round(best),
        "qps_target_met": best >= TARGET_QPS,
        "paced_1000_per_s": {
            "sent": paced["sent"],
            "received": paced["received"],
            "p50_ms": round(percentile(lat, 50), 3) if lat else None,
            "p99_ms": round(percentile(lat, 99), 3) if lat else None,
            "max_ms": round(max(lat), 3) if lat else None,
            "p99_target_met": bool(lat) and percentile(lat, 99) <= TARGET_P99_MS,
        },
        "server_counters": metrics.flat(),
    }


def run(out: pathlib.Path, n: int = 10_000, seconds: float = 3.0, count: int = 50_000) -> dict[str, Any]:
    results: dict[str, Any] = {
        "memory": memory(n),
        "table_change": change_cost(n),
        "decision": decision_rate(n, count),
    }
    reason = probe()
    results["server"] = {"skipped": reason} if reason else trio.run(server, n, seconds)
    write_json("dns", results, out)
    _summary(results)
    return results


def _summary(results: dict[str, Any]) -> None:
    mem = results["memory"]
    print(
        f"memory per 10k names: view {mem['view_bytes_per_10k_names'] / 1e6:.1f} MB, "
        f"records+view {mem['records_and_view_bytes_per_10k_names'] / 1e6:.1f} MB"
    )
    print("table change:", results["table_change"])
    print("decision:", results["decision"])
    srv = results["server"]
    if "skipped" in srv:
        print("server skipped:", srv["skipped"])
        return
    paced = srv["paced_1000_per_s"]
    print(
        f"server: best {srv['best_qps']} qps (target {TARGET_QPS}); at 1000/s p50 {paced['p50_ms']} ms, "
        f"p99 {paced['p99_ms']} ms (target {TARGET_P99_MS} ms), {paced['received']}/{paced['sent']} answered"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s per load run, fewer decisions")
    parser.add_argument("-n", type=int, default=10_000, help="endpoint names (default 10,000)")
    args = parser.parse_args()
    run(out_dir(), n=args.n, seconds=1.0 if args.quick else 3.0, count=10_000 if args.quick else 50_000)


if __name__ == "__main__":
    main()
