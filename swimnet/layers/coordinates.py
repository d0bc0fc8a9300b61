"""The coordinates layer: members' network coordinates travel with membership, so a node
estimates RTTs to peers it never probed, and a joining node knows everyone's at once.

Rules:
- push-pull: our section (`CoordinateState`) holds our own coordinate and the trusted ones
  we hold: all of them (at most MAX_SECTION_COORDINATES) when answering a join, so a new
  node inherits the coordinates of the whole cluster at once; a random SECTION_SAMPLE of
  them in periodic anti-entropy (it only repairs what gossip missed), and none but our own
  once the network is flat (`PeerCoordinates.flat`: in a LAN coordinates change no
  choice, and 64 coordinates would double a 100-node push-pull). A joining node always
  sends a section (maybe empty), so the member it joins through knows to answer in full;
- gossip: when our coordinate becomes trusted, and whenever it moves materially (see
  swimnet.topology.tracker), a `CoordinateUpdate` is queued and sent on our next
  retransmit_limit(retransmit_mult, n) packets. Whoever receives a newer version than it
  holds stores it, and relays it ceil(log10(n + 1)) times only if it
  `flips` what it held: the coordinate moved by half the median RTT (near can turn far),
  so the others holding the old one hear of it. A coordinate new to us is not relayed:
  peer choice draws among the members whose coordinate it holds (swimnet.topology.selection),
  so a node needs a few dozen, not all of them, and our packets go mostly to near peers,
  the ones whose choices depend on it; probe acks and push-pull carry it further. An
  epidemic of every new coordinate would cost n^2 log n updates at a cold start (at 2,000
  nodes, more bytes than all of membership's for minutes);
- coordinates only ride on packets sent anyway (probes, acks, gossip), at most one update a
  packet: the queue reports no length, so it never wakes gossip, and it is drained after
  membership's and the tables' messages. So gossip adds at most one ~60-byte update to
  each packet a node sends, and nothing once coordinates have settled;
- peer input is bounded and checked: a section holds at most MAX_SECTION_COORDINATES
  records; a record about ourselves, about a name that is not a member, or not newer than
  what we hold is dropped before its values are decoded; values go through the topology
  codec (finite, within limits, our dimensionality); drops are counted by reason;
- a heard coordinate only serves estimates (peer choice, rtt_estimate): our own coordinate
  learns from direct probes alone. Versions (epoch, updates) keep an older coordinate from
  replacing a newer one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized

from swimnet.errors import DecodeError
from swimnet.layers.contract import Host, MessageHandler, StreamHandler
from swimnet.membership.events import MemberEvent
from swimnet.membership.queue import BroadcastQueue
from swimnet.topology.book import is_trusted
from swimnet.topology.codec import coordinate_from_bytes, coordinate_to_bytes
from swimnet.topology.coordinate import Coordinate
from swimnet.topology.tracker import PeerCoordinates
from swimnet.wire.codec import decode_message, encode_message
from swimnet.wire.messages import Address, WireMessage
from swimnet.wire.topology import (
    MAX_SECTION_COORDINATES,
    CoordinateRecord,
    CoordinateState,
    CoordinateUpdate,
)

PACKET_SHARE = 1
"""Coordinate updates one packet may carry."""
SECTION_SAMPLE = 64
"""Coordinates (besides our own) in a periodic push-pull section."""
_RELAY_MULT = 1
_MAX_QUEUED = 4_096
"""Coordinate updates waiting to be relayed (one per member at most; the most sent go first)."""


class CoordinatesLayer:
    __slots__ = (
        "_answer_join", "_dims", "_host", "_own", "_own_items", "_queue", "_relay_items", "_tracker",
        "broadcasts",
    )  # fmt: skip
    section = "coordinates"

    def __init__(self, host: Host, tracker: PeerCoordinates) -> None:
        self._host = host
        self._tracker = tracker
        self._dims = tracker.client.config.dimensionality
        self._own = BroadcastQueue(host.config.retransmit_mult, 1)
        self._queue = BroadcastQueue(_RELAY_MULT, _MAX_QUEUED)
        self._own_items, self._relay_items = self._own.items, self._queue.items
        """The two queues' items (asked on every packet sent: one object each, not two)."""
        self.broadcasts = _Piggyback(self)
        self._answer_join = False
        """A join request's section was merged: the reply (next local_state) goes in full."""

    def message_handlers(self) -> Mapping[type, MessageHandler]:
        return {CoordinateUpdate: self._on_update}

    def stream_handlers(self) -> Mapping[type, StreamHandler]:
        return {}

    # -- gossip --------------------------------------------------------------------------------

    def _on_update(self, msg: CoordinateUpdate, addr: Address, now: float, sealed: bool) -> None:
        old = self._tracker.book.coordinate(msg.name)
        new = self._learn(msg.name, msg.epoch, msg.updates, msg.coordinate)
        if new is not None and old is not None and self._tracker.flips(old, new):
            self._queue.queue(msg.name, encode_message(msg))

    def _take(self, budget: int, overhead: int, n_members: int) -> list[bytes]:
        if self._tracker.publication_due:
            published = self._tracker.take_publication()
            if published is not None:
                (epoch, updates), coord = published
                me = self._host.name
                update = CoordinateUpdate(me, epoch, updates, coordinate_to_bytes(coord))
                self._own.queue(me, encode_message(update))
        if self._own_items:
            queue = self._own
        elif self._relay_items:
            queue = self._queue
        else:
            return []  # the common case: nothing to send (take() would say so, a call later)
        taken = queue.take(budget, overhead, n_members)[:PACKET_SHARE]
        if taken:
            self._host.stats["coordinate_gossip_bytes"] += sum(len(b) for b in taken)
        return taken

    def _learn(self, name: str, epoch: int, updates: int, packed: bytes) -> Coordinate | None:
        """Keep a member's coordinate if it is newer than ours; the coordinate if it was kept."""
        host, tracker = self._host, self._tracker
        stats = host.stats
        if name == host.name:
            return None  # we know better
        known = tracker.book.version(name)
        if known is not None and (epoch, updates) <= known:
            return None
        if host.member(name) is None:
            stats["drop_coordinate_unknown_member"] += 1
            return None
        try:
            coord = coordinate_from_bytes(packed, self._dims)
        except DecodeError:
            stats["drop_coordinate_decode"] += 1
            return None
        if not tracker.learn(name, (epoch, updates), coord):
            stats["drop_coordinate_refused"] += 1
            return None
        stats["coordinates_learned"] += 1
        return coord

    # -- push-pull -------------------------------------------------------------------------------

    def local_state(self, join: bool, now: float) -> bytes | None:
        tracker = self._tracker
        answer_join, self._answer_join = self._answer_join, False
        limit = MAX_SECTION_COORDINATES - 1 if answer_join else 0 if tracker.flat() else SECTION_SAMPLE
        held = []
        if limit:
            held = [(name, ver, coord) for name, ver, coord in tracker.book.items() if is_trusted(ver)]
            if len(held) > limit:
                held = self._host.rng.sample(held, limit)
        if tracker.trusted:
            held.append((self._host.name, tracker.version, tracker.coordinate))
        if not held and not join:
            return None
        records = tuple(CoordinateRecord(n, v[0], v[1], coordinate_to_bytes(c)) for n, v, c in held)
        data = encode_message(CoordinateState(records))
        self._host.stats["coordinate_section_bytes"] += len(data)
        return data

    def merge_state(self, data: bytes, join: bool, now: float, sealed: bool) -> None:
        try:
            state = decode_message(data)
        except DecodeError:
            self._host.stats["drop_coordinate_state_decode"] += 1
            return
        if type(state) is not CoordinateState:
            self._host.stats["drop_coordinate_state_decode"] += 1
            return
        self._answer_join = join
        for r in state.records:
            self._learn(r.name, r.epoch, r.updates, r.coordinate)

    # -- the rest of the Layer contract: no streams, no timers -------------------------------------

    def handle_reply(
        self, stream_id: int, message: WireMessage, addr: Address, now: float, sealed: bool
    ) -> bool:
        return False

    def stream_failed(self, stream_id: int, now: float) -> None:
        return None

    def member_event(self, event: MemberEvent, now: float) -> None:
        return None  # a reaped member is forgotten through the ping delegate's forget()

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None


class _Piggyback:
    """The layer's broadcast source: coordinate gossip for packets sent anyway.

    It never wakes gossip (`wakes_gossip`; `len()` is always 0), so membership never sends
    a packet for coordinates alone.
    """

    __slots__ = ("pending", "take")
    wakes_gossip = False

    def __init__(self, layer: CoordinatesLayer) -> None:
        self.take: Callable[[int, int, int], list[bytes]] = layer._take
        """The layer's own method (no forwarding call)."""
        self.pending: tuple[Sized, ...] = (
            layer._tracker.publication_due,
            layer._own_items,
            layer._relay_items,
        )
        """Empty, all three, while `take` has nothing: our coordinate is not due, nothing is
        queued (the common case: then it is not asked)."""

    def __len__(self) -> int:
        return 0
