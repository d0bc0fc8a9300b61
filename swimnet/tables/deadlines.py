"""A lazy min-heap of deadlines.

Rules: `push` never removes an older deadline for the same subject; the owner validates
each popped item against its state (a stale item is simply skipped), so cancelling costs
nothing and the heap holds at most one item per push.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

Subject = tuple[str, ...]


class Deadlines:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Subject]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, when: float, subject: Subject) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), subject))

    def pop_due(self, now: float) -> list[tuple[float, Subject]]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            when, _, subject = heapq.heappop(self._heap)
            due.append((when, subject))
        return due

    def next(self, valid: Callable[[float, Subject], bool]) -> float | None:
        """Earliest valid deadline; stale items at the top are dropped on the way."""
        while self._heap:
            when, _, subject = self._heap[0]
            if valid(when, subject):
                return when
            heapq.heappop(self._heap)
        return None
