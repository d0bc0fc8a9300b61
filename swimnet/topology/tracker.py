"""Per-node topology state: our Vivaldi coordinate and the last coordinate of each peer.

Rules: samples come only from direct UDP probe acks (the engine calls `observe` with the
measured RTT and the ack payload); a payload that does not decode or a sample the Vivaldi
client rejects is counted in `stats` by reason and changes nothing; `ack_payload()` is our
coordinate, msgpack-encoded (float32) once per change.
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
MIN_KNOWN = 8
"""Peers whose coordinates we must know before "near" means anything."""
_MEDIAN_SAMPLE = 64
_MEDIAN_REFRESH = 256
"""The median RTT (what "near" is relative to) is re-estimated every this many queries."""
_pack = msgpack.Packer(use_single_float=True).pack


class PeerCoordinates:
    def __init__(
        self, rng: random.Random, config: VivaldiConfig | None = None, stats: Counter[str] | None = None
    ) -> None:
        self.client = CoordinateClient(config or VivaldiConfig(), rng)
        self.peers: dict[str, Coordinate] = {}
        self.stats: Counter[str] = Counter() if stats is None else stats
        self._payload: bytes | None = None
        self._median: float | None = None
        self._calls = 0

    @property
    def coordinate(self) -> Coordinate:
        return self.client.coordinate

    def ack_payload(self) -> bytes:
        if self._payload is None:
            # float32 is ample for coordinates (seconds, ~7 significant digits) and halves the ack
            self._payload = _pack([_PAYLOAD_VERSION, coordinate_to_wire(self.client.coordinate)])
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

    def remoteness(self, peer: str, floor: float) -> float | None:
        """0.0 for a near peer, 1.0 for a far one, None if unknown: what peer choice compares.

        Near means an estimated RTT of at most half the median RTT to the peers we know, in a
        network whose median RTT exceeds `floor` (beneath it, a LAN: everyone counts alike).
        Only a distinctly closer group is favoured; in a flat network choices stay uniform
        instead of following coordinate noise. Until we know MIN_KNOWN peers every peer is
        unknown, which also means uniform choices.
        """
        if len(self.peers) < MIN_KNOWN:
            return None
        rtt = self.client.rtt_estimate(self.peers.get(peer))
        if rtt is None:
            return None
        self._calls += 1
        if self._calls >= _MEDIAN_REFRESH or self._median is None:
            self._calls = 0
            self._median = self._median_rtt()
        median = self._median or 0.0
        return 0.0 if median > floor and rtt <= 0.5 * median else 1.0

    def _median_rtt(self) -> float | None:
        names = list(self.peers)
        step = max(1, len(names) // _MEDIAN_SAMPLE)
        rtts = sorted(r for n in names[::step] if (r := self.rtt_estimate(n)) is not None)
        return rtts[len(rtts) // 2] if rtts else None

    def forget(self, peer: str) -> None:
        self.peers.pop(peer, None)
        self.client.forget(peer)
