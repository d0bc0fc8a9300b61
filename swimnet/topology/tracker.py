"""Per-node topology state: our Vivaldi coordinate, and the latest coordinate of every member
(a `CoordinateBook`), with the rule for when estimates are trustworthy.

Rules:
- our coordinate learns only from direct UDP probe acks (`observe`: the measured RTT and the
  peer's coordinate as the peer itself sent it); the first SEED_UPDATES samples take bigger
  steps (VivaldiConfig.seed_updates), so a fresh node is placed within a few probes;
- a peer's coordinate is used for estimates (selection, `rtt_estimate`) from whatever source
  brought the newest version: its own ack (`observe`), gossip or push-pull (`learn`); a
  coordinate heard from others never moves ours;
- a payload that does not decode or a sample the Vivaldi client rejects is counted in `stats`
  by reason and changes nothing;
- our version is (epoch, updates): the incarnation we started with, and the samples our
  coordinate absorbed; `ack_payload()` is our coordinate with it, encoded once per change;
- asking (`ask_for_coordinate`, once per direct probe: should the ack carry the peer's
  coordinate?): always while our own is not trusted; in a flat network on every
  `ask_every` * FLAT_ASK_SPACING-th probe only (enough to keep our coordinate placed for
  the day the network stops being flat); else on every `ask_every`-th probe, and whenever
  we hold no trusted coordinate of the peer;
- an ack without a coordinate teaches our coordinate nothing (a coordinate we hold for the
  peer may be stale by more than the RTT: learning from it makes ours wander), but its RTT
  counts towards the median;
- the median RTT, what "near" is relative to, is measured: the median of the RTTs of our
  last RTT_WINDOW direct probes (probes go round every member, so it is the median over
  the members). An estimate could not serve: one slow sample can misplace our coordinate
  by milliseconds until the next probes pull it back, and every peer then looks far;
- `flat` says whether the network is flat (the median RTT at or below the RTT floor: a
  LAN), once estimates are trustworthy; `remoteness` estimates nothing there (every known
  peer is "far" alike);
- trust: choices stay unbiased (`remoteness` is None) until our own coordinate absorbed
  TRUSTED_UPDATES samples and we hold MIN_KNOWN trusted peer coordinates; a peer whose
  coordinate is not trusted yet counts as unknown. A fresh node asks for the peer's coordinate
  on every probe, so this takes seconds, not a round of probes over every member;
- publication: once trusted, our coordinate is due for gossip (`take_publication`) when it
  first becomes trusted and whenever it moved materially since the last one published: by
  more than MATERIAL_SHARE of the median RTT (at least of the RTT floor), in the metric that
  bounds how much any estimate to us can change; in a flat network a move is not
  published: no choice there depends on an estimate, and whoever finds the network uneven
  asks for our coordinate on its probes and gets it in every push-pull; once the network
  stops being flat, a move since the last publication is due again; a peer's
  new coordinate `flips` what we held when it moved by more than FLIP_SHARE of it (near
  could turn far).
"""

from __future__ import annotations

import bisect
import math
import random
from array import array
from collections import Counter
from collections.abc import Sequence

from swimnet.errors import DecodeError
from swimnet.topology.book import CoordinateBook, Version, is_trusted
from swimnet.topology.codec import decode_ack_payload, encode_ack_payload
from swimnet.topology.coordinate import Coordinate
from swimnet.topology.vivaldi import CoordinateClient, RejectedSample, VivaldiConfig

MIN_KNOWN = 8
"""Trusted peer coordinates we must hold before "near" means anything."""
SEED_UPDATES = 32
"""Our first samples, taken with a bigger step (see VivaldiConfig.seed_updates)."""
MATERIAL_SHARE = 0.2
"""A move of a fifth of the median RTT is worth telling the peers we talk to about."""
FLAT_ASK_SPACING = 8
"""In a flat network we ask for a peer's coordinate this many times less often."""
FLIP_SHARE = 0.5
"""A change of half the median RTT can turn a near peer far or a far one near: worth
relaying to the others who hold the old coordinate."""
DEFAULT_VIVALDI = VivaldiConfig(seed_updates=SEED_UPDATES)
"""The Vivaldi tuning of a node not given one (frozen: one instance serves every node)."""
RTT_WINDOW = 64
"""The median RTT (what "near" is relative to, and what tells a flat network) is the median
of the RTTs our last this many direct probes measured."""


def moved(a: Coordinate, b: Coordinate) -> float:
    """A bound on how much any RTT estimate to a node changes when it moves from a to b."""
    return math.dist(a.vec, b.vec) + abs(a.height - b.height) + abs(a.adjustment - b.adjustment)


