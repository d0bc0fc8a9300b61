"""Lamport clock (one for network events, one for table events, as NetworkDB).

Rules: `increment` returns a time greater than every time returned or witnessed before;
`witness` never moves the clock backwards.
"""

from __future__ import annotations


class LamportClock:
    __slots__ = ("time",)

    def __init__(self, time: int = 0) -> None:
        self.time = time

    def increment(self) -> int:
        self.time += 1
        return self.time

    def witness(self, other: int) -> None:
        if other > self.time:
            self.time = other
