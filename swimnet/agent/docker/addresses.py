"""Where the plugin's IPAM gets endpoint addresses: one narrow Protocol, and the interim source.

Rules:
- `AddressSource.request(network, address, taken)` returns a free host address of the
  swimnet network (the one asked for, if free), never one of `taken` (addresses the plugin
  handed to Docker that no endpoint publishes yet); it raises OperationError (CONFLICT: in
  use or none left, INVALID: not a host address of the subnet);
- `release(network, address)` gives an address back (a no-op for a source whose allocations
  are the endpoint entries themselves);
- `FirstFree` is the source until the cluster-wide IPAM (swimnet.ipam) is wired into the
  agent: the lowest host address that no endpoint entry, service VIP, gateway or `taken`
  of this agent's view holds. It is unique on this host; two hosts handing out an address
  at the same moment can both succeed, which the agent then reports as an endpoint
  conflict (swimnet.agent.domain.conflicts), as for `endpoint create --ip`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Set
from typing import Protocol

from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.errors import conflict, invalid, not_found


class AddressSource(Protocol):
    async def request(self, network: str, address: str | None, taken: Set[str]) -> str: ...

    async def release(self, network: str, address: str) -> None: ...


class FirstFree:
    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def _used(self, network: str) -> set[str]:
        view = self.agent.view
        used = {record.ip.split("/")[0] for _, record, _ in view.endpoints(network)}
        used |= {s.vip for _, s, _ in view.services(network) if s.vip}
        used |= {spec.ip.split("/")[0] for spec in self.agent.local.in_network(network).values()}
        return used

    async def request(self, network: str, address: str | None, taken: Set[str]) -> str:
        agent = self.agent
        record = agent.view.network(network)
        if record is None:
            raise not_found(f"network {network!r} not found", "network")
        subnet = ipaddress.IPv4Network(record.subnet)
        async with agent.lock:
            joined_now = await agent.hold(network)  # the network's endpoints are in its scope
            try:
                used = self._used(network) | set(taken)
                if record.gateway:
                    used.add(record.gateway)
            finally:
                if joined_now:
                    await agent.release(network)
        if address is not None:
            ip = ipaddress.IPv4Address(address)
            if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
                raise invalid(f"address: {address} is not a host address of {subnet}", "address")
            if address in used:
                raise conflict(f"address: {address} is already used in network {network!r}", "address")
            return address
        for host in subnet.hosts():
            if str(host) not in used:
                return str(host)
        raise conflict(f"network {network!r} has no free address left", "address")

    async def release(self, network: str, address: str) -> None:
        return None