class PeerCoordinates:
    __slots__ = (  # fixed attributes, read on every probe (at N simulated nodes, one object each)
        "_missing", "_own_trusted", "_payload", "_probes", "_published", "_rtt_oldest", "_rtts", "_stats",
        "ask_every", "book", "client", "epoch", "publication_due", "rtt_floor", "vivaldi",
    )  # fmt: skip

    def __init__(
        self,
        rng: random.Random,
        config: VivaldiConfig | None = None,
        stats: Counter[str] | None = None,
        *,
        epoch: int = 1,
        rtt_floor: float = 0.005,
        ask_every: int = 2,
    ) -> None:
        self.client = CoordinateClient(config or DEFAULT_VIVALDI, rng)
        self.book = CoordinateBook()
        self._stats: Counter[str] = Counter() if stats is None else stats
        self._missing = 0
        """Acks without a coordinate not yet in `_stats` ("coordinate_missing"): counted here
        on every such ack, moved into the counters when `stats` is read (`flush_counts`), so
        an ack does not touch the node's counters."""
        self.epoch = epoch
        self.rtt_floor = rtt_floor
        self.ask_every = max(1, ask_every)
        self.vivaldi = self.client.config
        """The client's (frozen) config; without one given, a config shared by every node
        (`DEFAULT_VIVALDI`): read on every probe, one object for a whole simulated cluster."""
        self._own_trusted = False
        """Latched `trusted`: our update count never decreases, so once trusted always
        trusted (asked on every probe: then the client is not touched)."""
        self._probes = 0
        self._payload: bytes | None = None
        self._published: Coordinate | None = None
        self.publication_due: set[str] = set()
        """{"coordinate"} while our coordinate is due for gossip (`take_publication`), else
        empty: a container, so a piggyback source tests it without a call (read it, never
        write it)."""
        self._rtts = array("d")
        """The RTT window in one block of plain doubles (not a float object each: at thousands
        of simulated nodes each cold object a probe touches costs): with n samples (at most
        RTT_WINDOW), `[0, n)` holds them ascending, so the median is read, not sorted, on
        every probe; `[n, 2n)` holds them in arrival order, a ring once full (the oldest at
        `_rtt_oldest`). One insertion and at most one removal per sample keep both halves."""
        self._rtt_oldest = 0

    @property
    def stats(self) -> Counter[str]:
        """Our counters (the node's, when it passed its own), the pending ones moved in."""
        self.flush_counts()
        return self._stats

    def flush_counts(self) -> None:
        """Move the pending "coordinate_missing" count into the counters (a key appears once
        counted, as if counted per ack)."""
        if self._missing:
            self._stats["coordinate_missing"] += self._missing
            self._missing = 0

    @property
    def coordinate(self) -> Coordinate:
        return self.client.coordinate

    @property
    def version(self) -> Version:
        return (self.epoch, self.client.updates)

    @property
    def trusted(self) -> bool:
        """Our own coordinate absorbed enough samples to be worth anything."""
        return is_trusted(self.version)

    # -- direct probes ---------------------------------------------------------------------

    def ack_payload(self) -> bytes:
        if self._payload is None:
            self._payload = encode_ack_payload(self.version, self.client.coordinate)
        return self._payload

    def ask_for_coordinate(self, peer: str) -> bool:
        """Whether the ack of the direct probe we are about to send `peer` should carry its
        coordinate (see the module rules); called once per probe."""
        self._probes = probes = self._probes + 1
        if not self._own_trusted:
            if not is_trusted((self.epoch, self.client.updates)):
                return True
            self._own_trusted = True
        # self.flat() (we are trusted), its calls inlined: asked on every probe
        rtts = self._rtts  # self._median_rtt(), inlined
        n = len(rtts) >> 1
        median = rtts[n >> 1] if n else 0.0
        if self.book.trusted >= MIN_KNOWN and median <= self.rtt_floor:
            return probes % (self.ask_every * FLAT_ASK_SPACING) == 0
        return probes % self.ask_every == 0 or self.book.coordinate(peer) is None

    def observe(self, peer: str, rtt: float, payload: bytes) -> None:
        """One direct probe round trip to `peer`, whose ack carried `payload`."""
        if self.vivaldi.accepts_rtt(rtt):
            rtts = self._rtts  # sorted [0, n), arrival order [n, 2n) (see __init__)
            n = len(rtts) >> 1
            if n == RTT_WINDOW:  # the oldest sample leaves the window, the new one takes its place
                at = n + self._rtt_oldest
                gone = bisect.bisect_left(rtts, rtts[at], 0, n)
                rtts[at] = rtt
                del rtts[gone]  # sorted [0, n - 1), ring [n - 1, 2n - 1)
                bisect.insort(rtts, rtt, 0, n - 1)
                self._rtt_oldest = (self._rtt_oldest + 1) % RTT_WINDOW
            else:
                rtts.append(rtt)  # the ring grows at the end: [n, 2n + 1)
                bisect.insort(rtts, rtt, 0, n)
        if not payload:
            self._missing += 1  # "coordinate_missing", into the counters when read
            return
        try:
            version, coord = decode_ack_payload(payload, self.vivaldi.dimensionality)
        except DecodeError:
            self._stats["coordinate_undecodable"] += 1
            return
        try:
            self.client.update(peer, coord, rtt)
        except RejectedSample as exc:
            self._stats[f"coordinate_rejected_{exc.reason}"] += 1
            return
        self.book.offer(peer, version, coord)
        self._payload = None
        self._stats["coordinate_updates"] += 1
        self._check_material()

    def _check_material(self) -> None:
        if self.publication_due or not self.trusted:
            return
        published = self._published
        if published is None:
            self.publication_due.add("coordinate")
            return
        if self.flat():
            return
        if moved(published, self.client.coordinate) > MATERIAL_SHARE * self._scale():
            self.publication_due.add("coordinate")

    # -- what others tell --------------------------------------------------------------------

    def learn(self, peer: str, version: Version, coord: Coordinate) -> bool:
        """`peer`'s coordinate, heard from anyone (values already checked); True if newer."""
        if not coord.is_compatible_with(self.client.coordinate):
            self._stats["coordinate_rejected_coordinate_incompatible"] += 1
            return False
        return self.book.offer(peer, version, coord)

    def flips(self, old: Coordinate, new: Coordinate) -> bool:
        """`new` differs from `old` (what we held for a peer) enough to change which peers
        it is near to, so the others holding `old` should hear of it."""
        return moved(old, new) > FLIP_SHARE * self._scale()

    def take_publication(self) -> tuple[Version, Coordinate] | None:
        """Our coordinate, if it is due for gossip (then it counts as published)."""
        if not self.publication_due:
            return None
        self.publication_due.clear()
        self._published = coord = self.client.coordinate
        self._stats["coordinate_published"] += 1
        return self.version, coord

    # -- estimates ---------------------------------------------------------------------------

    def rtt_estimate(self, peer: str) -> float | None:
        return self.client.rtt_estimate(self.book.coordinate(peer))

    def flat(self) -> bool:
        """Estimates are trustworthy and the median RTT we measure is at or below the RTT
        floor: a LAN, where every peer is as near as any other and coordinates change no
        choice."""
        return self._trustworthy() and self._median_rtt() <= self.rtt_floor

    def _trustworthy(self) -> bool:
        """Our coordinate and MIN_KNOWN peers' are trusted (see the module rules)."""
        return self.book.trusted >= MIN_KNOWN and self.trusted

    def known_peers(self) -> Sequence[str]:
        """The peers with a trusted coordinate, once estimates are trustworthy and the network
        is not flat (else none): what peer choice draws its tournaments among (see
        swimnet.topology.selection). In a flat network every peer is as far as any other, and
        choices stay uniform over all members."""
        if not self._trustworthy() or self._median_rtt() <= self.rtt_floor:
            return ()
        return self.book.trusted_names

    def remoteness(self, peer: str) -> float | None:
        """0.0 for a near peer, 1.0 for a far one, None if unknown: what peer choice compares.

        Near means an estimated RTT of at most half the median RTT we measure, in a
        network whose median RTT exceeds the RTT floor (beneath it, a LAN: everyone counts
        alike). Only a distinctly closer group is favoured; in a flat network choices stay
        uniform instead of following coordinate noise. Until estimates are trustworthy (see
        the module rules) every peer is unknown, which also means uniform choices.
        """
        if not self._trustworthy():
            return None
        coord = self.book.coordinate(peer)
        if coord is None:
            return None
        median = self._median_rtt()
        if median <= self.rtt_floor:
            return 1.0  # a flat network: every known peer is as far as any other, no estimate
        # CoordinateClient.rtt_estimate without its checks: a coordinate in the book is valid
        # and of our dimensionality (checked on the way in); the same arithmetic, the same bits
        own = self.client.coordinate
        raw = math.dist(own.vec, coord.vec) + own.height + coord.height
        adjusted = raw + own.adjustment + coord.adjustment
        rtt = adjusted if adjusted > 0.0 else raw
        return 0.0 if rtt <= 0.5 * median else 1.0

    def _median_rtt(self) -> float:
        """The median of the RTTs our last RTT_WINDOW direct probes measured (0.0 before
        the first): measured, not estimated, so a coordinate misplaced by one slow sample
        does not make every peer look far."""
        rtts = self._rtts
        n = len(rtts) >> 1
        return rtts[n >> 1] if n else 0.0

    def _scale(self) -> float:
        """What a material move is a share of: the median RTT, at least the RTT floor."""
        return max(self._median_rtt(), self.rtt_floor)

    def forget(self, peer: str) -> None:
        self.book.forget(peer)
        self.client.forget(peer)
