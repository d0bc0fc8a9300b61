"""The real-cluster benchmark still runs (tiny cluster, short windows), follows its procedure
(convergence from membership events, crashes one after the other, memberlist run once per
crash); no figure is asserted."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys
from types import ModuleType

import pytest

from swimnet.membership.events import MemberFailed, MemberJoined, MemberLeft, MemberSuspected
from swimnet.membership.member import Member
from swimnet.wire.messages import State

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
    results = bench.run(tmp_path, sizes=(4,), memberlist=None, crashes=2)
    assert [(r["nodes"], r["encrypted"]) for r in results] == [(4, False), (4, True)]
    for result in results:
        for key in ("converge_s", "steady_cpu_ms_per_node_s", "steady_bytes_per_node_s", "rss_kb_per_node"):
            assert key in result
        assert not any(k.startswith("drop_auth") for k in result["drops"])
        # convergence from membership events: one time per node; all N at once when the last got there
        per_node = result["converge_per_node_s"]
        assert len(per_node) == 4 and result["converge_s"] == max(per_node)
        assert result["converge_verified"] and result["converge_events_dropped"] == 0
        assert result["converge_node_s"]["max"] == max(per_node)
        assert bench.swimnet_summary(result)["converge_node_p50_s"] == result["converge_node_s"]["median"]
        # catch-ups counted at the last join and at convergence: at most 4 per join (3 joins)
        assert 0 <= result["catch_ups_by_joins_done"] <= result["catch_ups_by_convergence"] <= 4 * 3
        # two crashes one after the other: the last nodes, never the seed, each dead everywhere
        crashes = result["crashes"]
        assert [c["victim"] for c in crashes] == ["node-003", "node-002"]
        assert [(c["detected"], c["observers"]) for c in crashes] == [(3, 3), (2, 2)]
        assert result["crash_detected_by"] == "5/5"
        assert "settle_after_s" in crashes[0]
        medians = [c["detect_s"]["median"] for c in crashes]
        assert result["crash_detect_medians_s"] == medians
        # (interpolated between the two, then rounded: equal up to the rounding)
        assert result["crash_detect_median_s"] == pytest.approx(sum(medians) / 2, abs=0.0011)
        pooled = result["crash_detect_per_observer_s"]
        assert pooled == sorted(t for c in crashes for t in c["per_observer_s"]) and len(pooled) == 5
        plot = tmp_path / f"realcluster_n4_{'encrypted' if result['encrypted'] else 'plaintext'}.png"
        assert plot.exists() == (importlib.util.find_spec("matplotlib") is not None)
    written = json.loads((tmp_path / "realcluster.json").read_text())
    assert written["results"] == results
    assert written["settings"]["crashes"] == 2


def test_convergence_is_read_from_membership_events() -> None:
    """Each node's first time with all N members, and the first time all had them at once,
    as the harness's EventDelegate counts: joined minus failed or left."""
    bench = _load()

    def member(name: str) -> Member:
        return Member(name, ("127.0.0.1", 7000), State.ALIVE, 1)

    views = [bench._EventView({"a"}, 3), bench._EventView({"b"}, 3), bench._EventView({"c"}, 3)]
    clock = bench._ConvergeClock(views)
    steps = [
        (0, MemberJoined(member("b")), 1.0),
        (1, MemberJoined(member("a")), 1.1),
        (0, MemberJoined(member("c")), 2.0),  # a: full
        (0, MemberSuspected(member("c")), 2.1),  # a suspected member still counts
        (1, MemberJoined(member("c")), 2.5),  # b: full
        (0, MemberFailed(member("c")), 2.6),  # a: no longer full
        (2, MemberJoined(member("a")), 3.0),
        (2, MemberJoined(member("b")), 3.5),  # c: full, but a is not
        (0, MemberJoined(member("c")), 4.0),  # all at once
        (1, MemberLeft(member("a")), 5.0),
    ]
    for index, event, now in steps:
        clock.apply(index, event, now)
        if now < 4.0:
            assert not clock.all_full.is_set()
    assert [view.full_at for view in views] == [2.0, 2.5, 3.5]
    assert clock.converged_at == 4.0 and clock.all_full.is_set()
    assert clock.full_now == 2


def test_crash_victims_are_the_last_nodes_never_the_seed() -> None:
    bench = _load()
    assert bench.victims(10, 3) == [9, 8, 7]
    assert bench.victims(3, 1) == [2]
    for n, count in ((3, 2), (10, 0), (10, 9)):
        with pytest.raises(ValueError):
            bench.victims(n, count)


