"""In-process agents (fake datapath) with a Docker plugin each, and a fake dockerd."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import trio
from test_agent_inprocess import Drivers, eventually, settings_for, start

from swimnet.agent.daemon.run import AgentRuntime
from swimnet.agent.docker.addresses import ClusterAddresses
from swimnet.agent.docker.dockerd import DockerApiError, DockerNetwork
from swimnet.agent.docker.plugin import DockerPlugin
from swimnet.agent.domain.operations import Operations
from swimnet.config import format_address


def docker_id() -> str:
    return secrets.token_hex(32)


def address_of(host: Host, endpoint_id: str) -> str:
    """The address (no prefix) the plugin gave a Docker endpoint."""
    return host.plugin.state.endpoints[endpoint_id].ip.split("/")[0]


def unused(*hosts: Host, subnet: str = "10.9.0.0/24") -> str:
    """A host address of the subnet no plugin of `hosts` handed out."""
    handed = {a for h in hosts for pool in h.plugin.state.pools.values() for a in pool.addresses}
    return next(
        str(ip) for ip in ipaddress.IPv4Network(subnet).hosts() if str(ip) not in handed | {"10.9.0.1"}
    )


class FakeDockerd:
    """What a dockerd would answer: networks by id (name, endpoint id -> container name)."""

    def __init__(self) -> None:
        self.networks: dict[str, DockerNetwork] = {}
        self.down = False
        self.subscribers: list[trio.MemorySendChannel[str]] = []

    def add(self, network_id: str, name: str) -> None:
        self.networks[network_id] = DockerNetwork(network_id, name, {})

    def attach(self, network_id: str, endpoint_id: str, container: str) -> None:
        found = self.networks[network_id]
        self.networks[network_id] = attrs.evolve(found, endpoints={**found.endpoints, endpoint_id: container})

    def detach(self, network_id: str, endpoint_id: str) -> None:
        found = self.networks[network_id]
        rest = {k: v for k, v in found.endpoints.items() if k != endpoint_id}
        self.networks[network_id] = attrs.evolve(found, endpoints=rest)

    async def network(self, network_id: str) -> DockerNetwork | None:
        if self.down:
            raise DockerApiError("dockerd at /nowhere: connection refused")
        return self.networks.get(network_id)

    @contextlib.asynccontextmanager
    async def network_events(self) -> AsyncIterator[AsyncIterator[str]]:
        if self.down:
            raise DockerApiError("dockerd at /nowhere: connection refused")
        send, receive = trio.open_memory_channel[str](100)
        self.subscribers.append(send)
        try:
            yield receive
        finally:
            self.subscribers.remove(send)

    def created(self, network_id: str) -> None:
        """The event dockerd emits once it stored a network."""
        for subscriber in self.subscribers:
            subscriber.send_nowait(network_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Host:
    runtime: AgentRuntime
    plugin: DockerPlugin
    dockerd: FakeDockerd
    clock: Clock

    async def call(self, name: str, body: Any = None) -> dict[str, Any]:
        raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        return await self.plugin.call(name, raw)

    async def ok(self, name: str, body: Any = None) -> dict[str, Any]:
        answer = await self.call(name, body)
        assert "Err" not in answer and "Error" not in answer, (name, answer)
        return answer

    async def refused(self, name: str, body: Any = None) -> str:
        """The refusal's message (under the key libnetwork reads for that call)."""
        answer = await self.call(name, body)
        key = "Error" if name.startswith("IpamDriver.") else "Err"
        assert set(answer) == {key} and answer[key].startswith("swimnet: "), (name, body, answer)
        return str(answer[key])

    def plugin_for(self) -> DockerPlugin:
        """A new plugin over the same agent and state directory (a restarted plugin)."""
        return make_plugin(self.runtime, self.dockerd, self.clock)


def make_plugin(runtime: AgentRuntime, dockerd: FakeDockerd, clock: Clock) -> DockerPlugin:
    ops = Operations.over(runtime.overlay, runtime.keys)
    addresses = ClusterAddresses(runtime.overlay)
    return DockerPlugin(ops, docker=dockerd, addresses=addresses, state_dir=runtime.state_dir, clock=clock)


@contextlib.asynccontextmanager
async def two_hosts(tmp_path: Path) -> AsyncIterator[tuple[Host, Host, Drivers]]:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        seed = format_address(a.node.address)
        b = await start(nursery, settings_for(tmp_path, "b", join=(seed,)), drivers)
        await eventually(lambda: len(b.node.members()) == 2 and b.overlay.cluster_synced, "b joined")
        hosts = []
        for runtime in (a, b):
            dockerd, clock = FakeDockerd(), Clock()
            hosts.append(Host(runtime, make_plugin(runtime, dockerd, clock), dockerd, clock))
        yield hosts[0], hosts[1], drivers
        nursery.cancel_scope.cancel()


async def docker_network(host: Host, name: str, subnet: str | None = "10.9.0.0/24") -> tuple[str, str]:
    """What `docker network create -d swimnet --ipam-driver swimnet [--subnet S] NAME` calls;
    (network id, pool id)."""
    pool = await host.ok(
        "IpamDriver.RequestPool", {"AddressSpace": "swimnet", "Pool": subnet or "", "V6": False}
    )
    gateway = await host.ok(
        "IpamDriver.RequestAddress",
        {
            "PoolID": pool["PoolID"],
            "Address": "",
            "Options": {"RequestAddressType": "com.docker.network.gateway"},
        },
    )
    network_id = docker_id()
    await host.ok(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": network_id,
            "Options": {"com.docker.network.enable_ipv6": False, "com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": "swimnet", "Gateway": gateway["Address"], "Pool": pool["Pool"]}],
            "IPv6Data": [],
        },
    )
    host.dockerd.add(network_id, name)
    host.dockerd.created(network_id)
    return network_id, pool["PoolID"]


async def docker_run(
    host: Host, network_id: str, pool_id: str, container: str, ip: str = ""
) -> tuple[str, dict[str, Any]]:
    """What `docker run --network NAME --name CONTAINER [--ip IP]` calls; (endpoint id, Join answer)."""
    address = await host.ok("IpamDriver.RequestAddress", {"PoolID": pool_id, "Address": ip, "Options": None})
    endpoint_id = docker_id()
    created = await host.ok(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": network_id,
            "EndpointID": endpoint_id,
            "Interface": {"Address": address["Address"], "AddressIPv6": "", "MacAddress": ""},
            "Options": {"com.docker.network.endpoint.exposedports": [], "com.docker.network.portmap": []},
        },
    )
    assert set(created["Interface"]) == {"MacAddress"}
    host.dockerd.attach(network_id, endpoint_id, container)
    joined = await host.ok(
        "NetworkDriver.Join",
        {"NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": f"/run/docker/netns/{container}"},
    )
    return endpoint_id, joined
