"""The node as the agent sees it: the ONLY agent code that talks to the swimnet node's engine,
its table state or its table and sync calls.

Everything else in the agent reaches the cluster through `Cluster` (the daemon and the keys
operations also use the node's public lifecycle and key API: `open_node`'s node, `join`,
`subscribe`, `members`, `keys`, `keyring`). When the node grows a public API for what is
below, this module is the one place to change. Today it goes past the public `Node` API
here, each place marked `# ENGINE` in the code:

- `open_agent_node`: `open_node(..., engine_factory=AgentEngine)`: the engine subclass in
  `swimnet/agent/agent_engine.py` that counts completed table syncs (`syncs_completed`,
  `sync_in_flight`, `sync_now`) and keeps the probe RTT histogram (`rtt`);
- `StateTables` (the `tables` attribute): reads of `node.engine.tables.state`:
  `joined_networks`, `is_joined`, `live_entries`, `entries`, `network_peers`;
- `table_clock`, `agents`, `dump`: `state.table_clock.time`, `state.attachments.of_network`,
  `state.is_failed`, `state.digest_hash`;
- `sync_mark`, `synced_after_join`, `synced_since`: `engine.syncs_completed[network]`,
  `engine.sync_in_flight(network)`, `node.engine_call(lambda e, t: engine.sync_now(network, t))`;
- `rtt_histogram` (`engine.rtt`), `rtt_estimate` (`node.engine.rtt_estimate`).

Rules: the adapter adds no state and no policy of its own: reads are the node's, writes go
through the node (so what they queue is sent), and the two sync waits are exactly the
waits the agent has always done (documented on each). Reads are synchronous and cheap
enough to call per request.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import attrs
import trio

from swimnet.agent.agent_engine import AgentEngine, RttHistogram
from swimnet.config import Config
from swimnet.membership.member import Member
from swimnet.runtime import Node, Subscription, open_node
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.entry import Entry
from swimnet.tables.state import TableState

SYNC_ATTEMPTS = 3
"""Syncs `synced_after_join` starts itself (a peer that fails them is given up after this many)."""


@contextlib.asynccontextmanager
async def open_agent_node(
    config: Config, *, incarnation: int, tables_config: TablesConfig
) -> AsyncIterator[Node]:
    """`open_node` with what the agent observes on the engine (syncs, probe RTTs)."""
    async with open_node(
        config,
        incarnation=incarnation,
        tables_config=tables_config,
        engine_factory=AgentEngine,  # ENGINE
    ) as node:
        yield node


@attrs.frozen
class AgentAttachment:
    """A node's attachment to a network's table scope, as this node sees it."""

    node: str
    ltime: int
    leaving: bool
    failed: bool
    """The attached node is failed: its entries are hidden."""


@attrs.frozen
class TablesDump:
    """Every stored entry of a network (tombstones and hidden ones included), for diagnosis."""

    network: str
    attachments: tuple[AgentAttachment, ...]
    """Sorted by node name."""
    entries: tuple[tuple[Entry, bool], ...]
    """(entry, hidden: its owner is failed), sorted by (table, key)."""
    digest_count: int
    digest_hash: int
    table_clock: int


class StateTables:
    """Read-only queries of the table state (the `TableReader` that `TablesView` reads)."""

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def _state(self) -> TableState:
        return self._node.engine.tables.state  # ENGINE

    def networks(self) -> list[str]:
        """The networks this node has joined (CLUSTER_SCOPE included)."""
        return self._state.joined_networks()

    def is_joined(self, network: str) -> bool:
        return self._state.is_joined(network)

    def live_entries(self, network: str) -> dict[tuple[str, str], tuple[bytes, str]]:
        """The visible entries of a network: (table, key) -> (value, owner)."""
        return self._state.live_entries(network)

    def entries(self, network: str) -> Sequence[Entry]:
        """Every stored version of a network (tombstones and hidden entries included)."""
        return self._state.entries(network)

    def peers(self, network: str) -> list[str]:
        """Attached (not leaving, not failed) members of a network other than this node."""
        return self._state.network_peers(network)


class Cluster:
    """The node, through the calls the agent makes (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self.tables = StateTables(node)

    @property
    def _engine(self) -> AgentEngine:
        engine = self._node.engine  # ENGINE
        assert isinstance(engine, AgentEngine), "open the node with open_agent_node"
        return engine

    # -- identity and membership ------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._node.name

    @property
    def vtep(self) -> str:
        """This host's VTEP address: the host part of the node's advertise address."""
        return self._node.advertise_address[0]

    @property
    def gossip_interval(self) -> float:
        return self._node.config.gossip_interval

    @property
    def closed(self) -> bool:
        return self._node.closed

    def members(self) -> list[Member]:
        return self._node.members()

    @property
    def stats(self) -> Counter[str]:
        """The node's raw counters."""
        return self._node.stats

    @property
    def health_score(self) -> int:
        return self._node.health_score

    def rtt_estimate(self, member: str) -> float | None:
        return self._node.engine.rtt_estimate(member)  # ENGINE

    def rtt_histogram(self) -> RttHistogram | None:
        """Direct probe round trips (None: the node was not opened with `open_agent_node`)."""
        engine = self._node.engine  # ENGINE
        return engine.rtt if isinstance(engine, AgentEngine) else None

    # -- table scopes and entries -------------------------------------------------------------

    async def join_network(self, network: str) -> None:
        await self._node.join_network(network)

    async def leave_network(self, network: str) -> None:
        await self._node.leave_network(network)

    async def put(self, network: str, table: str, key: str, value: bytes) -> None:
        await self._node.table(network, table).put(key, value)

    async def delete(self, network: str, table: str, key: str) -> None:
        await self._node.table(network, table).delete(key)

    def get(self, network: str, table: str, key: str) -> bytes | None:
        """The visible value of a key (None: absent, deleted or hidden)."""
        return self._node.table(network, table).get(key)

    def subscribe_tables(self) -> Subscription[TableChange]:
        return self._node.subscribe_tables()

    def table_clock(self) -> int:
        """The Lamport time of the tables: past every table event this node has seen."""
        return self._node.engine.tables.state.table_clock.time  # ENGINE

    def agents(self, network: str) -> list[str]:
        """The nodes attached to a network's scope (not leaving; failed ones included), sorted."""
        attachments = self._node.engine.tables.state.attachments.of_network(network)  # ENGINE
        return sorted(n for n, a in attachments.items() if not a.leaving)

    def dump(self, network: str) -> TablesDump:
        """The stored entries, attachments, digest and clock of a joined network."""
        state = self._node.engine.tables.state  # ENGINE
        attachments = state.attachments.of_network(network)
        count, digest = state.digest_hash(network)
        return TablesDump(
            network=network,
            attachments=tuple(
                AgentAttachment(node, a.ltime, a.leaving, state.is_failed(node))
                for node, a in sorted(attachments.items())
            ),
            entries=tuple(
                (e, state.is_failed(e.owner))
                for e in sorted(state.entries(network), key=lambda e: (e.table, e.key))
            ),
            digest_count=count,
            digest_hash=digest,
            table_clock=state.table_clock.time,
        )

    # -- table syncs ------------------------------------------------------------------------

    def sync_mark(self, network: str) -> int:
        """How many syncs of `network` this node started have completed (compare later)."""
        return self._engine.syncs_completed[network]  # ENGINE

    async def synced_after_join(self, network: str, mark: int, *, timeout: float, grace: float) -> bool:
        """Wait for a sync of `network` completed after `mark` (a freshly joined scope).

        With peers in the network: wait until a sync with one of them completed, starting
        one (at most SYNC_ATTEMPTS in all) whenever none is under way, for at most
        `timeout`. With none known yet: wait `grace` for attachments still travelling by
        gossip, then go on. False when the wait timed out although peers were known."""
        engine = self._engine
        now = trio.current_time()
        deadline, grace_end = now + timeout, now + grace
        attempts = 0
        while engine.syncs_completed[network] == mark:  # ENGINE
            now = trio.current_time()
            peers = self.tables.peers(network)
            if now >= deadline or (not peers and now >= grace_end):
                return not peers
            if peers and not engine.sync_in_flight(network) and attempts < SYNC_ATTEMPTS:  # ENGINE
                attempts += 1
                self._node.engine_call(lambda e, t: engine.sync_now(network, t))  # ENGINE
            await trio.sleep(0.02)
        return True

    async def synced_since(self, network: str, mark: int, *, timeout: float) -> None:
        """Wait (at most `timeout`) until a sync of `network` completed after `mark`, or no
        peer is attached to it any more; starts no sync itself."""
        with trio.move_on_after(timeout):
            while self.tables.peers(network) and self._engine.syncs_completed[network] == mark:  # ENGINE
                await trio.sleep(0.05)
