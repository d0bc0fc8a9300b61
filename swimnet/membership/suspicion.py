"""One suspicion timer (Lifeguard): confirmations from distinct accusers shorten it.

Rules: the first accuser is not a confirmation; each other accuser counts once; at most
`k` confirmations count; the deadline never falls below start + min.
"""

from __future__ import annotations

from swimnet.membership.formulas import remaining_suspicion_time


class Suspicion:
    __slots__ = ("_k", "_max", "_min", "_start", "confirmations", "incarnation", "seen")

    def __init__(
        self, accuser: str, k: int, min_timeout: float, max_timeout: float, start: float, incarnation: int
    ) -> None:
        self._k = k
        self._min = min_timeout
        self._max = max_timeout if k >= 1 else min_timeout
        self._start = start
        self.incarnation = incarnation
        self.confirmations = 0
        self.seen = {accuser}

    def confirm(self, accuser: str) -> bool:
        """Count an independent confirmation; True if it was new (and should be re-gossiped)."""
        if self.confirmations >= self._k or accuser in self.seen:
            return False
        self.seen.add(accuser)
        self.confirmations += 1
        return True

    @property
    def deadline(self) -> float:
        return self._start + remaining_suspicion_time(self.confirmations, self._k, 0.0, self._min, self._max)
