"""Service load balancing: programming nftables VIP rules in container namespaces.

Measures, with the layout of swimnet.datapath.lb.table (S services x 3 backends, one TCP
port each = S services elements + 3S backend elements + S VIPs):
- targets, end to end through LinuxLoadBalancer.reconcile (dump + diff + apply):
  * S = 1,000 into one empty namespace                     target <= 0.3 s
  * one backend change in that namespace                    target <= 20 ms
  * no-op reconcile of that namespace                       target <= 0.1 s
  * 100 namespaces (100 services each, the same ones: 100 containers of one network),
    all updated after one backend change                     target <= 1 s
- the programming paths the module docstrings cite (why libnftables + raw nfnetlink):
  * full load as one transaction: libnftables text in-process, `nft -f -`, `nft -j -f -`
  * one backend change: raw nfnetlink batch, libnftables text, `nft -f -`
  * dump: terse libnftables listing + raw nfnetlink elements (used), `nft -j list table`,
    libnftables JSON listing with elements (+ json.loads)
  * entering a namespace (nsthread.run_in) and making a libnftables context.
Figures are min and median over repeats (the machine is shared: medians wander).

Needs root, network namespaces and libnftables; everything happens inside namespaces it
creates (bsv<pid>x<random>...) and removes. `python benchmarks/bench_services.py [--quick]`
or `nox -s bench -- services`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from pyroute2 import netns as pr_netns

from benchmarks.common import out_dir, write_json
from swimnet.datapath.lb import Ruleset, lb_diff, rulesets, table_for
from swimnet.datapath.lb.libnft import Nft, NftError
from swimnet.datapath.lb.libnft import problem as nft_problem
from swimnet.datapath.lb.linux import LinuxLoadBalancer
from swimnet.datapath.lb.nfnetlink import NfSocket
from swimnet.datapath.lb.ops import AddChain, AddElements, AddRule, AddSet, AddTable, Command, DeleteElements
from swimnet.datapath.lb.table import TABLE, describe_backend, describe_frontend, set_kind
from swimnet.datapath.lb.text import render
from swimnet.datapath.netns import path_of
from swimnet.datapath.nsthread import run_in
from swimnet.overlay.snapshot import ServiceSpec

T = TypeVar("T")
TARGETS = {"load_s": 0.3, "change_s": 0.020, "noop_s": 0.1, "hundred_namespaces_s": 1.0}


def _probe() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    return nft_problem()


def _ip(i: int) -> str:
    return f"10.{1 + i // 65536}.{(i // 256) % 256}.{i % 256}"


def services(n: int, *, changed: int | None = None, backends: int = 3) -> list[ServiceSpec]:
    """n services with VIPs from 10.1.195.80 up and 3 backends each; `changed`: that
    service's last backend replaced (one backend change)."""
    out = []
    for i in range(n):
        addresses = [_ip(1 + i * backends + b) for b in range(backends)]
        if i == changed:
            addresses[-1] = "10.9.9.9"
        out.append(ServiceSpec("net", f"s{i}", _ip(50000 + i), "vip", (("tcp", 80, 8080),), tuple(addresses)))
    return out


def ruleset_of(specs: Sequence[ServiceSpec]) -> Ruleset:
    return rulesets(specs, [("net", "x")])["x"]


def _stats(samples: list[float]) -> dict[str, float]:
    return {"min": round(min(samples), 5), "median": round(statistics.median(samples), 5)}


