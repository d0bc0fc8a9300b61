"""Run benchmarks by name: `python -m benchmarks membership realcluster ...` (none = all)."""

from __future__ import annotations

import importlib
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
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(SUITES)}")
        return 2
    for name in names:
        try:
            module = importlib.import_module(SUITES[name])
        except ModuleNotFoundError as exc:
            if exc.name == SUITES[name]:
                print(f"== {name}: not available yet")
                continue
            raise
        print(f"== {name}")
        module.run(out_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
