"""A small soak (benchmarks/bench_soak.py): 30 nodes, 10 virtual minutes, 20% loss, crashes,
restarts, partitions, stalls and table writes at random; afterwards no live node dead, no
acknowledged write lost, no deleted entry resurrected, all views equal. The benchmark runs
200 nodes for a virtual hour."""

from __future__ import annotations

import pytest

from benchmarks.bench_soak import soak


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_soak_under_every_fault_at_once(seed: int) -> None:
    result = soak(nodes=30, duration=600.0, seed=seed)
    assert result["faults"]["crashes"] and result["faults"]["partitions"], result
    assert result["problem_count"] == 0, f"{result['problems']} -- replay with {result['replay']}"
