"""What the overlay agent is given at construction, as Protocols (besides the cluster).

- `EndpointStore`: where the agent's own endpoints and their networks' records persist
  (`swimnet.agent.daemon.state_store.StateDir`); `save_endpoints` is atomic and raises
  OSError when it cannot write (the caller undoes the change it was saving);
- `DatapathDriverProtocol`: the domain feeds the driver snapshots (`update`, cheap and
  synchronous: the driver reconciles in the background), plugs containers in and out
  (`attach` / `detach`, raising DatapathError when the kernel refuses) and asks what the
  kernel holds (`fdb`); the daemon owns the driver's life (`run` under its nursery, `close`
  on the way out). `swimnet.datapath.driver.DatapathDriver` implements it; tests pass an
  in-memory fake. A driver's `stats` counters, if it has them, show in status and metrics.
"""

from __future__ import annotations

from typing import Protocol

import trio

from swimnet.overlay import LocalEndpointSpec, NetworkRecord, OverlaySnapshot


class EndpointStore(Protocol):
    def save_endpoints(self, specs: list[LocalEndpointSpec], networks: dict[str, NetworkRecord]) -> None: ...


class DatapathDriverProtocol(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def update(self, snapshot: OverlaySnapshot) -> None: ...

    async def attach(self, endpoint: LocalEndpointSpec) -> None: ...

    async def detach(self, endpoint: LocalEndpointSpec) -> None: ...

    async def fdb(self, network: str) -> list[dict[str, str]]: ...

    async def close(self) -> None: ...
