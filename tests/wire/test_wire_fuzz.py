"""The fuzz harness of `benchmarks/bench_fuzz.py`, on a few thousand inputs: every decoder of
peer input raises nothing but its typed error family on mutated encodings, and decodes
every freshly generated valid one. (The benchmark runs the same harness on a million.)"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_fuzz.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fuzz", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [1, 2])
def test_decoders_survive_mutated_inputs(seed: int) -> None:
    bench = _load()
    results = bench.fuzz(total=4000, seed=seed, quiet=True)
    failures = {name: row["failures"] for name, row in results["targets"].items() if row["unexpected"]}
    assert results["unexpected"] == 0, failures
    assert results["total_inputs"] >= 4000
    for name, row in results["targets"].items():
        assert row["generated_refused"] == 0, name  # valid encodings decode
        assert row["accepted"] > 0 and row["refused"] > 0, name
        assert set(row["mutations"]) == set(bench.MUTATIONS), name


def test_a_decoder_raising_an_untyped_error_is_reported() -> None:
    bench = _load()

    def fragile(data: bytes) -> None:
        if len(data) % 7 == 0:
            raise IndexError("boom")

    target = bench.Target("fragile", lambda r: r.randbytes(r.randint(1, 40)), fragile, (ValueError,), None)
    result = bench.TargetResult()
    bench.Fuzzer(3, None).run_target(target, 500, result, False)
    assert result.unexpected > 0 and result.failures[0]["error"].startswith("IndexError")
    assert result.inputs == 500
