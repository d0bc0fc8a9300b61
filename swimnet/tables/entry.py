"""Entry versions, their total order, and their 64-bit digest hashes.

Rules:
- an entry is one version of (network, table, key): value, owner, Lamport time, tombstone
  flag and (tombstones only) the time it is reaped;
- versions are totally ordered by `order()` = (ltime, owner, deleted, value): the greater
  wins. So at equal Lamport time the greater owner name wins, then a tombstone beats a live
  entry, then the greater value bytes; every node picks the same winner, and merging is
  commutative, associative and idempotent (a max);
- `key_hash` (64 bits of BLAKE2b over table and key) places an entry in the digest;
  `version_hash` (64 bits over everything that `order()` compares, plus the key) is what the
  digest sums, so two nodes agree on a bucket only if they hold the same versions.
"""

from __future__ import annotations

import hashlib

import attrs

EntryKey = tuple[str, str]
"""(table, key) inside one network."""
Order = tuple[int, str, bool, bytes]


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def key_hash(table: str, key: str) -> int:
    h = hashlib.blake2b(_field(table.encode()) + _field(key.encode()), digest_size=8, person=b"swimnet-key")
    return int.from_bytes(h.digest(), "big")


def version_hash(kh: int, owner: str, ltime: int, deleted: bool, value: bytes) -> int:
    data = b"".join(
        (
            kh.to_bytes(8, "big"),
            _field(owner.encode()),
            ltime.to_bytes(8, "big"),
            b"\x01" if deleted else b"\x00",
        )
    )
    h = hashlib.blake2b(data + value, digest_size=8, person=b"swimnet-version")
    return int.from_bytes(h.digest(), "big")


@attrs.frozen
class Entry:
    table: str
    key: str
    value: bytes
    owner: str
    ltime: int
    deleted: bool
    reap_at: float | None
    key_hash: int
    version_hash: int

    def order(self) -> Order:
        return (self.ltime, self.owner, self.deleted, self.value)


def make_entry(
    table: str, key: str, value: bytes, owner: str, ltime: int, deleted: bool, reap_at: float | None
) -> Entry:
    kh = key_hash(table, key)
    return Entry(
        table, key, value, owner, ltime, deleted, reap_at, kh, version_hash(kh, owner, ltime, deleted, value)
    )


def wins(new: Order, old: Entry | None) -> bool:
    """Whether a version ordered `new` replaces the stored `old` (None: nothing stored)."""
    return old is None or new > old.order()
