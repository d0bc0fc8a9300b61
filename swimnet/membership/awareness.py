"""Lifeguard local health ("awareness"): a score in 0..max-1 that stretches probe intervals.

Missed nacks and refutations raise the score, successful probes lower it; a node that is
itself slow therefore probes (and accuses) less eagerly.
"""

from __future__ import annotations

from swimnet.membership.formulas import scale_by_health


class Awareness:
    __slots__ = ("max", "score")

    def __init__(self, max_multiplier: int) -> None:
        self.max = max_multiplier
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(self.max - 1, max(0, self.score + delta))

    def scale(self, interval: float) -> float:
        return scale_by_health(interval, self.score)
