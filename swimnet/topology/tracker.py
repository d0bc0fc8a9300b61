"""Per-node topology state: our Vivaldi coordinate and the last coordinate of each peer.

Rules: samples come only from direct UDP probe acks (the engine calls `observe` with the
measured RTT and the ack payload); a payload that does not decode or a sample the Vivaldi
client rejects is counted in `stats` by reason and changes nothing; `ack_payload()` is our
coordinate, msgpack-encoded once per change.
"""

from __future__ import annotations

import random
from collections import Counter

import msgpack

from swimnet.errors import DecodeError
from swimnet.topology.codec import coordinate_from_wire, coordinate_to_wire
from swimnet.topology.coordinate import Coordinate
from swimnet.topology.vivaldi import CoordinateClient, RejectedSample, VivaldiConfig

_PAYLOAD_VERSION = 1


class PeerCoordinates:
    def __init__(
        self, rng: random.Random, config: VivaldiConfig | None = None, stats: Counter[str] | None = None
    ) -> None:
        self.client = CoordinateClient(config or VivaldiConfig(), rng)
        self.peers: dict[str, Coordinate] = {}
        self.stats: Counter[str] = Counter() if stats is None else stats
        self._payload: bytes | None = None

    @property
    def coordinate(self) -> Coordinate:
        return self.client.coordinate

    def ack_payload(self) -> bytes:
        if self._payload is None:
            self._payload = msgpack.packb([_PAYLOAD_VERSION, coordinate_to_wire(self.client.coordinate)])
        return self._payload

    def observe(self, peer: str, rtt: float, payload: bytes) -> None:
        """One direct probe round trip to `peer`, whose ack carried `payload`."""
        if not payload:
            self.stats["coordinate_missing"] += 1
            return
        try:
            obj = msgpack.unpackb(payload, max_bin_len=0, max_str_len=0, max_map_len=0, max_array_len=64)
            if type(obj) is not list or len(obj) != 2 or obj[0] != _PAYLOAD_VERSION:
                raise DecodeError("coordinate payload: expected [1, coordinate]")
            coord = coordinate_from_wire(obj[1], self.client.config.dimensionality)
        except DecodeError:
            self.stats["coordinate_undecodable"] += 1
            return
        except Exception:  # msgpack's own errors on garbage
            self.stats["coordinate_undecodable"] += 1
            return
        try:
            self.client.update(peer, coord, rtt)
        except RejectedSample as exc:
            self.stats[f"coordinate_rejected_{exc.reason}"] += 1
            return
        self.peers[peer] = coord
        self._payload = None
        self.stats["coordinate_updates"] += 1

    def rtt_estimate(self, peer: str) -> float | None:
        return self.client.rtt_estimate(self.peers.get(peer))

    def forget(self, peer: str) -> None:
        self.peers.pop(peer, None)
        self.client.forget(peer)
