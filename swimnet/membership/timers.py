"""Keyed one-shot timers on a heap, for a sans-IO state machine.

Rules: a key has at most one live deadline (setting it again replaces it); cancelled or
replaced entries stay in the heap and are skipped when they surface (lazy deletion).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable


class Timers:
    __slots__ = ("_heap", "_live", "_seq", "_when")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, int] = {}
        self._when: dict[Hashable, float] = {}
        self._seq = 0

    def set(self, key: Hashable, when: float) -> None:
        self._seq += 1
        self._live[key] = self._seq
        self._when[key] = when
        heapq.heappush(self._heap, (when, self._seq, key))

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)
        self._when.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def due_by(self, key: Hashable, when: float) -> bool:
        """Whether `key` is live with a deadline no later than `when`."""
        return key in self._live and self._when[key] <= when

    def pop_due(self, now: float) -> list[Hashable]:
        """Keys whose deadline is <= now, in deadline order; they are no longer live."""
        due: list[Hashable] = []
        heap, live = self._heap, self._live
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            if live.get(key) == seq:
                del live[key]
                del self._when[key]
                due.append(key)
        return due

    def next_deadline(self) -> float | None:
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
