"""Entries of one network: tables of key -> Entry, plus the network's digest.

Invariants: an entry is in `digest` iff its owner is not failed (kept by the caller, which
knows who failed; `add`/`remove` are told which); `size` counts every stored version and
`live[owner]` the owner's live (not deleted) ones, for the caps of `TablesConfig`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from swimnet.tables.digest import Digest
from swimnet.tables.entry import Entry


class NetworkStore:
    __slots__ = ("digest", "live", "size", "tables")

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Entry]] = {}
        self.digest = Digest()
        self.size = 0
        self.live: Counter[str] = Counter()

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
        if not entry.deleted:
            self.live[entry.owner] += 1
        if in_digest:
            self.digest.add(entry)

    def remove(self, entry: Entry, in_digest: bool) -> None:
        rows = self.tables[entry.table]
        del rows[entry.key]
        if not rows:
            del self.tables[entry.table]
        self.size -= 1
        if not entry.deleted:
            self.live[entry.owner] -= 1
            if not self.live[entry.owner]:
                del self.live[entry.owner]
        if in_digest:
            self.digest.remove(entry)

    def entries(self) -> Iterator[Entry]:
        for rows in self.tables.values():
            yield from rows.values()

    def owned_by(self, owner: str) -> list[Entry]:
        return [e for e in self.entries() if e.owner == owner]

    def has_room(
        self, owner: str, deleted: bool, old: Entry | None, max_owner: int, max_total: int
    ) -> str | None:
        """Whether a version (owner, deleted) may replace `old` (None: a new key) within the
        caps; None if so, else the name of the cap it would break."""
        if old is None and self.size >= max_total:
            return "network"
        adds_live = not deleted and (old is None or old.deleted or old.owner != owner)
        if adds_live and self.live[owner] >= max_owner:
            return "owner"
        return None
