"""Per-network digest: the syncable entries bucketed by key hash, with additive bucket hashes.

Regions form a fixed 3-level tree: level 0 is the whole network, level 1 the 256 buckets
(key hash >> 56), level 2 the 65,536 leaves (key hash >> 48). A region's hash is the sum
mod 2**64 of its entries' version hashes, so `add`/`remove` cost O(1); leaves are kept
sparsely (memory grows with entries, not with the tree).

Invariants: an entry is in the digest iff it is stored and its owner is not failed; level-1
sums and counts equal the sums of their leaves; `entries_in` yields in leaf order, so a
truncated transfer always leaves a suffix of the tree to a later round.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from swimnet.tables.entry import Entry, EntryKey
from swimnet.wire.tables import DENSE_HASHES, FANOUT, SPARSE_RECORD, SUMMARY_RECORD

_MASK = 2**64 - 1
_SUMMARY = struct.Struct(">QQQ")
_SPARSE = struct.Struct(">BQ")


def top_of(kh: int) -> int:
    return kh >> 56


def leaf_of(kh: int) -> int:
    return kh >> 48


class Digest:
    __slots__ = ("count", "leaf_sums", "leaves", "top_counts", "top_sums")

    def __init__(self) -> None:
        self.top_sums = [0] * FANOUT
        self.top_counts = [0] * FANOUT
        self.leaf_sums: dict[int, int] = {}
        self.leaves: dict[int, dict[EntryKey, Entry]] = {}
        self.count = 0

    def add(self, entry: Entry) -> None:
        kh, vh = entry.key_hash, entry.version_hash
        leaf, top = leaf_of(kh), top_of(kh)
        self.top_sums[top] = (self.top_sums[top] + vh) & _MASK
        self.top_counts[top] += 1
        self.leaf_sums[leaf] = (self.leaf_sums.get(leaf, 0) + vh) & _MASK
        self.leaves.setdefault(leaf, {})[(entry.table, entry.key)] = entry
        self.count += 1

    def remove(self, entry: Entry) -> None:
        kh, vh = entry.key_hash, entry.version_hash
        leaf, top = leaf_of(kh), top_of(kh)
        self.top_sums[top] = (self.top_sums[top] - vh) & _MASK
        self.top_counts[top] -= 1
        bucket = self.leaves[leaf]
        del bucket[(entry.table, entry.key)]
        if bucket:
            self.leaf_sums[leaf] = (self.leaf_sums[leaf] - vh) & _MASK
        else:
            del self.leaves[leaf]
            del self.leaf_sums[leaf]
        self.count -= 1

    # -- regions ------------------------------------------------------------------------

    def count_in(self, level: int, index: int) -> int:
        if level == 0:
            return self.count
        if level == 1:
            return self.top_counts[index]
        return len(self.leaves.get(index, ()))

    def child_sums(self, level: int, index: int) -> dict[int, int]:
        """Nonzero hashes of a region's children (child number 0..255 -> sum)."""
        if level == 0:
            return {i: s for i, s in enumerate(self.top_sums) if s}
        base = index << 8
        sums = self.leaf_sums
        return {i: sums[base + i] for i in range(FANOUT) if base + i in sums}

    def entries_in(self, level: int, index: int) -> Iterator[Entry]:
        if level == 0:
            leaves: list[int] | range = sorted(self.leaves)
        elif level == 1:
            leaves = range(index << 8, (index + 1) << 8)
        else:
            leaves = [index]
        for leaf in leaves:
            bucket = self.leaves.get(leaf)
            if bucket:
                yield from bucket.values()

    def with_key_hash(self, kh: int) -> list[Entry]:
        return [e for e in self.leaves.get(leaf_of(kh), {}).values() if e.key_hash == kh]

    def summaries(self, level: int, index: int) -> bytes:
        pack = _SUMMARY.pack
        return b"".join(pack(e.key_hash, e.ltime, e.version_hash) for e in self.entries_in(level, index))


def child_region(level: int, index: int, child: int) -> tuple[int, int]:
    return (level + 1, child if level == 0 else (index << 8) | child)


def pack_child_hashes(sums: dict[int, int]) -> bytes:
    if len(sums) * SPARSE_RECORD < DENSE_HASHES:
        return b"".join(_SPARSE.pack(i, sums[i]) for i in sorted(sums))
    return b"".join(sums.get(i, 0).to_bytes(8, "big") for i in range(FANOUT))


def unpack_child_hashes(data: bytes) -> dict[int, int]:
    """Nonzero child sums of a blob already shape-checked by the wire decoder."""
    if len(data) == DENSE_HASHES:
        sums = (int.from_bytes(data[i : i + 8], "big") for i in range(0, DENSE_HASHES, 8))
        return {i: s for i, s in enumerate(sums) if s}
    return {i: s for i, s in _SPARSE.iter_unpack(data) if s}


def unpack_summaries(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(key hash, ltime, version hash) records of a blob of SUMMARY_RECORD-byte records."""
    assert len(data) % SUMMARY_RECORD == 0
    return _SUMMARY.iter_unpack(data)


def pack_wants(hashes: list[int]) -> bytes:
    return b"".join(kh.to_bytes(8, "big") for kh in hashes)


def unpack_wants(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 8], "big") for i in range(0, len(data), 8)]
