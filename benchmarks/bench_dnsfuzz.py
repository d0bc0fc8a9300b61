"""Embedded DNS fuzzing: a million and more hostile inputs through the resolver's input path.

Inputs: `swimnet.dns.fuzz.inputs` (mutated valid queries: bit flips, interesting bytes, cuts,
splices, header counts, compression pointers to themselves / forwards / out of range, label
lengths, junk; plus unmutated queries and random bytes), seeded. Every input goes through
`fuzz.check` over UDP (and every fourth also over TCP): never an exception, replies with
the query's id that parse and fit the client, relays only of parseable queries, the fast
path equal to dnspython's byte for byte. Reports inputs/s, the outcome mix and the first
failures (hex, to replay with `fuzz.check`).

`python benchmarks/bench_dnsfuzz.py [-n COUNT] [--seed S]` or `nox -s bench -- dnsfuzz`
(COUNT defaults to 1,000,000; SWIMNET_DNSFUZZ_COUNT overrides it for nox).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import sys
import time
from collections import Counter
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import out_dir, write_json
from swimnet.dns import Respond, build_view
from swimnet.dns.fuzz import FuzzFailure, check, inputs, seed_corpus
from swimnet.dns.names import EndpointRow, NetworkRecords, ServiceRow
from swimnet.overlay.model import EndpointRecord, ServiceRecord, mac_from_ip

DEFAULT_COUNT = 1_000_000


def _view() -> Any:
    def ep(eid: str, name: str, ip: str) -> EndpointRow:
        return EndpointRow(eid, EndpointRecord(name, f"{ip}/24", mac_from_ip(ip), "192.0.2.11"))

    front = NetworkRecords(
        "front",
        "10.1.0.0/24",
        (ep("e1", "web1", "10.1.0.2"), ep("e2", "web2", "10.1.0.3"), ep("e3", "db", "10.1.0.4")),
        (
            ServiceRow(ServiceRecord("web", "10.1.0.100", backends=("e1", "e2"))),
            ServiceRow(ServiceRecord("rr", None, "dnsrr", backends=("e1", "e2", "e3"))),
            ServiceRow(ServiceRecord("empty", None, "dnsrr")),
        ),
    )
    back = NetworkRecords("back", "10.2.0.0/24", (ep("c1", "cache", "10.2.0.5"),))
    return build_view([front, back])


def run(out: pathlib.Path, count: int | None = None, seed: int = 2024) -> dict[str, Any]:
    count = count or int(os.environ.get("SWIMNET_DNSFUZZ_COUNT", DEFAULT_COUNT))
    view = _view()
    corpus = seed_corpus()
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    start = time.perf_counter()
    for i, data in enumerate(inputs(count, random.Random(seed), corpus)):
        for tcp in (False, True) if i % 4 == 0 else (False,):
            try:
                out_ = check(data, view, ("front",), i, tcp=tcp)
            except FuzzFailure as exc:
                if len(failures) < 10:
                    failures.append(f"#{i} tcp={tcp}: {exc}")
                outcomes["FAILURE"] += 1
                continue
            label = type(out_).__name__
            outcomes[f"{label}:{out_.rcode}" if isinstance(out_, Respond) else label] += 1
        if i and i % 100_000 == 0:
            print(f"  {i:,} inputs, {i / (time.perf_counter() - start):,.0f}/s")
    seconds = time.perf_counter() - start
    results = {
        "inputs": count,
        "checks": sum(outcomes.values()),
        "seed": seed,
        "seconds": round(seconds, 1),
        "inputs_per_second": round(count / seconds),
        "outcomes": dict(sorted(outcomes.items())),
        "failures": failures,
    }
    write_json("dnsfuzz", results, out)
    print(
        f"dnsfuzz: {count:,} inputs in {seconds:.0f} s ({results['inputs_per_second']:,}/s), "
        f"{outcomes['FAILURE']} failures"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=None, help=f"inputs (default {DEFAULT_COUNT:,})")
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    results = run(out_dir(), args.n, args.seed)
    sys.exit(1 if results["failures"] else 0)


if __name__ == "__main__":
    main()
