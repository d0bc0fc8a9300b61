"""Topology as membership's ping delegate and peer selection: Vivaldi coordinates learned
from direct probe acks, and latency-biased choice of gossip targets, helpers and partners.
(The coordinates of members we never probed arrive through swimnet.layers.coordinates, which
shares our `PeerCoordinates`.)

Rules:
- the prober asks, the acker answers: a ping with an even sequence number asks for the
  peer's coordinate, and our ack to it carries ours (an odd one gets a bare ack); we ask on
  the probes `PeerCoordinates.ask_for_coordinate` picks (every `coordinate_every`-th, far
  fewer in a flat network, and always while we are unplaced or lack the peer's), by
  skipping one sequence number at most; `coordinate_every` 0 turns ack coordinates off
  (we neither ask nor answer).
  (Pings carry no payload, and memberlist's ping has none: a parity keeps the wire as it is.)
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
    __slots__ = ("_acks_carry", "_config", "_observer", "_rng", "_stats", "coordinates")

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
        self._acks_carry = bool(config.coordinate_every)
        """Acks carry coordinates (`coordinate_every` is not 0): read on every probe and ping,
        held here so they do not touch the (frozen) config."""
        self.coordinates = PeerCoordinates(
            rng,
            stats=stats,
            epoch=epoch,
            rtt_floor=config.topology_rtt_floor,
            ask_every=config.coordinate_every,
        )

    @property
    def coordinate(self) -> Coordinate:
        return self.coordinates.coordinate

    def rtt_estimate(self, member: str) -> float | None:
        return self.coordinates.rtt_estimate(member)

    # PingDelegate

    def ping_seq(self, member: str, seq: int) -> int:
        ask = self._acks_carry and self.coordinates.ask_for_coordinate(member)
        return seq if (seq % 2 == 0) == ask else (seq + 1) & 0xFFFFFFFF

    def ack_payload(self, seq: int, prober: str) -> bytes:
        if seq % 2 or not self._acks_carry:
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
