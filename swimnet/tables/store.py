"""Entries of one network: tables of key -> Entry, plus the network's digest.

Invariant (kept by the caller, which knows who failed): an entry is in `digest` iff its owner
is not failed; `add`/`remove` are told which.
"""

from __future__ import annotations

from collections.abc import Iterator

from swimnet.tables.digest import Digest
from swimnet.tables.entry import Entry


class NetworkStore:
    __slots__ = ("digest", "size", "tables")

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Entry]] = {}
        self.digest = Digest()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def get(self, table: str, key: str) -> Entry | None:
        rows = self.tables.get(table)
        return None if rows is None else rows.get(key)

    def rows(self, table: str) -> dict[str, Entry]:
        return self.tables.get(table, {})

    def add(self, entry: Entry, in_digest: bool) -> None:
        """Store `entry`; the slot must be free (remove the old version first)."""
        self.tables.setdefault(entry.table, {})[entry.key] = entry
        self.size += 1
        if in_digest:
            self.digest.add(entry)

    def remove(self, entry: Entry, in_digest: bool) -> None:
        rows = self.tables[entry.table]
        del rows[entry.key]
        if not rows:
            del self.tables[entry.table]
        self.size -= 1
        if in_digest:
            self.digest.remove(entry)

    def entries(self) -> Iterator[Entry]:
        for rows in self.tables.values():
            yield from rows.values()

    def owned_by(self, owner: str) -> list[Entry]:
        return [e for e in self.entries() if e.owner == owner]
