"""The services benchmark still runs (tiny sizes); no figure is asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
from types import ModuleType

import pytest

from swimnet.datapath.lb.libnft import problem as nft_problem
from swimnet.datapath.netns import kernel_support_problem

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_services.py"
_reason = kernel_support_problem(f"lbt{os.getpid()}xbench") or nft_problem()


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_services", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.kernel
@pytest.mark.skipif(_reason is not None, reason=_reason or "")
def test_bench_services_runs(tmp_path: pathlib.Path) -> None:
    results = _load().run(tmp_path, n=20, count=3, many_services=5, repeat=1)
    assert results["one_namespace"]["elements"] == 20 * 5
    for key in ("load_s", "change_s", "noop_s", "change_full_read_s"):
        assert results["one_namespace"][key]["min"] > 0
    assert results["many_namespaces"]["namespaces"] == 3
    assert "change_raw_nfnetlink_s" in results["paths"]
    written = json.loads((tmp_path / "services.json").read_text())
    assert written["results"]["targets"] == results["targets"]
