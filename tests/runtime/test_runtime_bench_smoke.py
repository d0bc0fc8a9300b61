"""The real-cluster benchmark still runs (tiny cluster, short windows); no figure is asserted."""

from __future__ import annotations

import importlib.util
import json
import pathlib
from types import ModuleType

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_realcluster.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_realcluster", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_realcluster_runs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load()
    monkeypatch.setattr(bench, "SETTLE_S", 0.2)
    monkeypatch.setattr(bench, "WINDOW_S", 0.5)
    monkeypatch.setattr(bench, "SETTLE_MAX_S", 5.0)
    results = bench.run(tmp_path, sizes=(3,), memberlist=None)
    assert [(r["nodes"], r["encrypted"]) for r in results] == [(3, False), (3, True)]
    for result in results:
        assert result["crash_detected_by"] == "2/2"
        for key in ("converge_s", "steady_cpu_ms_per_node_s", "steady_bytes_per_node_s", "rss_kb_per_node"):
            assert key in result
        assert not any(k.startswith("drop_auth") for k in result["drops"])
    written = json.loads((tmp_path / "realcluster.json").read_text())
    assert written["results"] == results