def _repeat(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


@contextlib.contextmanager
def namespaces(count: int) -> Any:
    prefix = f"bsv{os.getpid()}x{secrets.token_hex(2)}"
    names = [f"{prefix}n{i}" for i in range(count)]
    try:
        for name in names:
            pr_netns.create(name)
        yield names
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                pr_netns.remove(name)


def _in(ns: str, fn: Callable[[], T]) -> T:
    return run_in(path_of(ns), fn)


def _nft_binary(ns: str, args: Sequence[str], script: str) -> subprocess.CompletedProcess[bytes]:
    """The `nft` binary inside `ns` (forked from a thread in it: the network namespace only)."""
    return _in(
        ns, lambda: subprocess.run(["nft", *args], input=script.encode(), capture_output=True, check=False)
    )


def _drop_table(ns: str) -> None:
    def drop() -> None:
        with Nft() as nft, contextlib.suppress(NftError):
            nft.run(f"delete table ip {TABLE}")

    _in(ns, drop)


# -- JSON rendering, for the comparison only (the module writes text) -----------------


def _json_key(set_name: str, key: bytes) -> Any:
    if set_name == "vips":
        return str(ipaddress.IPv4Address(key))
    vip, proto, port = describe_frontend(key)
    return {"concat": [vip, proto, port]}


def _json_data(data: bytes | str | None) -> Any:
    if isinstance(data, str):
        return {"goto": {"target": data}}
    assert isinstance(data, bytes)
    address, target = describe_backend(data)
    return {"concat": [address, target]}


def json_script(plan: Sequence[Command]) -> str:
    ident = {"family": "ip", "table": TABLE}
    out: list[dict[str, Any]] = []
    for c in plan:
        if isinstance(c, AddTable):
            out.append({"add": {"table": {"family": "ip", "name": TABLE}}})
        elif isinstance(c, AddSet):
            out.append({"add": {set_kind(c.name): {**ident, "name": c.name, **json.loads(c.decl.listed)}}})
        elif isinstance(c, AddChain):
            out.append({"add": {"chain": {**ident, "name": c.name, **json.loads(c.decl.listed)}}})
        elif isinstance(c, AddRule):
            out.append({"add": {"rule": {**ident, "chain": c.chain, "expr": json.loads(c.rule.listed)}}})
        elif isinstance(c, AddElements):
            elem = [
                _json_key(c.set, k) if d is None else [_json_key(c.set, k), _json_data(d)] for k, d in c.items
            ]
            out.append({"add": {"element": {**ident, "name": c.set, "elem": elem}}})
        elif isinstance(c, DeleteElements):
            elem = [_json_key(c.set, k) for k in c.keys]
            out.append({"delete": {"element": {**ident, "name": c.set, "elem": elem}}})
        else:
            raise ValueError(f"not rendered as JSON: {c!r}")
    return json.dumps({"nftables": out})


# -- measurements ------------------------------------------------------------------------


def paths(ns: str, n: int, repeat: int) -> dict[str, Any]:
    """The programming paths compared (full load, one change, dump)."""
    full = lb_diff(table_for(ruleset_of(services(n))), None)
    text = render(full)
    out: dict[str, Any] = {"plan_commands": len(full), "text_bytes": len(text)}

    def lib_text() -> None:
        with Nft() as nft:
            nft.run(text)

    out["load_libnftables_text_s"] = _repeat(lambda: _in(ns, lib_text), repeat, lambda: _drop_table(ns))
    out["load_nft_binary_text_s"] = _repeat(
        lambda: _nft_binary(ns, ["-f", "-"], text).check_returncode(), repeat, lambda: _drop_table(ns)
    )
    _drop_table(ns)
    done = _nft_binary(ns, ["-j", "-f", "-"], json_script(full))
    out["load_nft_binary_json"] = (
        "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr.decode()[:200].strip()}"
    )
    if done.returncode == 0:
        out["load_nft_binary_json_s"] = _repeat(
            lambda: _nft_binary(ns, ["-j", "-f", "-"], json_script(full)), repeat, lambda: _drop_table(ns)
        )

    _drop_table(ns)
    _in(ns, lib_text)
    a, b = table_for(ruleset_of(services(n))), table_for(ruleset_of(services(n, changed=7)))
    forth, back = lb_diff(b, a), lb_diff(a, b)
    assert all(isinstance(c, (AddElements, DeleteElements)) for c in (*forth, *back))
    flip = [forth, back]

    def flipped(apply: Callable[[Sequence[Command]], Any]) -> Callable[[], None]:
        def once() -> None:
            apply(flip[0])
            flip.reverse()

        return once

    def kept_handles() -> dict[str, dict[str, float]]:
        """Both in-process paths with their handle kept open (as LinuxLoadBalancer does)."""
        with NfSocket() as nf, Nft() as nft:
            raw = _repeat(flipped(lambda plan: nf.commit(TABLE, plan)), repeat * 4)
            lib = _repeat(flipped(lambda plan: nft.run(render(plan))), repeat * 4)
        return {"raw": raw, "lib": lib}

    def fresh_socket(plan: Sequence[Command]) -> None:
        def inside() -> None:
            with NfSocket() as nf:
                nf.commit(TABLE, [c for c in plan if isinstance(c, (AddElements, DeleteElements))])

        _in(ns, inside)

    kept = _in(ns, kept_handles)
    out["change_raw_nfnetlink_s"] = kept["raw"]
    out["change_libnftables_text_s"] = kept["lib"]
    out["change_nft_binary_text_s"] = _repeat(
        flipped(lambda plan: _nft_binary(ns, ["-f", "-"], render(plan)).check_returncode()), repeat * 4
    )
    out["change_raw_nfnetlink_fresh_socket_s"] = _repeat(flipped(fresh_socket), repeat * 4)
    if len(flip[0]) != len(forth):
        flip.reverse()
    reader, rememberer = LinuxLoadBalancer(trust_generation=False), LinuxLoadBalancer()

    def binary_json() -> None:
        json.loads(_nft_binary(ns, ["-j", "list", "table", "ip", TABLE], "").stdout)

    def lib_json() -> None:
        def inside() -> None:
            with Nft() as nft:
                json.loads(nft.run(f"list table ip {TABLE}", flags=1 << 4))

        _in(ns, inside)

    out["dump_terse_listing_plus_nfnetlink_s"] = _repeat(lambda: reader.dump(ns), repeat * 2)
    out["dump_generation_unchanged_s"] = _repeat(lambda: rememberer.dump(ns), repeat * 2)
    out["dump_nft_binary_json_s"] = _repeat(binary_json, repeat)
    out["dump_libnftables_json_s"] = _repeat(lib_json, repeat)
    out["enter_namespace_s"] = _repeat(lambda: _in(ns, lambda: None), repeat * 10)
    out["libnftables_context_s"] = _repeat(lambda: _in(ns, lambda: Nft().close()), repeat * 10)
    return out


def one_namespace(ns: str, n: int, repeat: int) -> dict[str, Any]:
    """Targets in one namespace: full load, one backend change, no-op; the change and the
    no-op also with the table read back on every reconcile (trust_generation=False)."""
    base = ruleset_of(services(n))
    changed = ruleset_of(services(n, changed=n // 2))
    table = table_for(base)
    assert table is not None
    out: dict[str, Any] = {"services": n, "elements": table.element_count}
    for suffix, lb in (("", LinuxLoadBalancer()), ("_full_read", LinuxLoadBalancer(trust_generation=False))):

        def reconcile(ruleset: Ruleset, lb: LinuxLoadBalancer = lb) -> str:
            result = lb.reconcile({ns: ruleset})
            assert result.ok, result.errors
            return result.outcomes[0].path

        if not suffix:
            out["load_s"] = _repeat(lambda: reconcile(base), repeat, lambda: _drop_table(ns))
        reconcile(base)
        flip = [changed, base]

        def change(reconcile: Callable[[Ruleset], str] = reconcile, flip: list[Ruleset] = flip) -> None:
            path = reconcile(flip[0])
            assert path == "netlink", path
            flip.reverse()

        out[f"change{suffix}_s"] = _repeat(change, repeat * 4)
        reconcile(base)
        out[f"noop{suffix}_s"] = _repeat(lambda reconcile=reconcile: reconcile(base), repeat * 2)
        lb.close()
    return out


def many_namespaces(count: int, n: int, repeat: int) -> dict[str, Any]:
    """`count` namespaces with the same `n` services; one backend change reaches them all."""
    out: dict[str, Any] = {"namespaces": count, "services_each": n}
    with namespaces(count) as names:
        base = ruleset_of(services(n))
        changed = ruleset_of(services(n, changed=n // 2))
        lb = LinuxLoadBalancer()
        start = time.perf_counter()
        assert lb.reconcile(dict.fromkeys(names, base)).ok
        out["initial_load_s"] = round(time.perf_counter() - start, 4)
        flip = [changed, base]

        def change() -> None:
            result = lb.reconcile(dict.fromkeys(names, flip[0]))
            assert result.ok and result.changed == count, result.errors
            flip.reverse()

        out["hundred_namespaces_s"] = _repeat(change, repeat)
        if flip[0] is base:
            change()
        out["noop_all_s"] = _repeat(lambda: lb.reconcile(dict.fromkeys(names, base)), repeat)
        lb.trust_generation = False
        out["hundred_namespaces_full_read_s"] = _repeat(change, repeat)
        out["noop_all_full_read_s"] = _repeat(lambda: lb.reconcile(dict.fromkeys(names, base)), repeat)
        assert lb.reconcile(dict.fromkeys(names, Ruleset())).ok
        lb.close()
    return out


def measure(n: int, count: int, many_services: int, repeat: int) -> dict[str, Any]:
    with namespaces(1) as (ns,):
        results: dict[str, Any] = {"one_namespace": one_namespace(ns, n, repeat)}
        results["paths"] = paths(ns, n, repeat)
    results["many_namespaces"] = many_namespaces(count, many_services, repeat)
    results["targets"] = TARGETS
    results["load_average"] = os.getloadavg()
    return results


def _summary(r: dict[str, Any]) -> None:
    one, many, p = r["one_namespace"], r["many_namespaces"], r["paths"]

    def show(label: str, value: dict[str, float], target: float | None = None) -> None:
        verdict = "" if target is None else ("  ok" if value["median"] <= target else "  OVER TARGET")
        limit = "" if target is None else f"  (target <= {target * 1000:.0f} ms)"
        low, mid = value["min"] * 1000, value["median"] * 1000
        print(f"  {label:<48} min {low:8.2f} ms  median {mid:8.2f} ms{limit}{verdict}")

    print(f"one namespace, {one['services']} services x 3 backends ({one['elements']} elements):")
    show("load into an empty namespace", one["load_s"], TARGETS["load_s"])
    show("one backend change", one["change_s"], TARGETS["change_s"])
    show("no-op reconcile", one["noop_s"], TARGETS["noop_s"])
    show("one backend change, table read back", one["change_full_read_s"], TARGETS["change_s"])
    show("no-op reconcile, table read back", one["noop_full_read_s"], TARGETS["noop_s"])
    count, each, initial = many["namespaces"], many["services_each"], many["initial_load_s"]
    print(f"{count} namespaces x {each} services (initial load {initial} s):")
    show("one backend change, every namespace", many["hundred_namespaces_s"], TARGETS["hundred_namespaces_s"])
    show("no-op reconcile, every namespace", many["noop_all_s"])
    show(
        "one backend change, every namespace, read back",
        many["hundred_namespaces_full_read_s"],
        TARGETS["hundred_namespaces_s"],
    )
    show("no-op reconcile, every namespace, read back", many["noop_all_full_read_s"])
    print(f"programming paths (load average {', '.join(f'{x:.1f}' for x in r['load_average'])}):")
    for key, value in p.items():
        if isinstance(value, dict):
            show(key.removesuffix("_s"), value)
        else:
            print(f"  {key:<48} {value}")


def run(
    out_dir: pathlib.Path, n: int = 1000, count: int = 100, many_services: int = 100, repeat: int = 5
) -> dict[str, Any]:
    reason = _probe()
    if reason is not None:
        print(f"services benchmark skipped: {reason}")
        results: dict[str, Any] = {"skipped": reason}
    else:
        results = measure(n, count, many_services, repeat)
        _summary(results)
    write_json("services", results, out_dir)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 services, 20 namespaces, 3 repeats")
    parser.add_argument("-n", type=int, default=1000, help="services in the big namespace (default 1,000)")
    args = parser.parse_args()
    if args.quick:
        run(out_dir(), n=200, count=20, many_services=50, repeat=3)
    else:
        run(out_dir(), n=args.n)


if __name__ == "__main__":
    main()
