"""Keyed one-shot timers on a heap, for a sans-IO state machine.

Rules: a key has at most one live deadline (setting it again replaces it); cancelled or
replaced entries stay in the heap and are skipped when they surface (lazy deletion). A key
is live while `_live` maps it to its very heap entry (compared by identity: one dict, no
second table of deadlines); sequence numbers break ties between equal deadlines, in the
order they were set.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable

_Entry = tuple[float, int, Hashable]


class Timers:
    __slots__ = ("_heap", "_live", "_seq")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._live: dict[Hashable, _Entry] = {}
        self._seq = 0

    def set(self, key: Hashable, when: float) -> None:
        self._seq += 1
        self._live[key] = entry = (when, self._seq, key)
        heapq.heappush(self._heap, entry)

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

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
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            key = entry[2]
            if live.get(key) is entry:
                del live[key]
                due.append(key)
        return due

    def next_deadline(self) -> float | None:
        heap, live = self._heap, self._live
        while heap:
            entry = heap[0]
            if live.get(entry[2]) is entry:
                return entry[0]
            heapq.heappop(heap)
        return None
