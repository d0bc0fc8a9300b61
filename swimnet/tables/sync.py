"""Digest-first anti-entropy for one network section: what to answer to what the peer sent.

Protocol (both sides answer every section they receive with `Response.run`; the initiator
starts from `describe(digest, 0, 0)`; `conversation` drives the rounds):
- a region is described either by its child hashes (when it holds more than `summary_max`
  entries and is not a leaf) or by summaries of all its entries (key hash, ltime, version
  hash);
- child hashes received: for each child whose hash differs, if the peer's is zero push all
  of ours; else describe our child (an empty summary if we hold none, which makes the peer
  push all of its);
- summaries received: per key hash, push ours when newer or missing there, want theirs when
  newer or missing here (equal ltime but different version: both);
- wants received: push every syncable entry with that key hash;
- everything is produced in leaf order within a byte/entry budget; when the budget runs out
  the rest is left out and `truncated` is set, and because what was sent gets resolved, the
  next round's digest differs only in what is left.

The peer's summaries and child hashes are never trusted beyond their shape: a lie only makes
us send or ask for more than needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from swimnet.tables.digest import (
    Digest,
    child_region,
    pack_child_hashes,
    pack_wants,
    unpack_child_hashes,
    unpack_summaries,
    unpack_wants,
)
from swimnet.tables.entry import Entry, EntryKey
from swimnet.wire.tables import LEVELS, MAX_SECTION_ENTRIES, MAX_WANTS, EntryRecord, Region

ENTRY_OVERHEAD = 26
"""Most msgpack framing of an entry record: list 1, str/bin headers 2+3+3+2, ltime 9, flag 1,
residual 5."""
REGION_OVERHEAD = 16


class Budget:
    """Bytes and entries an outgoing message may still carry (estimated, conservatively).

    The first item is always accepted, so every round makes progress whatever the cap.
    """

    def __init__(self, max_bytes: int, max_entries: int = MAX_SECTION_ENTRIES) -> None:
        self.bytes = max_bytes
        self.entries = max_entries
        self.exhausted = False
        self._empty = True

    def spend(self, size: int, entries: int = 0) -> bool:
        if (size > self.bytes or entries > self.entries) and not self._empty:
            self.exhausted = True
            return False
        self.bytes = max(0, self.bytes - size)
        self.entries -= entries
        self._empty = False
        return True


def _text_size(s: str) -> int:
    return len(s) if s.isascii() else 4 * len(s)


def entry_size(e: Entry) -> int:
    """Upper bound of an entry record's encoded size."""
    return _text_size(e.table) + _text_size(e.key) + _text_size(e.owner) + len(e.value) + ENTRY_OVERHEAD


def residual(e: Entry, now: float) -> int:
    """Whole seconds until a tombstone is reaped, rounded down so relays never extend it."""
    if e.reap_at is None:
        return 0
    return max(0, min(2**32 - 1, math.floor(e.reap_at - now)))


def to_record(e: Entry, now: float) -> EntryRecord:
    return EntryRecord(e.table, e.key, e.value, e.owner, e.ltime, e.deleted, residual(e, now))


def describe(digest: Digest, level: int, index: int, summary_max: int) -> tuple[list[Region], list[Region]]:
    """Our description of a region: ([child hashes], []) or ([], [summaries])."""
    if level == LEVELS - 1 or digest.count_in(level, index) <= summary_max:
        return [], [Region(level, index, digest.summaries(level, index))]
    return [Region(level, index, pack_child_hashes(digest.child_sums(level, index)))], []


class Response:
    """The answer being built for one section."""

    def __init__(self, digest: Digest, budget: Budget, summary_max: int) -> None:
        self.digest = digest
        self.budget = budget
        self.summary_max = summary_max
        self.hashes: list[Region] = []
        self.summaries: list[Region] = []
        self.pushes: dict[EntryKey, Entry] = {}
        self.wants: list[int] = []

    @property
    def truncated(self) -> bool:
        return self.budget.exhausted

    def push(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            if self.budget.exhausted:
                return
            k = (e.table, e.key)
            if k not in self.pushes and self.budget.spend(entry_size(e), 1):
                self.pushes[k] = e

    def want(self, kh: int) -> None:
        if len(self.wants) < MAX_WANTS and self.budget.spend(8):
            self.wants.append(kh)

    def on_wants(self, data: bytes) -> None:
        for kh in unpack_wants(data):
            if self.budget.exhausted:
                return
            self.push(self.digest.with_key_hash(kh))

    def on_summaries(self, region: Region) -> None:
        theirs: dict[int, list[tuple[int, int]]] = {}
        for kh, ltime, vh in unpack_summaries(region.data):
            theirs.setdefault(kh, []).append((ltime, vh))
        mine: dict[int, list[Entry]] = {}
        for e in self.digest.entries_in(region.level, region.index):
            mine.setdefault(e.key_hash, []).append(e)
        for kh, ours in mine.items():
            if self.budget.exhausted:
                return
            other = theirs.pop(kh, None)
            if other is None:
                self.push(ours)
            elif len(ours) == 1 and len(other) == 1:
                e, (ltime, vh) = ours[0], other[0]
                if e.version_hash == vh:
                    continue
                if e.ltime >= ltime:
                    self.push(ours)
                if e.ltime <= ltime:
                    self.want(kh)
            elif sorted(e.version_hash for e in ours) != sorted(vh for _, vh in other):
                self.push(ours)  # a key hash collision: ship both ways, merging sorts it out
                self.want(kh)
        for kh in theirs:
            if self.budget.exhausted:
                return
            self.want(kh)

    def on_hashes(self, region: Region) -> None:
        theirs = unpack_child_hashes(region.data)
        mine = self.digest.child_sums(region.level, region.index)
        for child in sorted(theirs.keys() | mine.keys()):
            if self.budget.exhausted:
                return
            their_sum = theirs.get(child, 0)
            if their_sum == mine.get(child, 0):
                continue
            level, index = child_region(region.level, region.index, child)
            if their_sum == 0:
                self.push(self.digest.entries_in(level, index))
                continue
            hashes, summaries = describe(self.digest, level, index, self.summary_max)
            size = sum(len(r.data) + REGION_OVERHEAD for r in hashes + summaries)
            if self.budget.spend(size):
                self.hashes += hashes
                self.summaries += summaries

    def run(self, wants: bytes, summaries: Iterable[Region], hashes: Iterable[Region]) -> None:
        """Answer a section's wants, then summaries, then hashes (a region repeated is
        answered once, so a peer cannot make us scan a region many times)."""
        self.on_wants(wants)
        seen: set[tuple[bool, int, int]] = set()
        for is_hashes, regions in ((False, summaries), (True, hashes)):
            for region in regions:
                if self.budget.exhausted:
                    return
                if (is_hashes, region.level, region.index) in seen:
                    continue
                seen.add((is_hashes, region.level, region.index))
                if is_hashes:
                    self.on_hashes(region)
                else:
                    self.on_summaries(region)

    def packed_wants(self) -> bytes:
        return pack_wants(self.wants)
