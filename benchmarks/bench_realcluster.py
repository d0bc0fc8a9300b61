"""Benchmark: a real cluster of N trio runtimes in ONE process (one trio run) on 127.0.0.1,
side by side with hashicorp/memberlist measured by the same procedure.

The procedure of the reference harness (/work/shared/peers/memberlist-bench, `main.go`), LAN
preset, each node bound to 127.0.0.1 on its own port (port 0):
1. converge: nodes 1..N-1 join node 0 one after another (`--join-interval` apart; 20 ms
   by default from N = 500, as the harness needs on 2 cores); every node's membership
   events are followed from before the first join, as the harness follows its
   EventDelegates (members joined minus failed or left): `converge_per_node_s` is the time
   from the first join until each node first held all N, `converge_s` until all held them
   at once (None, with `converged` false, after CONVERGE_TIMEOUT_S); the views are then
   checked once (`converge_verified`); a join that fails is counted (`join_errors`) and
   the run goes on, as the memberlist harness does;
2. settle: 2 s, then until the join gossip has drained (UDP <= 2.2 packets per node per
   probe interval over one second), at most `--settle-max` s; then a full GC;
3. steady state: a `--window` s window (120 s by default, so the periodic push-pulls,
   every 90 s at N = 100 and 120 s at N = 200, fall inside it) of process CPU (user+sys,
   getrusage) per node per second and UDP+TCP payload bytes sent (stream frames with their
   4-byte length prefix) per node per second;
4. memory: resident set size growth since before the nodes started, per node;
5. crashes: `--crashes` K nodes (3 by default), the last K (N-1 first, never the seed), are
   closed without leaving (cancelled) one after the other, each once the previous one is
   dead at every observer and, after the fixed settle, its gossip has drained; per crash
   the time until each other live node reports it dead (MemberFailed). One crash is one
   draw of the time to the first suspicion, so the compared figure
   (`crash_detect_median_s`) is the median of the K per-crash medians; the per-observer
   times of all crashes are pooled too (`crash_detect_per_observer_s`, `crash_detect_s`).
Each size runs plaintext and encrypted (swimnet: XChaCha20-Poly1305, one key, a label;
memberlist: AES-256-GCM, its `-encrypt`). When the memberlist harness binary is present
(`--memberlist PATH`, env MEMBERLIST_BENCH, default /tmp/memberlist-bench) it runs in
every (size, encryption) cell, with the same window, settle and join pacing, and both
results are written side by side with the ratios swimnet / memberlist (below 1: swimnet
is better). The harness crashes one node per run (`-victim`) and takes no seed, so its K
crashes are K runs crashing the same victims: the first with the whole window (the
steady, convergence and memory figures compared are its own), the others with a
MEMBERLIST_EXTRA_WINDOW_S window, run alone before our cluster starts. The first runs
BESIDE our steady window: it starts once our cluster has drained (its joins run beside
our idle cluster, ~0.03 of a core), and our window opens the fixed settle plus
BESIDE_LEAD_S after it logs its convergence, inside its own (longer) window; the CPU
compared is both processes' over that one window (its process's from /proc; its own
window's figure is kept beside), so a drift of the host's speed between two windows is
not read as a difference (the same tree read 0.308 and 0.440 ms per node-second in two
windows back to back of two runs, memberlist 0.296 and 0.372); its crash figure is the
median of the K runs' medians,
like ours (it publishes quantiles per run, not each observer's time, so only ours is
pooled). Like with like: K draws of a per-crash median on both sides; ours crash into a
cluster of N-j after j crashes (the suspicion timeout's log10 scale barely moves: 2.000
at 100, 1.991 at 98), the harness's into a fresh cluster of N. Every phase records
`others_cpu_cores`: the machine's busy CPU not spent by this process (wall-clock figures
mean little when it is high).

Beside the medians, every run keeps the distributions behind them: the time each node
first saw all N alive (`converge_per_node_s`, quantiles in `converge_node_s`), each
crash's detection per observer (`crashes`) and all of them pooled
(`crash_detect_per_observer_s`); quantiles are interpolated as the harness computes them.
With matplotlib, one PNG per (size, encryption) cell plots both as cumulative
distributions, memberlist's published quantiles (per run, for the crashes) as points
beside them.

Prints one JSON line per run and a table, writes ``out_dir/realcluster.json``;
``python -m benchmarks realcluster`` (or ``python benchmarks/bench_realcluster.py --help``
for the flags: sizes, window, crashes, encryption, memberlist path). Nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any

import trio

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import CdfPanel, cdf_png
from swimnet.config import Config, format_address
from swimnet.errors import JoinError
from swimnet.membership.events import MemberEvent, MemberFailed, MemberJoined, MemberLeft
from swimnet.runtime import Node, open_node
from swimnet.security import Keyring
from swimnet.wire.messages import State

SIZES = (100, 200, 500)
SETTLE_S = 2.0
SETTLE_MAX_S = 120.0
QUIET_PACKETS_PER_PROBE = 2.2
"""The harness's drained state: a ping and an ack per node per probe interval, plus 10%."""
WINDOW_S = 120.0
PACED_FROM = 500
PACED_INTERVAL_S = 0.020
"""Default pause between joins at N >= PACED_FROM (the harness's advice for 2 cores)."""
CONVERGE_TIMEOUT_S = 300.0
DETECT_TIMEOUT_S = 300.0
CRASHES = 3
"""Nodes crashed one after the other per run (each crash is one draw of the detection time)."""
EVENT_BUFFER_PER_NODE = 4
"""Membership events buffered per node while following convergence, times N (none dropped)."""
MEMBERLIST_EXTRA_WINDOW_S = 5.0
"""Steady window of the memberlist runs after the first, which are run for their crash only."""
BESIDE_LEAD_S = 4.0
"""Seconds after the fixed settle from the harness's convergence to our steady window beside
its own (its drain wait must end within them; its window is as much longer than ours)."""
MEMBERLIST_ENV = "MEMBERLIST_BENCH"
MEMBERLIST_DEFAULT = "/tmp/memberlist-bench"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` (/proc/PID/stat), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine (/proc/stat, USER_HZ = 100)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return math.nan
    return (sum(fields) - fields[3] - fields[4]) / 100.0


class _Phase:
    """CPU of this process, machine-wide busy CPU and wall time from one moment on."""

    def __init__(self) -> None:
        self.cpu, self.busy, self.wall = _cpu_s(), _machine_busy_s(), trio.current_time()

    def others_cores(self) -> float:
        wall = max(1e-9, trio.current_time() - self.wall)
        return round(max(0.0, (_machine_busy_s() - self.busy) - (_cpu_s() - self.cpu)) / wall, 3)


_TRAFFIC = ("udp_bytes_sent", "stream_bytes_sent", "udp_packets_sent", "streams_opened")


def _traffic(nodes: list[Node]) -> dict[str, int]:
    """Sums over all nodes of the runtime's sent-traffic counters."""
    totals = dict.fromkeys(_TRAFFIC, 0)
    for node in nodes:
        stats = node.stats
        for key in _TRAFFIC:
            totals[key] += stats[key]
    return totals


def _catch_ups(nodes: list[Node]) -> int:
    """Catch-up push-pulls opened so far (a join phase's: those before its last join add
    CPU to a CPU-bound phase; see swimnet.membership.swim's rules)."""
    return sum(node.stats["catch_up_push_pulls"] for node in nodes)


def _sees_all(node: Node, n: int) -> bool:
    return sum(1 for state in node.view().values() if state == State.ALIVE) == n


def _quantile(ordered: list[float], q: float) -> float:
    """The harness's quantile of sorted values: linear interpolation between the closest
    ranks (numpy's default), so both sides' figures are computed alike."""
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _distribution(values: list[float]) -> dict[str, float]:
    """min, median, p90, p99 and max of a non-empty list, rounded to the millisecond."""
    ordered = sorted(values)
    marks = {"min": 0.0, "median": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
    return {name: round(_quantile(ordered, q), 3) for name, q in marks.items()}


class _Member:
    """A node running in its own task, so it can be crashed (cancelled) on its own."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.node: Node | None = None

    async def run(self, config: Config, *, task_status: trio.TaskStatus[Node]) -> None:
        try:
            with self.scope:
                async with open_node(config) as node:
                    self.node = node
                    task_status.started(node)
                    await trio.sleep_forever()
        finally:
            self.done.set()


class _EventView:
    """One node's members as its membership events tell them, as the harness's EventDelegate
    counts them: joined, minus failed or left (a suspected member still counts); and the
    first time it held all N."""

    def __init__(self, names: Iterable[str], n: int) -> None:
        self.members = set(names)
        self.n = n
        self.full_at: float | None = None

    @property
    def full(self) -> bool:
        return len(self.members) == self.n

    def apply(self, event: MemberEvent, now: float) -> None:
        if isinstance(event, MemberJoined):
            self.members.add(event.member.name)
            if self.full_at is None and self.full:
                self.full_at = now
        elif isinstance(event, MemberFailed | MemberLeft):
            self.members.discard(event.member.name)


class _ConvergeClock:
    """Every node's `_EventView`; `all_full` is set the first time every node holds all N at
    once (the harness's `converge_s`), at `converged_at`."""

    def __init__(self, views: list[_EventView]) -> None:
        self.views = views
        self.full_now = sum(1 for view in views if view.full)
        self.converged_at: float | None = None
        self.all_full = trio.Event()

    def apply(self, index: int, event: MemberEvent, now: float) -> None:
        view = self.views[index]
        was = view.full
        view.apply(event, now)
        self.full_now += view.full - was
        if self.full_now == len(self.views) and self.converged_at is None:
            self.converged_at = now
            self.all_full.set()


async def _converge(nodes: list[Node], join_interval: float, result: dict[str, Any]) -> None:
    """Sequential joins through node 0; every node's view followed from its membership events
    from before the first join (nothing polls), as the harness follows its EventDelegates:
    `converge_per_node_s` holds the time each node first saw all N, `converge_s` the first
    time all did at once; then the views are checked once (`converge_verified`)."""
    n = len(nodes)
    seed = format_address(nodes[0].address)
    views = [_EventView((m for m, st in node.view().items() if st == State.ALIVE), n) for node in nodes]
    clock = _ConvergeClock(views)
    dropped = [0]
    phase = _Phase()
    start = trio.current_time()  # reset once every node's events are followed

    async def follow(node: Node, index: int, *, task_status: trio.TaskStatus[None]) -> None:
        async with node.subscribe(buffer=EVENT_BUFFER_PER_NODE * n) as events:
            task_status.started()
            try:
                async for event in events:
                    clock.apply(index, event, trio.current_time() - start)
            finally:
                dropped[0] += events.dropped

    async with trio.open_nursery() as followers:
        for index, node in enumerate(nodes):
            await followers.start(follow, node, index)
        start = trio.current_time()
        join_errors = 0
        for i, node in enumerate(nodes[1:]):
            if join_interval and i:
                await trio.sleep(join_interval)
            try:
                await node.join([seed])
            except JoinError:  # counted, and the run goes on (as the memberlist harness does)
                join_errors += 1
        result["joins_done_s"] = round(trio.current_time() - start, 3)
        result["catch_ups_by_joins_done"] = _catch_ups(nodes)
        result["join_errors"] = join_errors
        with trio.move_on_after(max(0.0, CONVERGE_TIMEOUT_S - (trio.current_time() - start))):
            await clock.all_full.wait()
        followers.cancel_scope.cancel()
    converged_at = clock.converged_at
    result["converge_s"] = None if converged_at is None else round(converged_at, 3)
    result["converged"] = converged_at is not None
    result["converge_verified"] = all(_sees_all(node, n) for node in nodes)
    result["converge_events_dropped"] = dropped[0]
    first_full = sorted(round(v.full_at, 3) for v in views if v.full_at is not None)
    if first_full:
        result["converge_node_s"] = _distribution(first_full)
    result["converge_per_node_s"] = first_full
    result["converge_cpu_s"] = round(_cpu_s() - phase.cpu, 3)
    result["catch_ups_by_convergence"] = _catch_ups(nodes)
    result["converge_others_cpu_cores"] = phase.others_cores()


async def _settle(
    nodes: list[Node], config: Config, settle: float, settle_max: float, result: dict[str, Any]
) -> None:
    """The fixed settle, then until the join gossip has drained (as the harness does)."""
    start = trio.current_time()
    await trio.sleep(settle)
    limit = QUIET_PACKETS_PER_PROBE / config.probe_interval
    quiet = False
    deadline = trio.current_time() + settle_max
    prev, t_prev = _traffic(nodes)["udp_packets_sent"], trio.current_time()
    while trio.current_time() < deadline:
        await trio.sleep(1.0)
        cur, t_cur = _traffic(nodes)["udp_packets_sent"], trio.current_time()
        rate = (cur - prev) / max(1e-9, t_cur - t_prev) / len(nodes)
        prev, t_prev = cur, t_cur
        if rate <= limit:
            quiet = True
            break
    result["settle_s"] = round(trio.current_time() - start, 3)
    result["settle_quiet_reached"] = quiet


async def _steady(
    nodes: list[Node], window: float, result: dict[str, Any], partner: tuple[int, int] | None = None
) -> None:
    """The steady window; with `partner` (the pid and size of the memberlist harness's cluster,
    in its own steady state), that process's CPU over the same window too
    (`partner_cpu_ms_per_node_s`)."""
    n = len(nodes)
    gc.collect()  # do not charge join-phase garbage to the window (the harness runs a GC too)
    phase = _Phase()
    partner_cpu = None if partner is None else _process_cpu_s(partner[0])
    before, t0 = _traffic(nodes), trio.current_time()
    await trio.sleep(window)
    elapsed = trio.current_time() - t0
    cpu, after = _cpu_s() - phase.cpu, _traffic(nodes)
    if partner is not None and partner_cpu is not None:
        partner_end = _process_cpu_s(partner[0])
        if partner_end is not None:
            result["partner_cpu_ms_per_node_s"] = round(
                1000 * (partner_end - partner_cpu) / partner[1] / elapsed, 4
            )
    rate = {key: (after[key] - before[key]) / n / elapsed for key in _TRAFFIC}
    result["steady_window_s"] = round(elapsed, 3)
    result["steady_cpu_ms_per_node_s"] = round(1000 * cpu / n / elapsed, 4)
    result["steady_bytes_per_node_s"] = round(rate["udp_bytes_sent"] + rate["stream_bytes_sent"], 1)
    result["steady_udp_bytes_per_node_s"] = round(rate["udp_bytes_sent"], 1)
    result["steady_tcp_bytes_per_node_s"] = round(rate["stream_bytes_sent"], 1)
    result["steady_udp_packets_per_node_s"] = round(rate["udp_packets_sent"], 3)
    result["steady_streams_opened_per_node_s"] = round(rate["streams_opened"], 4)
    result["steady_others_cpu_cores"] = phase.others_cores()


async def _steady_beside(
    nodes: list[Node], window: float, harness: list[str], lead: float, result: dict[str, Any]
) -> dict[str, Any]:
    """The steady window with the memberlist harness's first run beside it (`harness`: its
    arguments, its window BESIDE_LEAD_S + `lead` longer than ours): started once our cluster
    has drained, so its joins run beside our idle cluster; our window opens `lead` s after it
    logs its convergence (its fixed settle plus BESIDE_LEAD_S: its drain wait ends within it
    when its gossip drains in time, `partner_window_inside`), and measures both processes'
    CPU (`partner_cpu_ms_per_node_s`): one window for both, so a drift of the host's speed
    between two windows is not read as a difference. Then waits for the harness to finish
    (its crash) and returns its JSON, or an error."""
    n = int(harness[harness.index("-n") + 1])
    budget = CONVERGE_TIMEOUT_S + 2 * lead + window + DETECT_TIMEOUT_S + 120
    proc = await trio.lowlevel.open_process(harness, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = bytearray(), bytearray()
    marker = b"] converged after "  # its log line once every node held all N
    started = trio.Event()  # it logged its convergence, or it exited

    async def read(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into += chunk
            if into is err and marker in err:
                started.set()

    async def exited() -> None:
        await proc.wait()
        started.set()

    with trio.move_on_after(budget) as limit:
        async with trio.open_nursery() as readers:
            assert proc.stdout is not None and proc.stderr is not None
            readers.start_soon(read, proc.stdout, out)
            readers.start_soon(read, proc.stderr, err)
            readers.start_soon(exited)
            with trio.move_on_after(CONVERGE_TIMEOUT_S + 60):
                await started.wait()
            if proc.returncode is None and marker in err:
                await trio.sleep(lead)
                await _steady(nodes, window, result, partner=(proc.pid, n))
            else:
                await _steady(nodes, window, result)
            await proc.wait()
    if limit.cancelled_caught:
        proc.kill()
        await proc.wait()
        return {"error": f"TimeoutExpired: the harness ran over {budget:.0f} s"}
    raw = _harness_json(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    settle = raw.get("settle_s")
    result["partner_window_inside"] = isinstance(settle, int | float) and settle <= lead
    return raw


async def _crash_one(victim: _Member, observers: list[Node]) -> dict[str, Any]:
    """Crash `victim` (cancelled, no leave); the time until each observer reports it dead."""
    assert victim.node is not None
    name = victim.node.name
    detect: list[float] = []

    async def watch(node: Node, crashed: trio.Event, started: trio.Event) -> None:
        async with node.subscribe() as events:
            started.set()
            await crashed.wait()
            t_crash = trio.current_time()
            async for event in events:
                if isinstance(event, MemberFailed) and event.member.name == name:
                    detect.append(trio.current_time() - t_crash)
                    return

    crashed = trio.Event()
    phase = _Phase()
    with trio.move_on_after(DETECT_TIMEOUT_S):
        async with trio.open_nursery() as watchers:
            for node in observers:
                started = trio.Event()
                watchers.start_soon(watch, node, crashed, started)
                await started.wait()
            victim.scope.cancel()
            await victim.done.wait()
            crashed.set()
    crash: dict[str, Any] = {
        "victim": name,
        "observers": len(observers),
        "detected": len(detect),
        "others_cpu_cores": phase.others_cores(),
        "per_observer_s": sorted(round(t, 3) for t in detect),
    }
    if detect:
        crash["detect_s"] = _distribution(detect)
    return crash


async def _crashes(
    members: list[_Member],
    nodes: list[Node],
    count: int,
    config: Config,
    settle: float,
    settle_max: float,
    result: dict[str, Any],
) -> None:
    """Crash the last `count` nodes one after the other (distinct victims, never the seed),
    each once the previous one is dead everywhere and, after the fixed settle, its gossip has
    drained (as before the first); pooled and per-crash detection times."""
    crashes: list[dict[str, Any]] = []
    live = list(range(len(nodes)))
    for victim in victims(len(nodes), count):
        if crashes:
            between: dict[str, Any] = {}
            await _settle([nodes[i] for i in live], config, settle, settle_max, between)
            crashes[-1]["settle_after_s"] = between["settle_s"]
        live.remove(victim)
        crash = await _crash_one(members[victim], [nodes[i] for i in live])
        crashes.append(crash)
        if crash["detected"] < crash["observers"]:
            break  # not dead everywhere in time: the next crash would not follow the rule
    result.update(crash_summary(crashes))


def victims(n: int, count: int) -> list[int]:
    """The nodes crashed, in order: the last `count` (the harness's default victim first),
    never node 0 (the seed) and leaving it one observer at least."""
    if count < 1 or count > n - 2:
        raise ValueError(f"crashes: must be 1..{n - 2} at N = {n}, got {count}")
    return [n - 1 - j for j in range(count)]


def crash_summary(crashes: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures of a series of crashes: `crash_detect_median_s`, the compared figure,
    is the median of the per-crash medians (each crash one draw, as each memberlist run);
    `crash_detect_s` and `crash_detect_per_observer_s` pool every observer of every crash."""
    pooled = sorted(t for crash in crashes for t in crash["per_observer_s"])
    medians = [crash["detect_s"]["median"] for crash in crashes if "detect_s" in crash]
    out: dict[str, Any] = {
        "crashes": crashes,
        "crash_count": len(crashes),
        "crash_detected_by": f"{sum(c['detected'] for c in crashes)}/{sum(c['observers'] for c in crashes)}",
        "crash_detect_medians_s": medians,
        "crash_detect_median_s": round(_quantile(sorted(medians), 0.5), 3) if medians else None,
        "crash_detect_per_observer_s": pooled,
        "crash_others_cpu_cores": max((c["others_cpu_cores"] for c in crashes), default=None),
    }
    if pooled:
        out["crash_detect_s"] = _distribution(pooled)
    return out


async def _measure(
    n: int,
    encrypted: bool = False,
    *,
    window: float | None = None,
    settle: float | None = None,
    settle_max: float | None = None,
    join_interval: float | None = None,
    crashes: int = CRASHES,
    beside: list[str] | None = None,
) -> dict[str, Any]:
    """One cell: our cluster's whole procedure; with `beside` (the harness's command line), its
    first run beside our steady window (`_steady_beside`), its JSON in `memberlist_beside`."""
    window = WINDOW_S if window is None else window
    settle = SETTLE_S if settle is None else settle
    settle_max = SETTLE_MAX_S if settle_max is None else settle_max
    join_interval = _default_interval(n) if join_interval is None else join_interval
    rss_before = _rss_bytes()
    members = [_Member() for _ in range(n)]
    key = os.urandom(32)
    result: dict[str, Any] = {
        "benchmark": "realcluster",
        "impl": "swimnet",
        "nodes": n,
        "preset": "lan",
        "encrypted": encrypted,
        "join_interval_ms": round(1000 * join_interval, 3),
        "crashes_planned": crashes,
        "loadavg_start": _loadavg(),
    }
    async with trio.open_nursery() as nursery:
        nodes: list[Node] = []
        for i, member in enumerate(members):
            security: dict[str, Any] = {"keyring": Keyring([key]), "label": "bench"} if encrypted else {}
            config = Config.lan(name=f"node-{i:03d}", bind="127.0.0.1:0", **security)
            nodes.append(await nursery.start(member.run, config))
        await _converge(nodes, join_interval, result)
        await _settle(nodes, nodes[0].config, settle, settle_max, result)
        if beside is None:
            await _steady(nodes, window, result)
        else:
            result["memberlist_beside"] = await _steady_beside(
                nodes, window, beside, settle + BESIDE_LEAD_S, result
            )
        result["rss_mb_total"] = round(_rss_bytes() / 2**20, 1)
        result["rss_kb_per_node"] = round((_rss_bytes() - rss_before) / n / 1024, 1)
        await _crashes(members, nodes, crashes, nodes[0].config, settle, settle_max, result)
        totals: Counter[str] = Counter()
        crashed = set(victims(n, crashes))
        for i, node in enumerate(nodes):
            if i not in crashed:
                totals.update(node.stats)
        result["drops"] = {
            k: v for k, v in sorted(totals.items()) if k.startswith(("drop_", "internal_error"))
        }
        result["streams_failed"] = {k: v for k, v in sorted(totals.items()) if k.startswith("stream_failed_")}
        result["loadavg_end"] = _loadavg()
        nursery.cancel_scope.cancel()
    return result


def _default_interval(n: int) -> float:
    return PACED_INTERVAL_S if n >= PACED_FROM else 0.0


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


# -- memberlist ---------------------------------------------------------------------------


def memberlist_binary(path: str | None = None) -> str | None:
    """The harness binary to run: `path`, else $MEMBERLIST_BENCH, else the default; None
    when it is not an executable file."""
    candidate = path or os.environ.get(MEMBERLIST_ENV) or MEMBERLIST_DEFAULT
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None


def memberlist_args(
    binary: str,
    n: int,
    encrypted: bool,
    *,
    window: float,
    settle: float,
    settle_max: float,
    join_interval: float,
    victim: int | None = None,
) -> list[str]:
    """The harness's command line for our procedure (crashing node `victim`, by default its
    last)."""
    args = [
        binary,
        "-n", str(n),
        "-config", "lan",
        "-window", str(window),
        "-settle", str(settle),
        "-settle-max", str(settle_max),
        "-join-interval", f"{round(join_interval * 1e6)}us",
        "-pushpull-probe=false",
        "-converge-timeout", str(CONVERGE_TIMEOUT_S),
        "-fail-timeout", str(DETECT_TIMEOUT_S),
    ]  # fmt: skip
    if encrypted:
        args.append("-encrypt")
    if victim is not None:
        args += ["-victim", str(victim)]
    return args


def run_memberlist(args: list[str], budget: float) -> dict[str, Any]:
    """One run of the memberlist harness (`args`: `memberlist_args`), alone, for at most
    `budget` seconds; its JSON, or an error."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=budget, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return _harness_json(done.returncode, done.stdout, done.stderr)


def _harness_json(returncode: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    """The harness's result: the last JSON line of its output, or an error."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode != 0 or not lines:
        return {"error": f"exit {returncode}", "stderr_tail": stderr[-2000:]}
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        return {"error": f"bad JSON: {exc}", "stderr_tail": stderr[-2000:]}
    return parsed


def run_memberlist_series(
    binary: str,
    n: int,
    encrypted: bool,
    crashes: int,
    *,
    window: float,
    settle: float,
    settle_max: float,
    join_interval: float,
    first: bool = True,
) -> list[dict[str, Any]]:
    """The harness crashes one node per run and takes no seed (its randomness is its own), so
    `crashes` draws are `crashes` runs, crashing the same victims as swimnet's run, in the
    same order: the first with the whole window (its steady figures are the ones compared),
    the others with a MEMBERLIST_EXTRA_WINDOW_S window, run for their crash only. Without
    the `first` (it runs beside our steady window: `_steady_beside`), the others only."""
    runs = []
    for j, victim in enumerate(victims(n, crashes)):
        if j == 0 and not first:
            continue
        run_window = window if j == 0 else min(window, MEMBERLIST_EXTRA_WINDOW_S)
        args = memberlist_args(
            binary,
            n,
            encrypted,
            window=run_window,
            settle=settle,
            settle_max=settle_max,
            join_interval=join_interval,
            victim=victim,
        )
        budget = CONVERGE_TIMEOUT_S + settle + settle_max + run_window + DETECT_TIMEOUT_S + 120
        runs.append(run_memberlist(args, budget))
        if "error" in runs[0]:
            break
    return runs


def memberlist_summary(runs: list[dict[str, Any]], same_window_cpu: float | None = None) -> dict[str, Any]:
    """The figures compared, under swimnet's names: convergence, steady state and memory from
    the first run; crash detection from every run (the median of their medians, as swimnet's
    over its crashes; the harness publishes quantiles per run, not each observer's time).
    `same_window_cpu`: the first run's CPU measured over our steady window (it ran beside
    it), compared instead of the CPU of its own window (`steady_cpu_own_window_ms_per_node_s`)."""
    raw: dict[str, Any] = runs[0] if runs else {"error": "no run"}
    if "error" in raw:
        return {"error": raw["error"]}
    steady: dict[str, Any] = raw.get("steady", {})
    own_cpu = steady.get("cpu_ms_per_node_per_s")
    failures = [run.get("failure", {}) for run in runs if "error" not in run]
    medians = [f["median_s"] for f in failures if isinstance(f.get("median_s"), int | float)]
    detected = sum(f.get("detected", 0) for f in failures)
    return {
        "converge_s": raw.get("converge_s"),
        "converge_node_p50_s": raw.get("converge_node_p50_s"),
        "converge_cpu_s": raw.get("join_phase", {}).get("cpu_s"),
        "converge_others_cpu_cores": raw.get("join_phase", {}).get("others_cpu_cores"),
        "settle_s": raw.get("settle_s"),
        "settle_quiet_reached": raw.get("settle_quiet_reached"),
        "steady_window_s": steady.get("window_s"),
        "steady_cpu_ms_per_node_s": own_cpu if same_window_cpu is None else same_window_cpu,
        "steady_cpu_same_window": same_window_cpu is not None,
        "steady_cpu_own_window_ms_per_node_s": own_cpu,
        "steady_bytes_per_node_s": steady.get("total_bytes_per_node_per_s"),
        "steady_udp_packets_per_node_s": steady.get("udp_pkts_per_node_per_s"),
        "steady_others_cpu_cores": steady.get("others_cpu_cores"),
        "crash_runs": len(runs),
        "crash_runs_failed": len(runs) - len(failures),
        "crash_detected_by": f"{detected}/{sum(f.get('observers', 0) for f in failures)}",
        "crash_detect_medians_s": medians,
        "crash_detect_median_s": round(_quantile(sorted(medians), 0.5), 4) if medians else None,
        "crash_others_cpu_cores": [
            f.get("phase", {}).get("others_cpu_cores") for f in failures if "phase" in f
        ],
        "rss_kb_per_node": raw.get("mem", {}).get("rss_per_node_kb"),
        "converge_node_quantiles_s": _present(
            {0.5: raw.get("converge_node_p50_s"), 0.9: raw.get("converge_node_p90_s"),
             0.99: raw.get("converge_node_p99_s"), 1.0: raw.get("converge_last_node_first_full_s")}
        ),
        "crash_detect_quantiles_s": [
            _present({0.0: f.get("min_s"), 0.5: f.get("median_s"), 0.9: f.get("p90_s"),
                      1.0: f.get("max_s")})
            for f in failures
        ],
    }  # fmt: skip


def _present(quantiles: dict[float, Any]) -> dict[float, float]:
    return {q: float(v) for q, v in quantiles.items() if isinstance(v, int | float)}


COMPARED = (
    ("converge_s", "join convergence (s)"),
    ("converge_node_p50_s", "  per node, median (s)"),
    ("steady_cpu_ms_per_node_s", "steady CPU (ms/node-s)"),
    ("steady_bytes_per_node_s", "bytes/node-s"),
    ("crash_detect_median_s", "crash->dead, med of K (s)"),
)


def swimnet_summary(result: dict[str, Any]) -> dict[str, Any]:
    out = {key: result.get(key) for key, _ in COMPARED}
    out["converge_node_p50_s"] = result.get("converge_node_s", {}).get("median")
    for key in (
        "converge_others_cpu_cores",
        "steady_others_cpu_cores",
        "crash_detected_by",
        "crash_detect_medians_s",
        "crash_detect_s",
        "settle_s",
        "partner_window_inside",
    ):
        out[key] = result.get(key)
    return out


def ratios(swimnet: dict[str, Any], memberlist: dict[str, Any]) -> dict[str, float | None]:
    """swimnet / memberlist for every compared figure (below 1: swimnet is better)."""
    out: dict[str, float | None] = {}
    for key, _ in COMPARED:
        ours, theirs = swimnet.get(key), memberlist.get(key)
        ok = isinstance(ours, int | float) and isinstance(theirs, int | float) and theirs > 0
        out[key] = round(ours / theirs, 3) if ok else None  # type: ignore[operator]
    return out


def plot(pair: dict[str, Any], result: dict[str, Any], out_dir: pathlib.Path) -> None:
    """Convergence per node and detection per observer, as distributions: swimnet's whole
    CDF, memberlist's published quantiles as points (its harness reports no more)."""
    ml = pair.get("memberlist") or {}
    mode = "encrypted" if pair["encrypted"] else "plaintext"
    name, title = f"realcluster_n{pair['nodes']}_{mode}", f"real cluster, N = {pair['nodes']}, {mode}"
    panels: list[CdfPanel] = [
        (
            "time from the first join until the node first saw all N alive (s)",
            {"swimnet": result.get("converge_per_node_s", [])},
            {"memberlist": ml.get("converge_node_quantiles_s", {})},
        ),
        (
            "time from a crash until the observer reported it dead (s)",
            {
                f"swimnet, {result.get('crash_count', 0)} crashes pooled": result.get(
                    "crash_detect_per_observer_s", []
                )
            },
            {
                f"memberlist run {j + 1}": quantiles
                for j, quantiles in enumerate(ml.get("crash_detect_quantiles_s", []))
            },
        ),
    ]
    cdf_png(name, title, panels, out_dir)


def table(pairs: list[dict[str, Any]]) -> str:
    """The side-by-side table: memberlist, swimnet, ratio per figure and cell; under each
    cell, the per-crash medians of both sides and swimnet's pooled observers."""
    lines = [f"{'N':>5} {'enc':>5}  {'figure':<26} {'memberlist':>11} {'swimnet':>9} {'ratio':>7}"]
    for pair in pairs:
        ml, sw, ratio = pair.get("memberlist") or {}, pair["swimnet"], pair.get("ratios") or {}
        enc = "yes" if pair["encrypted"] else "no"
        for key, label in COMPARED:
            cells = [_cell(ml.get(key)), _cell(sw.get(key)), _cell(ratio.get(key))]
            lines.append(
                f"{pair['nodes']:>5} {enc:>5}  {label:<26} {cells[0]:>11} {cells[1]:>9} {cells[2]:>7}"
            )
        if ml.get("steady_cpu_same_window"):
            inside = (
                ""
                if sw.get("partner_window_inside")
                else " (NOT inside its own window: its drain wait ran long)"
            )
            lines.append(
                f"{'':>12}steady CPU: both clusters over one window{inside}; memberlist's own window: "
                f"{_cell(ml.get('steady_cpu_own_window_ms_per_node_s'))}"
            )
        pooled = sw.get("crash_detect_s") or {}
        lines.append(
            f"{'':>12}per-crash medians (s): memberlist {_cells(ml.get('crash_detect_medians_s'))}, "
            f"swimnet {_cells(sw.get('crash_detect_medians_s'))}; swimnet pooled over "
            f"{sw.get('crash_detected_by')} observers: median {_cell(pooled.get('median'))}, "
            f"p90 {_cell(pooled.get('p90'))}, max {_cell(pooled.get('max'))}"
        )
    return "\n".join(lines)


def _cells(values: Any) -> str:
    return " ".join(_cell(v) for v in values) if isinstance(values, list) and values else "-"


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


# -- driver -------------------------------------------------------------------------------


def run(
    out_dir: pathlib.Path,
    sizes: tuple[int, ...] = SIZES,
    encryption: tuple[bool, ...] = (False, True),
    *,
    memberlist: str | None = "auto",
    window: float | None = None,
    settle: float | None = None,
    settle_max: float | None = None,
    join_interval: float | None = None,
    crashes: int = CRASHES,
) -> list[dict[str, Any]]:
    """Measure every cluster size, plaintext then encrypted (one trio run each, `crashes`
    crashes in it), each after its memberlist runs (one per crash) when the binary is there
    (`memberlist`: "auto" for $MEMBERLIST_BENCH or the default path, a path, or None for
    none); print JSON lines and the table, write realcluster.json. Returns swimnet's results."""
    binary = None if memberlist is None else memberlist_binary(None if memberlist == "auto" else memberlist)
    window = WINDOW_S if window is None else window
    settle = SETTLE_S if settle is None else settle
    settle_max = SETTLE_MAX_S if settle_max is None else settle_max
    results: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for n in sizes:
        interval = _default_interval(n) if join_interval is None else join_interval
        for encrypted in encryption:
            pair: dict[str, Any] = {"nodes": n, "encrypted": encrypted, "join_interval_ms": 1000 * interval}
            timing = {"settle": settle, "settle_max": settle_max, "join_interval": interval}
            extras: list[dict[str, Any]] = []
            harness = None
            if binary is not None:  # the crash-only runs alone, then the first beside our window
                extras = run_memberlist_series(
                    binary, n, encrypted, crashes, window=window, first=False, **timing
                )
                lead = settle + BESIDE_LEAD_S
                harness = memberlist_args(
                    binary, n, encrypted, window=window + lead, victim=victims(n, crashes)[0], **timing
                )
            measure = partial(
                _measure,
                window=window,
                settle=settle,
                settle_max=settle_max,
                join_interval=interval,
                crashes=crashes,
                beside=harness,
            )
            result = trio.run(measure, n, encrypted)
            if binary is not None:
                raws = [result.pop("memberlist_beside"), *extras]
                for raw in raws:
                    print(json.dumps(raw, sort_keys=True), flush=True)
                pair["memberlist_raw"] = raws
                pair["memberlist"] = memberlist_summary(raws, result.get("partner_cpu_ms_per_node_s"))
            print(json.dumps(result, sort_keys=True), flush=True)
            results.append(result)
            pair["swimnet"] = swimnet_summary(result)
            if "memberlist" in pair:
                pair["ratios"] = ratios(pair["swimnet"], pair["memberlist"])
            pairs.append(pair)
            out_dir.mkdir(parents=True, exist_ok=True)
            plot(pair, result, out_dir)
    print(table(pairs), flush=True)
    document = {
        "benchmark": "realcluster",
        "procedure": __doc__.split("\n\n")[1].strip() if __doc__ else "",
        "settings": {
            "sizes": list(sizes),
            "window_s": window,
            "settle_s": settle,
            "settle_max_s": settle_max,
            "crashes": crashes,
            "memberlist_extra_window_s": min(window, MEMBERLIST_EXTRA_WINDOW_S),
        },
        "memberlist_binary": binary,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "side_by_side": pairs,
        "table": table(pairs).splitlines(),
        "results": results,
    }
    (out_dir / "realcluster.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--window", type=float, default=WINDOW_S, help="steady window, seconds")
    parser.add_argument("--settle", type=float, default=SETTLE_S, help="fixed settle, seconds")
    parser.add_argument("--settle-max", type=float, default=SETTLE_MAX_S, help="drain wait bound, seconds")
    parser.add_argument(
        "--crashes",
        type=int,
        default=CRASHES,
        help="nodes crashed one after the other (memberlist: as many runs, the extra ones with a "
        f"{MEMBERLIST_EXTRA_WINDOW_S:g} s window)",
    )
    parser.add_argument(
        "--join-interval-ms",
        type=float,
        default=None,
        help=f"pause between joins (default: 0, {1000 * PACED_INTERVAL_S:g} ms from N = {PACED_FROM})",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plaintext-only", action="store_true", help="skip the encrypted runs")
    mode.add_argument("--encrypted-only", action="store_true", help="skip the plaintext runs")
    parser.add_argument(
        "--memberlist",
        default=None,
        help=f"memberlist harness binary (${MEMBERLIST_ENV}, else {MEMBERLIST_DEFAULT}; skipped if absent)",
    )
    parser.add_argument("--no-memberlist", action="store_true", help="swimnet only")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent / "results"
    )
    args = parser.parse_args()
    encryption = (False,) if args.plaintext_only else (True,) if args.encrypted_only else (False, True)
    run(
        args.out,
        tuple(args.sizes),
        encryption,
        memberlist=None if args.no_memberlist else (args.memberlist or "auto"),
        window=args.window,
        settle=args.settle,
        settle_max=args.settle_max,
        join_interval=None if args.join_interval_ms is None else args.join_interval_ms / 1000.0,
        crashes=args.crashes,
    )


if __name__ == "__main__":
    main()