def test_crash_summary_pools_observers_and_takes_the_median_of_per_crash_medians() -> None:
    bench = _load()
    crashes = [
        {"victim": "x", "observers": 3, "detected": 3, "others_cpu_cores": 0.1,
         "per_observer_s": [1.0, 2.0, 9.0], "detect_s": {"median": 2.0}},
        {"victim": "y", "observers": 2, "detected": 2, "others_cpu_cores": 0.3,
         "per_observer_s": [3.0, 5.0], "detect_s": {"median": 4.0}},
        {"victim": "z", "observers": 1, "detected": 1, "others_cpu_cores": 0.2,
         "per_observer_s": [7.0], "detect_s": {"median": 7.0}},
    ]  # fmt: skip
    summary = bench.crash_summary(crashes)
    assert summary["crash_detected_by"] == "6/6" and summary["crash_count"] == 3
    assert summary["crash_detect_medians_s"] == [2.0, 4.0, 7.0]
    assert summary["crash_detect_median_s"] == 4.0  # not the pooled median (4.0 too here), see below
    assert summary["crash_detect_per_observer_s"] == [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
    assert summary["crash_detect_s"]["median"] == 4.0 and summary["crash_detect_s"]["max"] == 9.0
    crashes[2]["per_observer_s"] = [7.0, 8.0, 8.5, 9.5]
    assert bench.crash_summary(crashes)["crash_detect_median_s"] == 4.0
    assert bench.crash_summary(crashes)["crash_detect_s"]["median"] == 7.0


_FAKE_HARNESS = """#!{python}
import json, sys
args = sys.argv[1:]
flag = lambda name, default=None: args[args.index(name) + 1] if name in args else default
victim = int(flag("-victim", str(int(flag("-n")) - 1)))
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
n = int(flag("-n"))
print(json.dumps({{
    "converge_s": 2.0 + victim, "steady": {{"cpu_ms_per_node_per_s": 0.5 + victim,
    "total_bytes_per_node_per_s": 100.0, "window_s": float(flag("-window"))}},
    "failure": {{"detected": n - 1, "observers": n - 1, "min_s": 1.0, "median_s": 10.0 - victim,
                 "p90_s": 12.0, "max_s": 13.0, "phase": {{"others_cpu_cores": 0.1}}}},
}}))
"""


def test_memberlist_runs_once_per_crash_with_the_same_victims(tmp_path: pathlib.Path) -> None:
    """The harness crashes one node per run: K crashes are K runs, victims as ours, the
    extra runs with a short window; the steady figures come from the first run, the crash
    figure is the median of every run's median."""
    bench = _load()
    log = tmp_path / "args.jsonl"
    binary = tmp_path / "fake-harness"
    binary.write_text(_FAKE_HARNESS.format(python=sys.executable, log=str(log)))
    binary.chmod(0o755)
    runs = bench.run_memberlist_series(
        str(binary), 10, False, 3, window=30.0, settle=2.0, settle_max=60.0, join_interval=0.0
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[c.index("-victim") + 1] for c in calls] == ["9", "8", "7"]
    assert [c[c.index("-window") + 1] for c in calls] == ["30.0", "5.0", "5.0"]
    summary = bench.memberlist_summary(runs)
    assert summary["converge_s"] == 11.0 and summary["steady_cpu_ms_per_node_s"] == 9.5
    assert summary["crash_detect_medians_s"] == [1.0, 2.0, 3.0]
    assert summary["crash_detect_median_s"] == 2.0
    assert summary["crash_detected_by"] == "27/27" and summary["crash_runs_failed"] == 0
    assert len(summary["crash_detect_quantiles_s"]) == 3


_BUSY_HARNESS = """#!{python}
import json, sys, time
args = sys.argv[1:]
flag = lambda name, default=None: args[args.index(name) + 1] if name in args else default
victim, n, window = int(flag("-victim")), int(flag("-n")), float(flag("-window"))
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
print("[   0.050s] converged after 0.050s", file=sys.stderr, flush=True)
end = time.monotonic() + window + 3.0  # a margin: our window ends within it under load
while time.monotonic() < end:  # its steady state: busy, so the CPU read beside it is not 0
    sum(range(1000))
print(json.dumps({{
    "converge_s": 0.05, "settle_s": 0.3, "steady": {{"cpu_ms_per_node_per_s": 7.0, "window_s": window}},
    "failure": {{"detected": n - 1, "observers": n - 1, "median_s": 1.0 + victim}},
}}))
"""


@pytest.mark.slow
def test_memberlist_first_run_is_measured_beside_our_steady_window(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash-only runs go first, alone; the first run starts once our cluster has drained,
    and our steady window opens the lead after its convergence, inside its own window: both
    processes' CPU over that one window is what the table compares."""
    bench = _load()
    monkeypatch.setattr(bench, "BESIDE_LEAD_S", 0.2)
    log = tmp_path / "args.jsonl"
    binary = tmp_path / "busy-harness"
    binary.write_text(_BUSY_HARNESS.format(python=sys.executable, log=str(log)))
    binary.chmod(0o755)
    bench.run(
        tmp_path, sizes=(4,), encryption=(False,), memberlist=str(binary), window=0.5, settle=0.2,
        settle_max=5.0, crashes=2,
    )  # fmt: skip
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[c.index("-victim") + 1] for c in calls] == ["2", "3"], "crash-only run first"
    assert [float(c[c.index("-window") + 1]) for c in calls] == pytest.approx([0.5, 0.5 + 0.2 + 0.2])
    written = json.loads((tmp_path / "realcluster.json").read_text())
    (pair,) = written["side_by_side"]
    (result,) = written["results"]
    assert result["partner_window_inside"] is True  # its settle (0.3 s) ended within the lead (0.4 s)
    ml = pair["memberlist"]
    assert ml["steady_cpu_same_window"] and ml["steady_cpu_own_window_ms_per_node_s"] == 7.0
    assert ml["steady_cpu_ms_per_node_s"] == result["partner_cpu_ms_per_node_s"] > 0
    assert pair["ratios"]["steady_cpu_ms_per_node_s"] == round(
        result["steady_cpu_ms_per_node_s"] / result["partner_cpu_ms_per_node_s"], 3
    )
    assert ml["crash_detect_medians_s"] == [4.0, 3.0]  # victims 3 (beside), 2 (alone)
    assert any("both clusters over one window" in line for line in written["table"])


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
    summary = _load().memberlist_summary([raw])
    assert summary["converge_node_p50_s"] == 1.0
    assert summary["converge_node_quantiles_s"] == {0.5: 1.0, 0.9: 2.0, 0.99: 2.4, 1.0: 2.5}
    assert summary["crash_detect_quantiles_s"] == [{0.0: 5.0, 0.5: 9.0, 0.9: 11.0}]  # no max_s: left out
