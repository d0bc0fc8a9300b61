"""Isolation: noticing that the cluster cannot hear us, and asking to be heard again.

Two kinds of evidence, both local:
- our probes keep failing: `ISOLATION_PROBES` distinct members in a row (or every live
  member we know, if fewer, at least two) failed, with no ack in between. Real members
  do not fail all at once; a node whose packets are dropped (undecodable, filtered, a
  one-way partition) sees exactly this;
- a claim about us we cannot refute: an implausible one, or our numbers are exhausted
  (`membership.incarnation`): peers hold us suspect or dead and will reap us.

Either way the member rejoins: a join push-pull (over a stream) with its seeds and a few
known members, at most once per `interval`. It carries our alive (peers that reaped us take
it as a new member) and brings back their view (so we refute what can be refuted).
"""

from __future__ import annotations

from collections.abc import Callable

ISOLATION_PROBES = 8
REJOIN_FANOUT = 3
"""Known members contacted on a rejoin, besides the seeds."""


class Isolation:
    __slots__ = ("_failed", "_last_rejoin")

    def __init__(self) -> None:
        self._failed: set[str] = set()
        self._last_rejoin: float | None = None

    def probe_ok(self) -> None:
        if self._failed:
            self._failed.clear()

    def probe_failed(self, target: str, live_others: Callable[[], int]) -> bool:
        """Record a failed probe; True if every recent probe failed (we are the isolated one)."""
        self._failed.add(target)
        if len(self._failed) < 2:
            return False
        return len(self._failed) >= ISOLATION_PROBES or len(self._failed) >= live_others()

    def may_rejoin(self, now: float, interval: float) -> bool:
        if self._last_rejoin is not None and now - self._last_rejoin < interval:
            return False
        self._last_rejoin = now
        self._failed.clear()
        return True
