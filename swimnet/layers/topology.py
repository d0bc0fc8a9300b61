"""Topology as membership's ping delegate and peer selection: Vivaldi coordinates learned
from direct probe acks, and latency-biased choice of gossip targets, helpers and partners.
(The coordinates of members we never probed arrive through swimnet.layers.coordinates, which
shares our `PeerCoordinates`.)

Rules:
- our coordinate rides on every `coordinate_every`-th ack (by the prober's sequence
  number), and on every ack to a prober whose trusted coordinate we do not hold (a fresh
  node: every probe it makes helps to place it); 0 turns ack coordinates off;
- every direct probe round trip updates the coordinates, then goes to the optional
  `PingObserver` (e.g. the agent's RTT histogram) with the same `now`;
- choice is biased by `topology_bias`, keeping a uniform share (`topology_uniform_share`)
  so far zones still hear everything; "near" is relative to the median RTT, off beneath
  `topology_rtt_floor`, and off while estimates are not trustworthy (see
  swimnet.topology.tracker); the biased picks' tournaments are drawn among the members
  whose coordinate we hold, so a few dozen known of thousands suffice; while every peer
  scores alike (estimates untrusted, or a flat network) no RTT estimate is computed.
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
        self,
        config: Config,
        rng: random.Random,
        stats: Counter[str],
        observer: PingObserver | None = None,
        *,
        epoch: int = 1,
    ) -> None:
        self._config = config
        self._rng = rng
        self._stats = stats
        self._observer = observer
        self.coordinates = PeerCoordinates(rng, stats=stats, epoch=epoch, rtt_floor=config.topology_rtt_floor)

    @property
    def coordinate(self) -> Coordinate:
        return self.coordinates.coordinate

    def rtt_estimate(self, member: str) -> float | None:
        return self.coordinates.rtt_estimate(member)

    # PingDelegate

    def ack_payload(self, seq: int, prober: str) -> bytes:
        every = self._config.coordinate_every
        if not every or (seq % every and self.coordinates.knows(prober)):
            return b""
        payload = self.coordinates.ack_payload()
        self._stats["coordinate_ack_bytes"] += len(payload)
        return payload

    def notify_ping_complete(self, member: str, rtt: float, payload: bytes, now: float) -> None:
        self.coordinates.observe(member, rtt, payload)
        if self._observer is not None:
            self._observer.observe_rtt(member, rtt, now)

    def forget(self, member: str) -> None:
        self.coordinates.forget(member)

    # PeerSelection

    def choose(self, candidates: Sequence[str], k: int, skip: Container[str]) -> list[str]:
        cfg = self._config
        coordinates = self.coordinates
        return choose_excluding(
            candidates,
            k,
            self._rng,
            coordinates.remoteness,
            cfg.topology_bias,
            skip,
            cfg.topology_uniform_share,
            known=coordinates.known_peers(),
        )
