"""Run benchmarks by name: `python -m benchmarks [--quick] membership realcluster ...` (none =
all). `--quick` runs the smaller sizes of the benchmarks that have them (a smoke run), and is
refused, before anything runs, for a benchmark that has none."""

from __future__ import annotations

import importlib
import inspect
import sys

from benchmarks.common import out_dir

SUITES = {
    "membership": "benchmarks.bench_membership",
    "security": "benchmarks.bench_security",
    "realcluster": "benchmarks.bench_realcluster",
    "topology": "benchmarks.bench_topology",
    "tables": "benchmarks.bench_tables",
    "datapath": "benchmarks.bench_datapath",
    "services": "benchmarks.bench_services",
    "soak": "benchmarks.bench_soak",
    "fuzz": "benchmarks.bench_fuzz",
    "dns": "benchmarks.bench_dns",
    "dnsfuzz": "benchmarks.bench_dnsfuzz",
    "agent": "benchmarks.bench_agent",
    "ipam": "benchmarks.bench_ipam",
    "docker": "benchmarks.bench_docker",
}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [arg for arg in argv if arg != "--quick"] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
        return 2
    modules = {}
    for name in names:
        try:
            modules[name] = importlib.import_module(SUITES[name])
        except ModuleNotFoundError as exc:
            if exc.name != SUITES[name]:
                raise
            print(f"== {name}: not available yet")
    if quick:
        whole = [n for n, m in modules.items() if "quick" not in inspect.signature(m.run).parameters]
        if whole:
            print(f"--quick: no quick mode in {', '.join(whole)}")
            return 2
    for name, module in modules.items():
        print(f"== {name}")
        if quick:
            module.run(out_dir(), quick=True)
        else:
            module.run(out_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
