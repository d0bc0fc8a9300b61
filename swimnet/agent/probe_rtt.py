"""The agent's histogram of direct probe round-trip times, for the metrics endpoint.

Rule: it is the node's `ping_observer` (given to `open_node` at construction): it is told of
every ack to one of our direct probes and only counts; it never changes the protocol.
"""

from __future__ import annotations

import bisect

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the probe RTT histogram buckets (+Inf is implied)."""


class RttHistogram:
    """Cumulative-style counts per bucket, their sum and count (Prometheus histogram data)."""

    def __init__(self, buckets: tuple[float, ...] = RTT_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe_rtt(self, member: str, rtt: float, now: float) -> None:
        self.observe(rtt)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """[(upper bound as text, observations <= it)], ending with ("+Inf", count)."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out
