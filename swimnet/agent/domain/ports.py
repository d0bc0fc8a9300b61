"""What the overlay agent is given to drive the kernel: the datapath driver, as a Protocol.

Rules: the domain feeds the driver snapshots (`update`, cheap and synchronous: the driver
reconciles in the background), plugs containers in and out (`attach` / `detach`, raising
DatapathError when the kernel refuses) and asks what the kernel holds (`fdb`); `stats`, when
the driver keeps them, are counters for status and metrics. The daemon owns the driver's
life (`run` under its nursery, `close` on the way out). `swimnet.datapath.driver.DatapathDriver`
implements it; tests pass an in-memory fake.
"""

from __future__ import annotations

from typing import Protocol

import trio

from swimnet.overlay import LocalEndpointSpec, OverlaySnapshot


class DatapathDriverProtocol(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def update(self, snapshot: OverlaySnapshot) -> None: ...

    async def attach(self, endpoint: LocalEndpointSpec) -> None: ...

    async def detach(self, endpoint: LocalEndpointSpec) -> None: ...

    async def fdb(self, network: str) -> list[dict[str, str]]: ...

    async def close(self) -> None: ...
