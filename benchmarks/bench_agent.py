"""Benchmark: one swimnet-agent in this process, many local endpoints (issue 16, item 10).

The agent is the daemon's own `run_agent` (trio, in-process, bound to 127.0.0.1 port 0,
its state directory and control socket in a temporary directory, the "local" profile).
Procedure, per variant:
1. create one network (10.0.0.0/16), then ENDPOINTS endpoints one after another through
   the control API (HTTP/1.1 over the Unix socket, one keep-alive connection, a trio client
   in the same process); each create's latency is the time from sending the request to
   the end of the answer (it includes the state file's fsync);
2. idle: after a settle of SETTLE_S, the process CPU (user+sys, `time.process_time`) over
   IDLE_S seconds of wall time, as a fraction of one core; the agent's counters say how
   often it loaded a network from the tables during the window (0 when idle is idle);
3. one `GET /v1/endpoints` (all rows) and one `GET /v1/networks`, timed.
Variants: `datapath_off` (the daemon's --no-datapath) and `fake_driver` (a driver that
only keeps the snapshots it is fed: the agent's datapath feed, without a kernel; the
results say how many snapshots it got and how many local endpoints the last one lists).
Prints a summary and writes ``out_dir/agent.json``; ``python benchmarks/bench_agent.py``
writes to ``benchmarks/results/``. Sizes come from the arguments of `run` or the
environment (SWIMNET_BENCH_AGENT_ENDPOINTS, SWIMNET_BENCH_AGENT_IDLE_S). Nothing here
asserts a figure; the targets of the issue are recorded next to the results.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import trio

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.common import out_dir as default_out_dir
from benchmarks.common import summary, write_json
from swimnet.agent.daemon.run import AgentRuntime, run_agent
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.overlay import LocalEndpointSpec, OverlaySnapshot

ENDPOINTS = 10_000
IDLE_S = 30.0
SETTLE_S = 3.0
TARGETS = {"create_p99_ms": 50.0, "idle_cpu_fraction_of_a_core": 0.01}


class RecordingDriver:
    """A datapath driver that keeps the last snapshot (and counts) and touches nothing."""

    def __init__(self, **kwargs: Any) -> None:
        self.stats: dict[str, int] = {"updates": 0}
        self.last: OverlaySnapshot | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def update(self, snapshot: OverlaySnapshot) -> None:
        self.stats["updates"] += 1
        self.last = snapshot

    async def attach(self, endpoint: LocalEndpointSpec) -> None:
        await trio.lowlevel.checkpoint()

    async def detach(self, endpoint: LocalEndpointSpec) -> None:
        await trio.lowlevel.checkpoint()

    async def fdb(self, network: str) -> list[dict[str, str]]:
        return []

    async def close(self) -> None:
        pass


class Client:
    """HTTP/1.1 with keep-alive over the control socket (the agent's own server)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def call(self, method: str, target: str, body: Any = None) -> tuple[int, Any]:
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        await self.stream.send_all(head.encode() + data)
        while b"\r\n\r\n" not in self.buffer:
            await self._more()
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = next(
            int(v) for k, _, v in (x.partition(": ") for x in lines[1:]) if k.lower() == "content-length"
        )
        while len(self.buffer) < length:
            await self._more()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, json.loads(payload)

    async def _more(self) -> None:
        chunk = await self.stream.receive_some(1 << 20)
        if not chunk:
            raise ConnectionError("the agent closed the connection")
        self.buffer += chunk


def _settings(base: pathlib.Path, datapath: bool) -> AgentSettings:
    return AgentSettings(
        name="bench",
        bind="127.0.0.1:0",
        state_dir=str(base / "state"),
        socket=str(base / "sock"),
        metrics=None,
        profile="local",
        datapath=datapath,
    )


def _ms(values: list[float]) -> dict[str, float | int]:
    return summary([v * 1000 for v in values])


async def _timed(client: Client, method: str, target: str) -> tuple[float, Any]:
    start = time.perf_counter()
    status, payload = await client.call(method, target)
    if status != 200:
        raise RuntimeError(f"{method} {target}: {status} {payload}")
    return time.perf_counter() - start, payload


async def _variant(
    name: str, endpoints: int, idle_s: float, progress: Callable[[str], None]
) -> dict[str, Any]:
    datapath = name == "fake_driver"
    with tempfile.TemporaryDirectory(prefix="swimnet-bench-agent-") as tmp:
        base = pathlib.Path(tmp)
        async with trio.open_nursery() as nursery:
            runtime: AgentRuntime = await nursery.start(
                functools.partial(
                    run_agent, _settings(base, datapath), driver_factory=RecordingDriver, handle_signals=False
                )
            )
            while not runtime.overlay.started:
                await trio.sleep(0.05)
            client = Client(await trio.open_unix_socket(runtime.socket_path))
            status, answer = await client.call(
                "POST", "/v1/networks", {"name": "bench", "subnet": "10.0.0.0/16"}
            )
            if status != 201:
                raise RuntimeError(f"network create: {status} {answer}")
            latencies: list[float] = []
            for i in range(endpoints):
                body = {"name": f"e{i}", "ip": f"10.0.{(i + 2) // 256}.{(i + 2) % 256}"}
                start = time.perf_counter()
                status, answer = await client.call("POST", "/v1/networks/bench/endpoints", body)
                latencies.append(time.perf_counter() - start)
                if status != 201:
                    raise RuntimeError(f"endpoint create {i}: {status} {answer}")
                if (i + 1) % 1000 == 0:
                    last = _ms(latencies[-1000:])
                    progress(
                        f"{name}: {i + 1} endpoints, last 1000 p50 {last['median']} ms p99 {last['p99']} ms"
                    )
            await trio.sleep(SETTLE_S)
            view = runtime.overlay.view
            loads_before, stats_before = view.loads, dict(runtime.overlay.stats)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await trio.sleep(idle_s)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            idle_loads = view.loads - loads_before
            stats_after = dict(runtime.overlay.stats)
            driver = runtime.overlay.driver
            fed = (
                {"snapshots": driver.stats["updates"], "last_snapshot_local": len(driver.last.local)}
                if isinstance(driver, RecordingDriver) and driver.last is not None
                else None
            )
            list_endpoints_s, listing = await _timed(client, "GET", "/v1/endpoints")
            list_networks_s, _ = await _timed(client, "GET", "/v1/networks")
            await client.stream.aclose()
            runtime.stop.set()
        buckets = {
            f"{start + 1}-{min(start + 1000, endpoints)}": _ms(latencies[start : start + 1000])
            for start in range(0, endpoints, max(1000, endpoints // 10))
        }
        return {
            "endpoints": endpoints,
            "create_ms": _ms(latencies),
            "create_ms_by_thousand": buckets,
            "idle": {
                "seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 4),
                "cpu_fraction_of_a_core": round(cpu / wall, 5),
                "network_loads_from_tables": idle_loads,
                "agent_stats_changed": {k: v for k, v in stats_after.items() if stats_before.get(k) != v},
            },
            "driver": fed,
            "list_endpoints_ms": round(list_endpoints_s * 1000, 2),
            "listed_endpoints": len(listing["endpoints"]),
            "list_networks_ms": round(list_networks_s * 1000, 2),
        }


def run(out_dir: pathlib.Path, endpoints: int | None = None, idle_s: float | None = None) -> dict[str, Any]:
    """Measure both variants, print a summary, write ``out_dir/agent.json``."""
    n = (
        endpoints
        if endpoints is not None
        else int(os.environ.get("SWIMNET_BENCH_AGENT_ENDPOINTS", ENDPOINTS))
    )
    idle = idle_s if idle_s is not None else float(os.environ.get("SWIMNET_BENCH_AGENT_IDLE_S", IDLE_S))
    variants: dict[str, Any] = {}
    for name in ("datapath_off", "fake_driver"):
        variants[name] = trio.run(_variant, name, n, idle, lambda line: print(line, flush=True))
        v = variants[name]
        create, idle_cpu = v["create_ms"], v["idle"]["cpu_fraction_of_a_core"]
        print(
            f"{name}: {n} endpoints: create p50 {create['median']} ms, p99 {create['p99']} ms, "
            f"max {create['max']} ms; idle CPU {idle_cpu * 100:.2f}% of a core; "
            f"GET /v1/endpoints {v['list_endpoints_ms']} ms",
            flush=True,
        )
    results = {"benchmark": "agent", "targets": TARGETS, "variants": variants}
    write_json("agent", results, out_dir)
    return results


if __name__ == "__main__":
    run(default_out_dir())
