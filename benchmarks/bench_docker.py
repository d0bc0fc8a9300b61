"""Benchmark: the Docker plugin's calls over its Unix socket, as dockerd makes them.

One swimnet-agent in this process (the daemon's `run_agent`, "local" profile, datapath off:
the kernel is not what is measured here), its Docker plugin served on a socket in a
temporary directory (`serve_plugin`, the daemon's own server), and an in-process stand-in
for dockerd's API (a network's name and its containers' names, what the plugin reads).
Procedure: the calls of `docker network create -d swimnet --ipam-driver swimnet`, then
CONTAINERS container lifecycles one after another, each the calls of `docker run` (IPAM
RequestAddress, CreateEndpoint, Join) and of `docker rm` (Leave, DeleteEndpoint, IPAM
ReleaseAddress), over one keep-alive HTTP/1.1 connection; every call's latency (request
sent to answer read; it includes the plugin's state file fsync and, for RequestAddress and
Join, the cluster IPAM and the endpoint's persistence) is recorded per call name.
Two variants: `alone` (each container is the network's only one on this host, so each
`docker run` joins the network's scope again: the agent's scope join, which waits for a
sync, or a short grace when no peer holds it) and `beside_a_running_container` (one
container stays, the scope stays held). Prints p50/p99 per call, writes
``out_dir/docker.json`` (and a histogram PNG with matplotlib). Size: the argument of `run`
or SWIMNET_BENCH_DOCKER_CONTAINERS. Nothing here asserts a figure.
"""

from __future__ import annotations

import functools
import os
import pathlib
import secrets
import sys
import tempfile
import time
from typing import Any

import trio

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.bench_agent import Client
from benchmarks.common import histogram_png, summary, write_json
from benchmarks.common import out_dir as default_out_dir
from swimnet.agent.daemon.run import AgentRuntime, run_agent
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.agent.docker.addresses import ClusterAddresses
from swimnet.agent.docker.dockerd import DockerNetwork
from swimnet.agent.docker.plugin import DockerPlugin
from swimnet.agent.docker.server import serve_plugin
from swimnet.agent.domain.operations import Operations

CONTAINERS = 300
SUBNET = "10.9.0.0/22"
GATEWAY = {"RequestAddressType": "com.docker.network.gateway"}


class Dockerd:
    """What the plugin reads from dockerd: one network, the containers attached to it."""

    def __init__(self) -> None:
        self.networks: dict[str, DockerNetwork] = {}

    async def network(self, network_id: str) -> DockerNetwork | None:
        await trio.lowlevel.checkpoint()
        return self.networks.get(network_id)


async def _call(client: Client, times: dict[str, list[float]], name: str, body: Any) -> Any:
    start = time.perf_counter()
    status, answer = await client.call("POST", f"/{name}", body)
    times.setdefault(name, []).append(time.perf_counter() - start)
    if status != 200 or "Err" in answer or "Error" in answer:
        raise RuntimeError(f"{name}: {status} {answer}")
    return answer


