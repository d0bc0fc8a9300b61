"""What the overlay agent is given at construction, as Protocols (besides the cluster).

- `EndpointStore`: where the agent's own endpoints and their networks' records persist
  (`swimnet.agent.daemon.state_store.StateDir`), one change at a time (a change costs the
  same whatever the number of endpoints); each call is atomic and raises OSError when it
  cannot write, with nothing saved (the caller undoes the change it was saving); a
  network's record is kept while an endpoint is there;
- `IpamStore`: where the agent's IPAM state persists (`swimnet.agent.daemon.ipam_state`):
  per network, its own record, what it knows of the others' claims, and the addresses it
  granted that no endpoint or VIP holds yet (`SavedIpam`); and whether the agent last
  stopped with a graceful leave. A save is atomic and durable before it returns (OSError:
  nothing saved); the agent saves a record before it publishes it;
- `DatapathDriverProtocol`: the domain feeds the driver snapshots (`update`, cheap and
  synchronous: the driver reconciles in the background), plugs containers in and out
  (`attach` / `detach`, raising DatapathError when the kernel refuses) and asks what the
  kernel holds (`fdb`); the daemon owns the driver's life (`run` under its nursery, `close`
  on the way out). `swimnet.datapath.driver.DatapathDriver` implements it; tests pass an
  in-memory fake. A driver's `stats` counters, if it has them, show in status and metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs
import trio

from swimnet.overlay import LocalEndpointSpec, NetworkRecord, OverlaySnapshot


class EndpointStore(Protocol):
    def add_endpoint(self, spec: LocalEndpointSpec, network: NetworkRecord) -> None: ...

    def remove_endpoint(self, endpoint_id: str) -> None: ...

    def save_networks(self, records: Mapping[str, NetworkRecord]) -> None:
        """Update the records of networks with an endpoint (others are ignored)."""
        ...


@attrs.frozen
class SavedIpam:
    """One network's IPAM state as the agent persists it."""

    subnet: str
    gateway: str | None
    record: bytes | None = None
    """This agent's record (`swimnet.ipam.Record` encoding), as last published."""
    memory: bytes | None = None
    """The others' claims it knew (`swimnet.ipam.Memory` encoding)."""
    reserved: tuple[str, ...] = ()
    """Addresses granted (`allocate_address`) that no local endpoint or VIP holds yet."""


class IpamStore(Protocol):
    def load_ipam(self) -> tuple[dict[str, SavedIpam], bool]:
        """Per network, what was saved; and whether the agent stopped with a graceful leave."""
        ...

    def save_ipam(self, network: str, saved: SavedIpam | None) -> None:
        """Replace (None: forget) one network's IPAM state."""
        ...

    def save_ipam_left(self, left: bool) -> None:
        """Note whether the agent is stopping with a graceful leave (False once restarted)."""
        ...


class DatapathDriverProtocol(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...

    def update(self, snapshot: OverlaySnapshot) -> None: ...

    async def attach(self, endpoint: LocalEndpointSpec) -> None: ...

    async def detach(self, endpoint: LocalEndpointSpec) -> None: ...

    async def fdb(self, network: str) -> list[dict[str, str]]: ...

    async def close(self) -> None: ...
