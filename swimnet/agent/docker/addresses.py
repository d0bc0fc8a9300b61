"""Where the plugin's IPAM gets endpoint addresses: one narrow Protocol, and its source.

Rules:
- `AddressSource.request(network, address)` returns a free host address of the swimnet
  network (the one asked for, if free), reserved for this agent until an endpoint of this
  agent holds it or `release` gives it back; it raises OperationError (CONFLICT: in use or
  none left, INVALID: not a host address of the subnet, UNAVAILABLE: the votes it needs did
  not come) and then nothing is reserved;
- `release(network, address)` gives an address back;
- `ClusterAddresses` is the agent's cluster-wide IPAM (swimnet.agent.domain.ipam: claims
  every member agreed to, so no two hosts hand out one address): the reservation is durable
  (in the agent's state directory), and the endpoint the plugin creates at `Join` with that
  address consumes it; the network's scope is held while the reservation lives (the IPAM
  reads the network's endpoints there).
"""

from __future__ import annotations

from typing import Protocol

import trio

from swimnet.agent.domain.overlay import OverlayAgent

FIELD = "address"


class AddressSource(Protocol):
    async def request(self, network: str, address: str | None) -> str: ...

    async def release(self, network: str, address: str) -> None: ...


class ClusterAddresses:
    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    async def request(self, network: str, address: str | None) -> str:
        agent = self.agent
        async with agent.lock:
            await agent.hold(network)
        try:
            return await agent.ipam.allocate_address(network, address, field=FIELD)
        except BaseException:
            with trio.CancelScope(shield=True):
                async with agent.lock:
                    await agent.release(network)  # unless something else of ours needs it
            raise

    async def release(self, network: str, address: str) -> None:
        agent = self.agent
        await agent.ipam.release_address(network, address)
        async with agent.lock:
            await agent.release(network)
