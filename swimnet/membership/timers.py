"""Keyed one-shot timers on a heap, for a sans-IO state machine.

Rules: a key has at most one live deadline (setting it again replaces it); cancelled or
replaced entries stay in the heap and are skipped when they surface (lazy deletion). A key
is live while `_live` maps it to its very heap entry (compared by identity: one dict, no
second table of deadlines); sequence numbers break ties between equal deadlines, in the
order they were set.

The earliest live deadline is cached (`next_deadline` is asked after every input, most of
which change no timer): while `_known` holds, `_next` is exactly the minimum over the live
entries (None: none). Setting a key keeps it known unless the entry replaced may have been
the minimum; cancelling one that may have been it, or popping due keys, forgets it.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

_Entry = tuple[float, int, Hashable]


class Timers:
    __slots__ = ("_heap", "_known", "_live", "_next", "_seq")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, _Entry] = {}
        self._seq = 0
        self._next: float | None = None
        self._known = True

    def set(self, key: Hashable, when: float) -> None:
        self._seq += 1
        live = self._live
        old = live.get(key)
        live[key] = entry = (when, self._seq, key)
        heapq.heappush(self._heap, entry)
        if self._known:
            nxt = self._next
            if old is not None and nxt is not None and old[0] <= nxt:
                self._known = False  # the replaced entry may have been the earliest
            elif nxt is None or when < nxt:
                self._next = when

    def cancel(self, key: Hashable) -> None:
        entry = self._live.pop(key, None)
        if entry is not None and self._known:
            nxt = self._next
            if nxt is not None and entry[0] <= nxt:
                self._known = False

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def due_by(self, key: Hashable, when: float) -> bool:
        """Whether `key` is live with a deadline no later than `when`."""
        entry = self._live.get(key)
        return entry is not None and entry[0] <= when

    def pop_due(self, now: float) -> list[Hashable]:
        """Keys whose deadline is <= now, in deadline order; they are no longer live."""
        due: list[Hashable] = []
        heap, live = self._heap, self._live
        if heap and heap[0][0] <= now:
            self._known = False
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            key = entry[2]
            if live.get(key) is entry:
                del live[key]
                due.append(key)
        return due

    def next_deadline(self) -> float | None:
        if self._known:
            return self._next
        heap, live = self._heap, self._live
        while heap:
            entry = heap[0]
            if live.get(entry[2]) is entry:
                self._next = entry[0]
                self._known = True
                return entry[0]
            heapq.heappop(heap)
        self._next = None
        self._known = True
        return None
