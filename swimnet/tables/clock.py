"""Lamport clock (one for network events, one for table events, as NetworkDB).

Rules: `increment` returns a time greater than every time returned or witnessed before;
`witness` never moves the clock backwards; nothing moves it past `MAX_LTIME` (the wire's
uint64): `increment` refuses (LocalProtocolError) before changing anything.

Plausibility: a peer's time more than `LTIME_WINDOW` ahead of ours is refused by the layer
above (`TableState`), never witnessed. A clock advances by one per write anywhere in the
cluster, so 2**40 (a thousand billion writes) is out of any real cluster's reach, and still
leaves 2**24 such steps before the wire's bound: one forged event at 2**64 - 1 no longer
ends every node's ability to write.
"""

from __future__ import annotations

from swimnet.errors import LocalProtocolError
from swimnet.wire.limits import MAX_LTIME

LTIME_WINDOW = 2**40


class LamportClock:
    __slots__ = ("time",)

    def __init__(self, time: int = 0) -> None:
        self.time = time

    def increment(self) -> int:
        if self.time >= MAX_LTIME:
            raise LocalProtocolError("Lamport clock exhausted (a peer pushed it to the wire's bound)")
        self.time += 1
        return self.time

    def plausible(self, other: int) -> bool:
        """Whether a peer's time is within LTIME_WINDOW of ours (else: refuse, never witness)."""
        return other <= self.time + LTIME_WINDOW

    def witness(self, other: int) -> None:
        if other > self.time:
            self.time = min(other, MAX_LTIME)
