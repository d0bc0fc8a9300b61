"""Linux datapath: programming and reconciling 10,000 remote endpoints in a namespace of its own.

Measures (one sandbox, VNI 4097, N remote endpoints on 3 VTEPs = N FDB + N neighbour entries):
- programming from scratch: pyroute2 one call per entry vs batched raw netlink (entries/s),
  and deleting them all again with each;
- batch size of the netlink writer (messages per send());
- dumps of the sandbox: raw netlink (used) vs iproute2 JSON (`bridge -j` / `ip -j`) vs
  pyroute2;
- reconcile with nothing to do (dump + diff + apply; target <= 0.2 s for 10,000);
- reconcile after 1% drift in the desired state (moved, removed and added endpoints), and
  after 1% drift in the kernel (entries deleted and rewritten by hand).
Targets: >= 100,000 entries/s batched; no-op reconcile of 10,000 endpoints <= 0.2 s.

Needs root and network namespaces; everything happens inside namespaces it creates (named
bdp<pid>x<random>...) and removes. `python benchmarks/bench_datapath.py [--quick] [-n N]`
or `nox -s bench -- datapath`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import ipaddress
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from benchmarks.common import out_dir, write_json
from swimnet.datapath import (
    DesiredState,
    LinuxDatapath,
    LocalEndpoint,
    NetworkSpec,
    RemoteEndpoint,
    desired_state,
    diff,
    mac_from_ip,
)
from swimnet.datapath.entries import NetlinkEntries
from swimnet.datapath.ops import ENTRY_OPS, DeleteNeigh, Op, ReplaceFdb

VTEPS = ["192.0.2.21", "192.0.2.22", "192.0.2.23"]
LOCAL_VTEP = "192.0.2.11"
NET = NetworkSpec("bench", 4097, "10.1.0.0/16")
TARGET_RATE = 100_000
TARGET_NOOP_S = 0.2


def _probe() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    name = f"bdp{os.getpid()}xprobe"
    try:
        pr_netns.create(name)
        try:
            with IPRoute(netns=name, flags=0) as ipr:
                ipr.link("add", ifname="vxp", kind="vxlan", vxlan_id=1, vxlan_port=4789, vxlan_learning=0)
        finally:
            pr_netns.remove(name)
    except Exception as exc:
        return f"netns/vxlan unavailable: {exc!r}"
    return None


def _remotes(n: int, moved: int = 0, removed: int = 0, added: int = 0) -> list[RemoteEndpoint]:
    base = int(ipaddress.IPv4Address("10.1.128.0"))
    out = []
    for i in range(removed, n + added):
        ip = str(ipaddress.IPv4Address(base + i))
        vtep = VTEPS[(i + (1 if i < removed + moved else 0)) % len(VTEPS)]
        out.append(RemoteEndpoint(NET.name, f"ep{i}", f"{ip}/16", mac_from_ip(ip), vtep))
    return out


def _desired(tag: str, remotes: list[RemoteEndpoint]) -> DesiredState:
    local = LocalEndpoint(NET.name, "local", "local", "10.1.0.1/16", mac_from_ip("10.1.0.1"), "unused")
    return desired_state(tag, LOCAL_VTEP, 1500, [NET], [local], remotes)


T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _entry_ops(ops: list[Op]) -> list[Op]:
    return [op for op in ops if isinstance(op, ENTRY_OPS)]


def _program(dp: LinuxDatapath, desired: DesiredState) -> dict[str, float]:
    """Time applying the entry ops that take the sandbox to `desired` (devices already exist)."""
    ops = diff(desired, dp.dump())
    entries = _entry_ops(ops)
    assert len(entries) == len(ops), "devices should already exist"
    seconds, result = _timed(lambda: dp.apply(ops))
    result.raise_for_errors()
    return {
        "entries": len(entries),
        "seconds": round(seconds, 4),
        "entries_per_s": round(len(entries) / seconds),
    }


def _dumps(sandbox: str, dp: LinuxDatapath, repeat: int) -> dict[str, float]:
    def raw() -> None:
        dp.dump()

    def iproute2_json() -> None:
        fdb = json.loads(
            subprocess.check_output(["bridge", "-n", sandbox, "-j", "fdb", "show", "dev", "vxlan0"])
        )
        neigh = json.loads(
            subprocess.check_output(["ip", "-n", sandbox, "-j", "-4", "neigh", "show", "dev", "vxlan0"])
        )
        _ = {(e["mac"], e.get("dst")) for e in fdb if "self" in e.get("flags", [])}
        _ = {e["dst"]: e.get("lladdr") for e in neigh if "PERMANENT" in e.get("state", [])}

    def pyroute2_dump() -> None:
        with IPRoute(netns=sandbox, flags=0) as ipr:
            vx = ipr.link_lookup(ifname="vxlan0")[0]
            _ = {(m.get_attr("NDA_LLADDR"), m.get_attr("NDA_DST")) for m in ipr.fdb("dump", ifindex=vx)}
            _ = {
                m.get_attr("NDA_DST"): m.get_attr("NDA_LLADDR")
                for m in ipr.neigh("dump", ifindex=vx, family=2)
            }

    out = {}
    for name, fn in (("raw_netlink", raw), ("iproute2_json", iproute2_json), ("pyroute2", pyroute2_dump)):
        times = [_timed(fn)[0] for _ in range(1 if name == "pyroute2" else repeat)]
        out[f"{name}_s"] = round(min(times), 4)
    return out


def _noop(dp: LinuxDatapath, desired: DesiredState, repeat: int) -> dict[str, float | int]:
    totals: list[float] = []
    dumps: list[float] = []
    diffs: list[float] = []
    for _ in range(repeat):
        t_dump, actual = _timed(dp.dump)
        t_diff, ops = _timed(functools.partial(diff, desired, actual))
        assert ops == [], ops[:5]
        total, result = _timed(lambda: dp.reconcile(desired))
        assert result.attempted == 0
        totals.append(total)
        dumps.append(t_dump)
        diffs.append(t_diff)
    return {
        "median_s": round(statistics.median(totals), 4),
        "min_s": round(min(totals), 4),
        "max_s": round(max(totals), 4),
        "dump_median_s": round(statistics.median(dumps), 4),
        "diff_median_s": round(statistics.median(diffs), 4),
        "endpoints": desired.entry_count() // 2,
    }


def _kernel_drift(sandbox: str, desired: DesiredState, fraction: float) -> int:
    """Delete and mis-point a fraction of the entries by hand, as `bridge`/`ip` would."""
    box = desired.sandboxes[sandbox]
    count = max(1, int(len(box.neighbours) * fraction))
    ips = sorted(box.neighbours)[:count]
    macs = sorted(mac for mac, _ in box.fdb)[:count]
    ops = [DeleteNeigh(sandbox, ip) for ip in ips] + [ReplaceFdb(sandbox, mac, "192.0.2.99") for mac in macs]
    errors = NetlinkEntries().write(sandbox, ops)
    assert not errors, errors[:3]
    return len(ops)


def _batch_sizes(sandbox: str, desired: DesiredState) -> dict[str, int]:
    ops = [ReplaceFdb(sandbox, mac, vtep) for mac, vtep in sorted(desired.sandboxes[sandbox].fdb)]
    out = {}
    for chunk in (1, 16, 256, 1024, 4096):
        seconds, errors = _timed(functools.partial(NetlinkEntries(chunk=chunk).write, sandbox, ops))
        assert not errors
        out[str(chunk)] = round(len(ops) / seconds)
    return out


def measure(n: int, repeat: int) -> dict[str, Any]:
    prefix = f"bdp{os.getpid()}x{secrets.token_hex(2)}"
    host = f"{prefix}h"
    pr_netns.create(host)
    try:
        fast = LinuxDatapath(host, host_netns=host)
        slow = LinuxDatapath(host, host_netns=host, entries="pyroute2")
        empty = _desired(host, [])
        full = _desired(host, _remotes(n))
        sandbox = full.sandbox(NET.name).netns
        fast.reconcile(empty).raise_for_errors()
        results: dict[str, Any] = {"endpoints": n, "entries": 2 * n}
        results["program_pyroute2"] = _program(slow, full)
        results["delete_pyroute2"] = _program(slow, empty)
        results["program_netlink"] = _program(fast, full)
        results["dump"] = _dumps(sandbox, fast, repeat)
        results["delete_netlink"] = _program(fast, empty)
        results["program_netlink_again"] = _program(fast, full)
        results["netlink_entries_per_s_by_batch_size"] = _batch_sizes(sandbox, full)
        results["noop_reconcile"] = _noop(fast, full, repeat)
        per = max(1, n // 400)  # 1% = 0.5% moved + 0.25% removed + 0.25% added
        drifted = _desired(host, _remotes(n, moved=2 * per, removed=per, added=per))
        ops = diff(drifted, fast.dump())
        seconds, result = _timed(lambda: fast.reconcile(drifted))
        result.raise_for_errors()
        results["reconcile_after_desired_drift"] = {"ops": len(ops), "seconds": round(seconds, 4)}
        changed = _kernel_drift(sandbox, drifted, 0.005)
        ops = diff(drifted, fast.dump())
        seconds, result = _timed(lambda: fast.reconcile(drifted))
        result.raise_for_errors()
        results["reconcile_after_kernel_drift"] = {
            "changed_by_hand": changed,
            "ops": len(ops),
            "seconds": round(seconds, 4),
        }
        assert diff(drifted, fast.dump()) == []
        results["targets"] = {
            "entries_per_s": TARGET_RATE,
            "entries_per_s_met": results["program_netlink"]["entries_per_s"] >= TARGET_RATE,
            "noop_reconcile_s": TARGET_NOOP_S,
            "noop_reconcile_met": results["noop_reconcile"]["median_s"] <= TARGET_NOOP_S * n / 10_000,
        }
        return results
    finally:
        for name in pr_netns.listnetns():
            if name.startswith((prefix, f"swn-{prefix}")):
                with contextlib.suppress(OSError):
                    pr_netns.remove(name)


def _summary(r: dict[str, Any]) -> None:
    print(f"datapath: {r['endpoints']} remote endpoints = {r['entries']} FDB + neighbour entries")
    for key in (
        "program_pyroute2",
        "program_netlink",
        "program_netlink_again",
        "delete_pyroute2",
        "delete_netlink",
    ):
        v = r[key]
        print(
            f"  {key:<22} {v['entries']:>6} entries in {v['seconds']:.3f} s"
            f" = {v['entries_per_s']:>8,} entries/s"
        )
    print("  netlink entries/s by messages per send():", r["netlink_entries_per_s_by_batch_size"])
    print("  dump of the sandbox (s):", r["dump"])
    nop = r["noop_reconcile"]
    print(
        f"  no-op reconcile: median {nop['median_s']:.3f} s (dump {nop['dump_median_s']:.3f} s, "
        f"diff {nop['diff_median_s']:.3f} s)"
    )
    d = r["reconcile_after_desired_drift"]
    print(f"  reconcile after 1% desired drift: {d['ops']} ops in {d['seconds']:.3f} s")
    k = r["reconcile_after_kernel_drift"]
    print(
        f"  reconcile after kernel drift ({k['changed_by_hand']} entries by hand):"
        f" {k['ops']} ops in {k['seconds']:.3f} s"
    )
    print("  targets:", r["targets"])


def run(out_dir: pathlib.Path, n: int = 10_000, repeat: int = 5) -> dict[str, Any]:
    reason = _probe()
    if reason is not None:
        print(f"datapath benchmark skipped: {reason}")
        results: dict[str, Any] = {"skipped": reason}
    else:
        results = measure(n, repeat)
        _summary(results)
    write_json("datapath", results, out_dir)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 endpoints, 3 repeats")
    parser.add_argument("-n", type=int, default=10_000, help="remote endpoints (default 10,000)")
    args = parser.parse_args()
    run(out_dir(), n=1_000 if args.quick else args.n, repeat=3 if args.quick else 5)


if __name__ == "__main__":
    main()
