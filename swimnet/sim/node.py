"""Synchronous handles on simulated nodes: the library calls without `now`, each followed by
the simulator draining what the engine queued (so a test reads like application code).

Rules: a handle forwards every other attribute to the node's current engine (after a
restart, the new one); calls on a crashed node raise LocalProtocolError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from swimnet.errors import LocalProtocolError
from swimnet.tables.changes import TableChange

if TYPE_CHECKING:
    from swimnet.engine import Engine


class Driver(Protocol):
    """What a handle needs of the simulation (swimnet.sim.simulation.Simulation)."""

    @property
    def now(self) -> float: ...

    def engine(self, name: str) -> Engine: ...

    def running(self) -> list[str]: ...

    def call(self, name: str, action: Callable[[Engine], object]) -> None: ...


class SimTable:
    """One replicated table of one network, as one simulated node sees it."""

    def __init__(self, node: SimNode, network: str, table: str) -> None:
        self._node = node
        self.network = network
        self.table = table

    def put(self, key: str, value: bytes) -> list[TableChange]:
        return self._node._call(lambda e, now: e.table_put(self.network, self.table, key, value, now))  # type: ignore[no-any-return]

    def delete(self, key: str) -> list[TableChange]:
        return self._node._call(lambda e, now: e.table_delete(self.network, self.table, key, now))  # type: ignore[no-any-return]

    def get(self, key: str) -> bytes | None:
        return self._node.engine.tables.get(self.network, self.table, key)

    def items(self) -> dict[str, bytes]:
        return self._node.engine.tables.items(self.network, self.table)


class SimNode:
    """`sim.node(name)`: the node's API, synchronous; engine attributes pass through."""

    def __init__(self, sim: Driver, name: str) -> None:
        self._sim = sim
        self.name = name

    @property
    def engine(self) -> Engine:
        return self._sim.engine(self.name)

    def _call(self, action: Any) -> Any:
        if self.name not in self._sim.running():
            raise LocalProtocolError(f"{self.name} is not running")
        result: list[Any] = []
        self._sim.call(self.name, lambda e: result.append(action(e, self._sim.now)))
        return result[0]

    def join_network(self, network: str) -> list[TableChange]:
        return self._call(lambda e, now: e.join_network(network, now))  # type: ignore[no-any-return]

    def leave_network(self, network: str) -> list[TableChange]:
        return self._call(lambda e, now: e.leave_network(network, now))  # type: ignore[no-any-return]

    def table(self, network: str, table: str) -> SimTable:
        return SimTable(self, network, table)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._sim.engine(self.name), attribute)
