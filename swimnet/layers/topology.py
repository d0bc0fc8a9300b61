"""Topology as membership's ping delegate and peer selection: Vivaldi coordinates learned
from direct probe acks, and latency-biased choice of gossip targets, helpers and partners.

Rules:
- our coordinate rides on every `coordinate_every`-th ack (by the prober's sequence
  number): half the samples, a fraction of the bytes;
- every direct probe round trip updates the coordinates, then goes to the optional
  `PingObserver` (e.g. the agent's RTT histogram) with the same `now`;
- choice is biased by `topology_bias`, keeping a uniform share (`topology_uniform_share`)
  so far zones still hear everything; "near" is relative to the median RTT, off beneath
  `topology_rtt_floor`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Container, Sequence
from typing import Protocol

from swimnet.config import Config
from swimnet.topology.coordinate import Coordinate
from swimnet.topology.selection import choose_excluding
from swimnet.topology.tracker import PeerCoordinates


class PingObserver(Protocol):
    """Told of every direct probe round trip (an observer: it changes nothing)."""

    def observe_rtt(self, member: str, rtt: float, now: float) -> None: ...


class TopologyDelegate:
    def __init__(
        self, config: Config, rng: random.Random, stats: Counter[str], observer: PingObserver | None = None
    ) -> None:
        self._config = config
        self._rng = rng
        self._observer = observer
        self.coordinates = PeerCoordinates(rng, stats=stats)

    @property
    def coordinate(self) -> Coordinate:
        return self.coordinates.coordinate

    def rtt_estimate(self, member: str) -> float | None:
        return self.coordinates.rtt_estimate(member)

    # PingDelegate

    def ack_payload(self, seq: int) -> bytes:
        every = self._config.coordinate_every
        return self.coordinates.ack_payload() if every and seq % every == 0 else b""

    def notify_ping_complete(self, member: str, rtt: float, payload: bytes, now: float) -> None:
        self.coordinates.observe(member, rtt, payload)
        if self._observer is not None:
            self._observer.observe_rtt(member, rtt, now)

    def forget(self, member: str) -> None:
        self.coordinates.forget(member)

    # PeerSelection

    def choose(self, candidates: Sequence[str], k: int, skip: Container[str]) -> list[str]:
        cfg = self._config
        return choose_excluding(
            candidates, k, self._rng, self._remoteness, cfg.topology_bias, skip, cfg.topology_uniform_share
        )

    def _remoteness(self, member: str) -> float | None:
        return self.coordinates.remoteness(member, self._config.topology_rtt_floor)
