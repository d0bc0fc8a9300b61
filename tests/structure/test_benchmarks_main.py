"""`python -m benchmarks`: names and `--quick` are checked before any benchmark runs."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from benchmarks import __main__ as bench_main


def test_quick_is_refused_for_a_benchmark_without_a_quick_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["--quick", "security"]) == 2
    assert "no quick mode in security" in capsys.readouterr().out


def test_an_unknown_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["nosuch"]) == 2
    assert "unknown benchmark(s): nosuch" in capsys.readouterr().out


def test_quick_reaches_the_benchmark(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    from benchmarks import bench_membership

    calls: list[dict[str, Any]] = []

    def fake_run(directory: pathlib.Path, quick: bool = False) -> dict[str, Any]:
        calls.append({"directory": directory, "quick": quick})
        return {}

    monkeypatch.setattr(bench_membership, "run", fake_run)
    monkeypatch.setattr(bench_main, "out_dir", lambda: tmp_path)
    assert bench_main.main(["membership", "--quick"]) == 0
    assert bench_main.main(["membership"]) == 0
    assert calls == [{"directory": tmp_path, "quick": True}, {"directory": tmp_path, "quick": False}]
