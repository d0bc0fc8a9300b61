"""IPAM with real agents: two `swimnet-agent` daemons run in this process (trio, real UDP/TCP
on 127.0.0.1, state directories with fsync, no datapath), each creating endpoints without
an address in one /22 at the same time, back to back (one client per agent: the next
create is issued as soon as the previous one is answered).

Reported: creates granted, duplicates (addresses held by two endpoints, over both agents'
answers and over the tables as each agent sees them after the run: zero expected), latency
of each create from call to answer (wall seconds: the allocation, the IPAM record persisted
and published, the endpoint persisted and published), p50 / p99 / max, how many IPAM
decisions said "wait" (a claim made, or votes missing), and the wall time. The machine
is shared: compare within one run.

`python -m benchmarks ipam` runs it after the simulator scenarios (`bench_ipam`).
"""

from __future__ import annotations

import functools
import pathlib
import tempfile
import time
from typing import Any

import trio

from benchmarks.common import percentile, summary
from swimnet.agent.daemon.run import AgentRuntime, run_agent
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.agent.domain.endpoints import Endpoints
from swimnet.agent.domain.networks import Networks
from swimnet.config import format_address

SUBNET = "10.8.0.0/22"
GATEWAY = "10.8.0.1"


def _settings(base: pathlib.Path, name: str, join: tuple[str, ...] = ()) -> AgentSettings:
    (base / name).mkdir(parents=True, exist_ok=True)
    return AgentSettings(
        name=name,
        bind="127.0.0.1:0",
        join=join,
        state_dir=str(base / name / "state"),
        socket=str(base / name / "sock"),
        metrics=None,
        profile="local",
        datapath=False,
    )


async def _start(nursery: trio.Nursery, settings: AgentSettings) -> AgentRuntime:
    runtime: AgentRuntime = await nursery.start(functools.partial(run_agent, settings, handle_signals=False))
    return runtime


async def _wait(condition: Any, what: str, timeout: float = 60.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.05)


async def _scenario(base: pathlib.Path, per_agent: int) -> dict[str, Any]:
    async with trio.open_nursery() as nursery:
        a = await _start(nursery, _settings(base, "a"))
        b = await _start(nursery, _settings(base, "b", (format_address(a.node.address),)))
        await _wait(lambda: len(b.node.members()) == 2 and b.overlay.cluster_synced, "b joined")
        await Networks(a.overlay).create("bench", SUBNET, gateway=GATEWAY)
        await _wait(lambda: b.overlay.view.network("bench") is not None, "network on b")
        latencies: dict[str, list[float]] = {"a": [], "b": []}
        addresses: dict[str, list[str]] = {"a": [], "b": []}
        failures: list[str] = []

        async def client(runtime: AgentRuntime, name: str) -> None:
            endpoints = Endpoints(runtime.overlay)
            for i in range(per_agent):
                started = time.perf_counter()
                try:
                    info = await endpoints.create("bench", f"{name}-{i}")
                except Exception as exc:
                    failures.append(f"{name}-{i}: {exc}")
                    continue
                latencies[name].append(time.perf_counter() - started)
                addresses[name].append(info.spec.ip.split("/")[0])

        wall = time.perf_counter()
        async with trio.open_nursery() as clients:
            clients.start_soon(client, a, "a")
            clients.start_soon(client, b, "b")
        wall = time.perf_counter() - wall
        every = addresses["a"] + addresses["b"]
        total = 2 * per_agent - len(failures)
        await _wait(
            lambda: all(r.overlay.view.endpoint_count("bench") == total for r in (a, b)), "tables converged"
        )
        seen_twice = 0
        for runtime in (a, b):
            shown = [r.ip for _, r, _ in runtime.overlay.view.endpoints("bench")]
            seen_twice += len(shown) - len(set(shown))
        waits = a.overlay.ipam.stats["waits"] + b.overlay.ipam.stats["waits"]
        a.stop.set()
        b.stop.set()
    lat = latencies["a"] + latencies["b"]
    result = {
        "scenario": f"2 real agents x {per_agent} (in-process daemons, loopback)",
        "requests": 2 * per_agent,
        "granted": len(every),
        "failures": failures[:5],
        "duplicates": len(every) - len(set(every)) + seen_twice,
        "latency_s": summary(lat),
        "p50_s": round(percentile(lat, 50), 4) if lat else None,
        "p99_s": round(percentile(lat, 99), 4) if lat else None,
        "per_agent": {n: len(v) for n, v in addresses.items()},
        "waiting_decisions": waits,
        "wall_s": round(wall, 2),
    }
    print(
        f"{result['scenario']}: {result['granted']}/{result['requests']} granted, duplicates "
        f"{result['duplicates']}, latency p50 {result['p50_s']} s p99 {result['p99_s']} s max "
        f"{result['latency_s'].get('max')} s, {waits} waiting decisions, {wall:.1f} s wall"
    )
    return result


def real_agents(per_agent: int = 500) -> dict[str, Any]:
    """The scenario above, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="swimnet-bench-ipam-") as tmp:
        result: dict[str, Any] = trio.run(_scenario, pathlib.Path(tmp), per_agent)
    return result
