"""Benchmark: seal+open throughput of swimnet.security (XChaCha20-Poly1305).

Measures packets per second for one seal plus one open of the same packet, at 100-byte
and 1400-byte payloads, three runs each (the median is reported), with ``os.urandom`` as
the nonce source as in production. Reports the per-packet overhead in bytes. Writes
``security.json`` into the output folder; ``python benchmarks/bench_security.py`` writes
to ``benchmarks/results/``. Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from swimnet.security import OVERHEAD, Keyring, Sealer

PAYLOAD_SIZES = (100, 1400)
PACKETS_PER_RUN = 20_000
RUNS = 3


def _one_run(sealer: Sealer, payload: bytes, packets: int) -> float:
    seal, open_ = sealer.seal, sealer.open
    start = time.perf_counter()
    for _ in range(packets):
        if open_(seal(payload)) is None:  # pragma: no cover - keeps the result used
            raise AssertionError
    return packets / (time.perf_counter() - start)


def run(out_dir: pathlib.Path, packets: int = PACKETS_PER_RUN) -> dict[str, Any]:
    """Measure, print a summary, write ``out_dir/security.json``; return the results."""
    keyring = Keyring([os.urandom(32), os.urandom(32)])  # opening by id: 2 keys installed
    sealer = Sealer(keyring, "bench-cluster", os.urandom)
    sizes: dict[str, Any] = {}
    for size in PAYLOAD_SIZES:
        payload = os.urandom(size)
        _one_run(sealer, payload, max(packets // 10, 1))  # warm-up
        runs = [_one_run(sealer, payload, packets) for _ in range(RUNS)]
        median = statistics.median(runs)
        sizes[str(size)] = {
            "runs_packets_per_second": [round(r) for r in runs],
            "median_packets_per_second": round(median),
            "median_payload_mb_per_second": round(median * size / 1e6, 2),
            "packet_bytes": size + OVERHEAD,
            "overhead_fraction": round(OVERHEAD / (size + OVERHEAD), 4),
        }
    results: dict[str, Any] = {
        "benchmark": "security",
        "operation": "seal + open (XChaCha20-Poly1305, os.urandom nonces)",
        "overhead_bytes": OVERHEAD,
        "packets_per_run": packets,
        "runs": RUNS,
        "payloads": sizes,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"security: seal+open, overhead {OVERHEAD} bytes per packet")
    for label, row in sizes.items():
        print(
            f"  {label:>5} B payload: {row['median_packets_per_second']:>9,} packets/s "
            f"(median of {RUNS}), {row['median_payload_mb_per_second']:>7.2f} MB/s, "
            f"overhead {100 * row['overhead_fraction']:.1f}%"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "security.json"
    out_file.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  wrote {out_file}")
    return results


if __name__ == "__main__":
    run(pathlib.Path(__file__).resolve().parent / "results")
