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
        # the distributions behind the medians: one time per node, one per observer
        per_node = result["converge_per_node_s"]
        assert len(per_node) == 3 and max(per_node) <= result["converge_s"]
        assert result["converge_node_s"]["max"] == max(per_node)
        assert len(result["crash_detect_per_observer_s"]) == 2
        plot = tmp_path / f"realcluster_n3_{'encrypted' if result['encrypted'] else 'plaintext'}.png"
        assert plot.exists() == (importlib.util.find_spec("matplotlib") is not None)
    written = json.loads((tmp_path / "realcluster.json").read_text())
    assert written["results"] == results


def test_quantiles_are_computed_as_the_memberlist_harness_does() -> None:
    bench = _load()
    assert bench._distribution([4.0, 1.0, 3.0, 2.0]) == {
        "min": 1.0, "median": 2.5, "p90": 3.7, "p99": 3.97, "max": 4.0
    }  # fmt: skip


def test_memberlist_quantiles_are_read_for_the_plot() -> None:
    raw = {
        "converge_s": 2.5,
        "converge_node_p50_s": 1.0,
        "converge_node_p90_s": 2.0,
        "converge_node_p99_s": 2.4,
        "converge_last_node_first_full_s": 2.5,
        "failure": {"detected": 9, "observers": 9, "min_s": 5.0, "median_s": 9.0, "p90_s": 11.0},
    }
    summary = _load().memberlist_summary(raw)
    assert summary["converge_node_quantiles_s"] == {0.5: 1.0, 0.9: 2.0, 0.99: 2.4, 1.0: 2.5}
    assert summary["crash_detect_quantiles_s"] == {0.0: 5.0, 0.5: 9.0, 0.9: 11.0}  # no max_s: left out
