"""The narrated simulated-cluster demo (`python -m examples.demo`, `nox -s demo -- --sim`)
runs to its end: crash detected, restart seen, partition healed."""

from __future__ import annotations

import pytest

from examples import demo


@pytest.mark.parametrize("seed", [7, 11])
def test_demo_runs_to_the_end(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    demo.main(["--seed", str(seed)])
    out = capsys.readouterr().out
    assert "declared dead by all 11 others" in out
    assert "is alive again everywhere (incarnation" in out
    assert "re-merged: all 12 nodes alive everywhere again" in out
