"""`TablesReader`: the read-only view of a node's replicated tables, what code outside the
engine may use (`engine.tables`, `node.tables`).

Rules: every method only reads; values returned are copies or frozen (`Entry`,
`TableChange`), so nothing outside can change the state; writes go through the engine
(`node.table(net, t).put(...)`), which gossips them.
"""

from __future__ import annotations

from swimnet.tables.attachments import Attachment
from swimnet.tables.changes import TableChange
from swimnet.tables.entry import Entry
from swimnet.tables.state import TableState


class TablesReader:
    __slots__ = ("_state",)

    def __init__(self, state: TableState) -> None:
        self._state = state

    def networks(self) -> list[str]:
        """The networks this node joined (holds the tables of), sorted."""
        return self._state.joined_networks()

    def is_joined(self, network: str) -> bool:
        return self._state.is_joined(network)

    def get(self, network: str, table: str, key: str) -> bytes | None:
        """A visible entry's value (None: absent, deleted, or its owner failed)."""
        return self._state.get(network, table, key)

    def items(self, network: str, table: str) -> dict[str, bytes]:
        """The visible entries of one table, key -> value, sorted by key."""
        return self._state.items(network, table)

    def snapshot(self, network: str, table: str) -> list[TableChange]:
        """A CREATED change per visible entry: what a new watcher starts from."""
        return self._state.snapshot(network, table)

    def live_entries(self, network: str) -> dict[tuple[str, str], tuple[bytes, str]]:
        """The visible entries of a network: (table, key) -> (value, owner)."""
        return self._state.live_entries(network)

    def entries(self, network: str) -> list[Entry]:
        """Every stored version of a network (tombstones and hidden entries included)."""
        return self._state.entries(network)

    def peers(self, network: str) -> list[str]:
        """Members attached to `network` (not leaving, not failed), this node excluded."""
        return self._state.network_peers(network)

    def lamport_time(self) -> int:
        """The current value of this node's table Lamport clock."""
        return self._state.table_clock.time

    def owner_failed(self, name: str) -> bool:
        """Membership reported `name` failed: its entries are held hidden."""
        return self._state.is_failed(name)

    def owner_unknown(self, name: str) -> bool:
        """Membership never reported `name` (a stranger: its attachment or entries came by
        gossip or sync first); its entries are held hidden like a failed member's."""
        return self._state.is_stranger(name)

    def attachments(self, network: str) -> dict[str, Attachment]:
        """Member -> its (frozen) attachment to `network`, leaving ones included."""
        return dict(self._state.attachments.of_network(network))

    def attached(self, network: str) -> list[str]:
        """Every member attached to `network` and not leaving it (this node and failed
        members included), sorted."""
        return sorted(n for n, a in self._state.attachments.of_network(network).items() if not a.leaving)

    def digest_hash(self, network: str) -> tuple[int, int]:
        """(syncable entry count, sum of version hashes): equal on converged members."""
        return self._state.digest_hash(network)