async def _measure(containers: int, keep_one: bool) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="swbd") as tmp:
        base = pathlib.Path(tmp)
        settings = AgentSettings(
            name="bench", bind="127.0.0.1:0", state_dir=str(base / "state"), socket=str(base / "sock"),
            metrics=None, profile="local", datapath=False,
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            runtime: AgentRuntime = await nursery.start(
                functools.partial(run_agent, settings, handle_signals=False)
            )
            with trio.fail_after(60):
                while not runtime.overlay.started:
                    await trio.sleep(0.05)
            dockerd = Dockerd()
            plugin = DockerPlugin(
                Operations.over(runtime.overlay, runtime.keys),
                docker=dockerd,
                addresses=ClusterAddresses(runtime.overlay),
                state_dir=settings.state_dir,
                clock=time.time,
            )
            path = str(base / "swimnet.sock")
            await nursery.start(serve_plugin, plugin, path)
            client = Client(await trio.open_unix_socket(path))
            pool = await _call(client, times, "IpamDriver.RequestPool", {"Pool": SUBNET})
            gateway = await _call(
                client, times, "IpamDriver.RequestAddress", {"PoolID": pool["PoolID"], "Options": GATEWAY}
            )
            net = secrets.token_hex(32)
            data = {"AddressSpace": "swimnet", "Pool": SUBNET, "Gateway": gateway["Address"]}
            await _call(client, times, "NetworkDriver.CreateNetwork", {"NetworkID": net, "IPv4Data": [data]})
            dockerd.networks[net] = DockerNetwork(net, "bench", {})
            kept: dict[str, list[float]] = {}
            if keep_one:  # a container that stays: the network's scope stays held here
                await _run(client, kept, dockerd, net, pool["PoolID"], "kept")
            for i in range(containers):
                ep, got = await _run(client, times, dockerd, net, pool["PoolID"], f"c{i}")
                ref = {"NetworkID": net, "EndpointID": ep}
                await _call(client, times, "NetworkDriver.Leave", ref)
                await _call(client, times, "NetworkDriver.DeleteEndpoint", ref)
                release = {"PoolID": pool["PoolID"], "Address": got["Address"]}
                await _call(client, times, "IpamDriver.ReleaseAddress", release)
            await client.stream.aclose()
            nursery.cancel_scope.cancel()
    return times


async def _run(
    client: Client, times: dict[str, list[float]], dockerd: Dockerd, net: str, pool: str, name: str
) -> tuple[str, Any]:
    """The plugin calls of `docker run --network bench --name NAME`: (endpoint id, address)."""
    ep = secrets.token_hex(32)
    got = await _call(client, times, "IpamDriver.RequestAddress", {"PoolID": pool})
    body = {"NetworkID": net, "EndpointID": ep, "Interface": {"Address": got["Address"]}}
    await _call(client, times, "NetworkDriver.CreateEndpoint", body)
    known = dict(dockerd.networks[net].endpoints)
    dockerd.networks[net] = DockerNetwork(net, "bench", {**known, ep: name})
    join = {"NetworkID": net, "EndpointID": ep, "SandboxKey": f"/run/docker/netns/{name}"}
    await _call(client, times, "NetworkDriver.Join", join)
    return ep, got


def run(out_dir: pathlib.Path, containers: int | None = None) -> dict[str, Any]:
    n = (
        containers
        if containers is not None
        else int(os.environ.get("SWIMNET_BENCH_DOCKER_CONTAINERS", CONTAINERS))
    )
    lifecycle = [
        "IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint", "NetworkDriver.Join",
        "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress",
    ]  # fmt: skip
    variants: dict[str, Any] = {}
    series: dict[str, list[float]] = {}
    for variant, keep_one in (("alone", False), ("beside_a_running_container", True)):
        times = trio.run(_measure, n, keep_one)
        if not keep_one:
            times["IpamDriver.RequestAddress"] = times["IpamDriver.RequestAddress"][1:]  # the gateway's
        calls = {name: summary([t * 1000 for t in times[name]]) for name in lifecycle}
        runs = [sum(times[name][i] for name in lifecycle[:3]) * 1000 for i in range(n)]
        variants[variant] = {"calls_ms": calls, "docker_run_calls_ms": summary(runs)}
        series[variant] = runs
        print(f"-- {variant}: {n} containers run and removed one after another")
        for name, s in calls.items():
            print(f"{name:32s} p50 {s['median']:7.2f} ms  p99 {s['p99']:7.2f} ms  max {s['max']:7.2f} ms")
        total = variants[variant]["docker_run_calls_ms"]
        print(f"docker run's calls (RequestAddress+CreateEndpoint+Join): p50 {total['median']} ms, "
              f"p99 {total['p99']} ms")  # fmt: skip
    results = {"benchmark": "docker", "containers": n, "variants": variants}
    write_json("docker", results, out_dir)
    histogram_png("docker", series, "docker run's plugin calls, ms", out_dir)
    return results


if __name__ == "__main__":
    run(default_out_dir())
