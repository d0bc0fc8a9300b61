"""The node as the agent sees it: the one agent module that talks to the swimnet node's
tables and sync calls.

Everything else in the agent reaches the cluster through `Cluster` (the daemon and the keys
operations also use the node's public lifecycle and key API: `open_node`'s node, `join`,
`subscribe`, `members`, `keys`, `keyring`). Only the node's public API is used here:
`node.tables` (the read-only tables view), `node.table(...)`, `node.sync_network` (which
returns when the engine announces `SyncFinished`), `node.rtt_estimate`, and the probe RTT
histogram given to `open_node` as its `ping_observer`.

Rules: the adapter adds no state and no policy of its own: reads are the node's, writes go
through the node (so what they queue is sent), and the sync waits end on the engine's
completion events (nothing polls). Reads are synchronous and cheap enough to call per
request.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import attrs
import trio

from swimnet.agent.probe_rtt import RttHistogram
from swimnet.config import Config
from swimnet.membership.member import Member
from swimnet.runtime import Node, Subscription, open_node
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.entry import Entry
from swimnet.tables.view import TablesReader

SYNC_ATTEMPTS = 3
"""Syncs the waits below start (a peer that fails them is given up after this many)."""


@contextlib.asynccontextmanager
async def open_agent_node(
    config: Config, *, incarnation: int, tables_config: TablesConfig, rtt: RttHistogram | None = None
) -> AsyncIterator[Node]:
    """`open_node` with the agent's probe RTT histogram as its ping observer."""
    async with open_node(
        config, incarnation=incarnation, tables_config=tables_config, ping_observer=rtt
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


class Cluster:
    """The node, through the calls the agent makes (see the module docstring)."""

    def __init__(self, node: Node, rtt: RttHistogram | None = None) -> None:
        self._node = node
        self._rtt = rtt
        self.tables: TablesReader = node.tables

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
        return self._node.rtt_estimate(member)

    def rtt_histogram(self) -> RttHistogram | None:
        """Direct probe round trips (None: the node was opened without one)."""
        return self._rtt

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

    def subscribe_tables(self, buffer: int | None = None) -> Subscription[TableChange]:
        """Every table change, pushed synchronously as it happens (see the node's rules)."""
        return self._node.subscribe_tables(buffer)

    def table_clock(self) -> int:
        """The Lamport time of the tables: past every table event this node has seen."""
        return self.tables.lamport_time()

    def agents(self, network: str) -> list[str]:
        """The nodes attached to a network's scope (not leaving; failed ones included), sorted."""
        return self.tables.attached(network)

    def dump(self, network: str) -> TablesDump:
        """The stored entries, attachments, digest and clock of a joined network."""
        tables = self.tables
        count, digest = tables.digest_hash(network)
        return TablesDump(
            network=network,
            attachments=tuple(
                AgentAttachment(node, a.ltime, a.leaving, tables.owner_failed(node))
                for node, a in sorted(tables.attachments(network).items())
            ),
            entries=tuple(
                (e, tables.owner_failed(e.owner))
                for e in sorted(tables.entries(network), key=lambda e: (e.table, e.key))
            ),
            digest_count=count,
            digest_hash=digest,
            table_clock=tables.lamport_time(),
        )

    # -- table syncs ------------------------------------------------------------------------

    async def synced_after_join(self, network: str, *, timeout: float, grace: float) -> bool:
        """After joining `network`'s scope: sync it with a peer and wait for the end.

        With peers in the network: sync with one (at most SYNC_ATTEMPTS tries) within
        `timeout`. With none known yet: wait `grace` for attachments still travelling by
        gossip first. False when no sync succeeded although peers were known."""
        tables = self.tables
        with trio.move_on_after(timeout):
            if not tables.peers(network):
                await trio.sleep(grace)
            for _ in range(SYNC_ATTEMPTS if tables.peers(network) else 0):
                if await self._node.sync_network(network, timeout):
                    return True
        return not tables.peers(network)

    async def synced(self, network: str, *, timeout: float) -> bool:
        """Sync `network` with a peer (if it has any) and wait, at most `timeout`; whether a
        sync succeeded."""
        with trio.move_on_after(timeout):
            for _ in range(SYNC_ATTEMPTS if self.tables.peers(network) else 0):
                if await self._node.sync_network(network, timeout):
                    return True
        return False
