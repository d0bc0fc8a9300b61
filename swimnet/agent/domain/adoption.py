"""Keeping shared definitions alive when the agent that published them goes away.

Table entries belong to the node that wrote them: when it leaves, its entries go
everywhere; when it fails they are hidden, then reaped. That is right for endpoints (they
live on that host) but not for network definitions and services, which belong to the
cluster. Rules:
- an entry of the networks table or of a services table that disappears WITHOUT a
  tombstone (its owner left, failed, or left the network's scope) becomes an orphan;
- the orphan is re-published unchanged by one surviving agent: the alive member attached
  to the scope with the smallest name (each agent decides from its own view; if two
  decide at once, both write the same value and the tables keep one version);
- an orphan is dropped when the entry is visible again (its owner came back, or someone
  adopted it), when a tombstone appears (someone deleted it), when this agent leaves the
  scope, or after `window` seconds (a deletion we never saw must not be undone later);
- cost: `note` is O(1) per change; whether a tombstone is behind the disappearances is
  asked by `settle`, called after each batch of changes (before anything can reap the
  tombstone), with one pass over the network's entries per batch, never one per entry.
"""

from __future__ import annotations

import attrs

from swimnet.agent.domain.tables_view import TablesView
from swimnet.tables.changes import ChangeKind, TableChange

ADOPT_WINDOW = 60.0


@attrs.frozen
class Orphan:
    network: str
    table: str
    key: str
    value: bytes
    owner: str
    since: float


class Orphans:
    def __init__(self, tables: frozenset[tuple[str | None, str]], window: float = ADOPT_WINDOW) -> None:
        self.tables = tables
        """(network or None for any, table) pairs whose entries are adopted."""
        self.window = window
        self._items: dict[tuple[str, str, str], Orphan] = {}
        self._fresh: set[tuple[str, str, str]] = set()
        """Noted since the last `settle`."""

    def __len__(self) -> int:
        return len(self._items)

    def watched(self, network: str, table: str) -> bool:
        return (network, table) in self.tables or (None, table) in self.tables

    def note(self, change: TableChange, view: TablesView, me: str, now: float) -> None:
        """Record a DELETED change (`settle` then drops it if it was a deletion)."""
        if change.kind is not ChangeKind.DELETED or change.owner == me:
            return
        if not self.watched(change.network, change.table) or not view.is_joined(change.network):
            return
        key = (change.network, change.table, change.key)
        self._items[key] = Orphan(change.network, change.table, change.key, change.value, change.owner, now)
        self._fresh.add(key)

    def settle(self, view: TablesView) -> None:
        """Drop the orphans noted since the last call that a tombstone explains."""
        by_network: dict[str, list[tuple[str, str, str]]] = {}
        for key in self._fresh:
            by_network.setdefault(key[0], []).append(key)
        self._fresh.clear()
        for network, keys in by_network.items():
            deleted = view.deleted_keys(network)
            for key in keys:
                if (key[1], key[2]) in deleted:
                    self._items.pop(key, None)

    def due(self, view: TablesView, me: str, now: float) -> list[Orphan]:
        """The orphans this agent should re-publish now; resolved or expired ones are dropped."""
        self.settle(view)
        out: list[Orphan] = []
        deleted: dict[str, set[tuple[str, str]]] = {}
        for key, orphan in list(self._items.items()):
            network, table, entry_key = key
            joined = view.is_joined(network)
            if joined and network not in deleted:
                deleted[network] = view.deleted_keys(network)
            if (
                now - orphan.since > self.window
                or not joined
                or view.visible(network, table, entry_key) is not None
                or (table, entry_key) in deleted[network]
            ):
                del self._items[key]
                continue
            if min([me, *view.peers(network)]) == me:
                del self._items[key]
                out.append(orphan)
        return out
