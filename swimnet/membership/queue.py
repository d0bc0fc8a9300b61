"""Transmit-limited broadcast queue: what gets piggybacked on outgoing packets.

Rules (memberlist's TransmitLimitedQueue, made O(taken) per packet):
- a broadcast is an already-encoded message with a `key`; queueing a broadcast with the key
  of a queued one replaces it (a newer update about a subject invalidates the older);
- `take(budget, per_item_overhead, n_nodes)` returns the least-transmitted broadcasts first,
  newest (by queueing order) first among equals, that fit in `budget` bytes, and counts one
  transmission for each; a broadcast is dropped after `retransmit_limit(mult, n_nodes)`
  transmissions;
- `on_done` callbacks run when a broadcast is dropped after its last transmission, is
  invalidated, or is pruned (used by leave to know its message went out);
- the queue never holds more than `max_len` broadcasts: beyond it, the most transmitted
  (oldest among equals) are pruned and counted in `pruned`.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Hashable

from swimnet.membership.formulas import retransmit_limit

_SMALLEST_MESSAGE = 3
"""No message encodes in fewer bytes (a nack with a small sequence number)."""
_MAX_SKIPS = 16
"""Broadcasts that did not fit, inspected before giving up on filling a packet."""


class _Item:
    __slots__ = ("data", "key", "level", "on_done", "seq")

    def __init__(self, key: Hashable, data: bytes, on_done: Callable[[], None] | None, seq: int) -> None:
        self.key = key
        self.data = data
        self.level = 0
        self.on_done = on_done
        self.seq = seq


class BroadcastQueue:
    """Broadcasts bucketed by how many times each was sent; each bucket sorted by age.

    Memory per broadcast: one `_Item`, its entry in `items` and its place in one level list
    (the items themselves, ordered by sequence number); a transmission moves an item from
    one level to the next and touches nothing else. An emptied queue frees its tables (a
    dict keeps the size it once had until cleared; `items` is cleared in place, as owners
    hold a reference to it).
    """

    wakes_gossip = True
    """A queued broadcast wakes the idle gossip tick (see `BroadcastSource`)."""

    def __init__(self, retransmit_mult: int, max_len: int = 100_000) -> None:
        self.retransmit_mult = retransmit_mult
        self.max_len = max_len
        self.pruned = 0
        self._levels: list[list[_Item]] = [[]]
        """Per transmit count, its broadcasts by ascending sequence number (oldest first)."""
        self.items: dict[Hashable, _Item] = {}
        """The queued broadcasts by key (read it, never write it: its truth is "not empty",
        cheaper to ask than len())."""
        self.pending = (self.items,)
        """`items`, as a `BroadcastSource` says what it may hold."""
        self._seq = 0

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.items

    def queue(self, key: Hashable, data: bytes, on_done: Callable[[], None] | None = None) -> None:
        """Queue `data`, replacing any queued broadcast with the same key."""
        old = self.items.get(key)
        if old is not None:
            self._remove(old)
            if old.on_done is not None:
                old.on_done()
        self._seq += 1
        item = _Item(key, data, on_done, self._seq)
        self.items[key] = item
        self._levels[0].append(item)  # the newest: always last
        if len(self.items) > self.max_len:
            self._prune(len(self.items) - self.max_len)

    def drop(self, key: Hashable) -> None:
        """Forget a queued broadcast without calling its callback."""
        item = self.items.get(key)
        if item is not None:
            self._remove(item)

    def _remove(self, item: _Item) -> None:
        self._forget(item.key)
        _unlink(self._levels[item.level], item)

    def _forget(self, key: Hashable) -> None:
        items = self.items
        del items[key]
        if not items:
            items.clear()  # an emptied dict keeps its table (a join storm's size) until cleared

    def take(self, budget: int, per_item_overhead: int, n_nodes: int) -> list[bytes]:
        """Encoded broadcasts that fit in `budget` bytes; each counts as transmitted once."""
        if not self.items:
            return []
        taken: list[_Item] = []
        skips = 0
        full = False
        floor = _SMALLEST_MESSAGE + per_item_overhead
        for level in self._levels:
            for item in reversed(level):
                cost = len(item.data) + per_item_overhead
                if cost <= budget:
                    taken.append(item)
                    budget -= cost
                    if budget < floor:
                        full = True
                        break
                else:
                    skips += 1
                    if skips > _MAX_SKIPS:
                        full = True
                        break
            if full:
                break
        if taken:
            limit = retransmit_limit(self.retransmit_mult, n_nodes)
            for item in taken:
                self._promote(item, limit)
        return [item.data for item in taken]

    def _promote(self, item: _Item, limit: int) -> None:
        levels = self._levels
        level = item.level
        _unlink(levels[level], item)
        level += 1
        item.level = level
        if level >= limit:
            self._forget(item.key)
            if item.on_done is not None:
                item.on_done()
            return
        if len(levels) <= level:
            levels.append([])
        target = levels[level]
        if not target or target[-1].seq < item.seq:
            target.append(item)
        else:
            bisect.insort(target, item, key=_SEQ)

    def _prune(self, count: int) -> None:
        for level in reversed(self._levels):
            while level and count > 0:
                item = level[0]  # oldest of the most transmitted
                self._remove(item)
                self.pruned += 1
                count -= 1
                if item.on_done is not None:
                    item.on_done()
            if count == 0:
                return


_SEQ = operator.attrgetter("seq")


def _unlink(level: list[_Item], item: _Item) -> None:
    """Remove `item` from its level (sorted by sequence number)."""
    if level[-1] is item:
        level.pop()
    else:
        del level[bisect.bisect_left(level, item.seq, key=_SEQ)]
