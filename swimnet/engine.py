"""The sans-IO node: bytes in, bytes out. Composes the wire codec and the membership
protocol (and, as they land, security, tables and topology).

Surface (every entry point takes `now`; nothing here reads a clock or does I/O):

    receive_datagram(data, addr, now)          a datagram from the network
    handle_stream(request, addr, now) -> bytes a stream request from a peer; the reply
    stream_reply(reply, addr, now)             the reply to a stream we opened
    stream_failed(addr, now)                   a stream we opened could not complete
    handle_timer(now)                          call at (or after) next_deadline()
    datagrams_to_send() / streams_to_open()    drain after every call
    events()                                   drain after every call
    next_deadline() -> float | None

Rules: peer input never raises out of the engine: anything undecodable or unexpected is
counted in `stats` by reason and dropped, and leaves membership untouched.
"""

from __future__ import annotations

import random
from collections import Counter

from swimnet.config import Config
from swimnet.errors import DecodeError, LocalProtocolError
from swimnet.membership.events import MemberEvent
from swimnet.membership.member import Member
from swimnet.membership.swim import Swim
from swimnet.topology.coordinate import Coordinate
from swimnet.topology.tracker import PeerCoordinates
from swimnet.wire.codec import decode_packet, decode_stream
from swimnet.wire.messages import Ack, Address, Ping, PushPull, State


class Engine:
    """One node's protocol state machine."""

    def __init__(
        self,
        config: Config,
        *,
        rng: random.Random,
        now: float,
        incarnation: int = 1,
    ) -> None:
        if not config.name:
            raise LocalProtocolError("config.name must be set to run a node")
        self.config = config
        self.rng = rng
        self.swim = Swim(config, rng, now, incarnation=incarnation)
        self.stats: Counter[str] = self.swim.stats
        self.topology = PeerCoordinates(rng, stats=self.stats)
        self.swim.ack_payload = self.topology.ack_payload
        self.swim.on_rtt = self.topology.observe
        self.swim.rtt_of = self._rtt_for_choice
        self.swim.on_forget = self.topology.forget

    # -- identity and views ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def address(self) -> Address:
        return self.swim.addr

    @property
    def local_member(self) -> Member:
        return self.swim.local_member

    @property
    def health_score(self) -> int:
        return self.swim.awareness.score

    @property
    def coordinate(self) -> Coordinate:
        """Our Vivaldi network coordinate."""
        return self.topology.coordinate

    def rtt_estimate(self, member: str) -> float | None:
        """Estimated round-trip time (seconds) to a member, None if not known yet."""
        return self.topology.rtt_estimate(member)

    def _rtt_for_choice(self, member: str) -> float | None:
        rtt = self.topology.rtt_estimate(member)
        return None if rtt is None else max(rtt, self.config.topology_rtt_floor)

    def members(self) -> list[Member]:
        return self.swim.member_list()

    def view(self) -> dict[str, State]:
        return {name: m.state for name, m in self.swim.members.items()}

    # -- API -------------------------------------------------------------------------------

    def join(self, seeds: list[Address], now: float) -> None:
        """Open a join push-pull to every seed (see streams_to_open)."""
        self.swim.join(seeds, now)

    def join_request(self) -> bytes:
        """The request frame of a join push-pull, for runtimes that exchange it themselves."""
        return self.swim.push_pull_request(join=True)

    def set_meta(self, meta: bytes, now: float) -> None:
        self.swim.set_meta(meta, now)
        self.swim.wake_gossip(now)

    def leave(self, now: float) -> None:
        self.swim.leave(now)
        self.swim.wake_gossip(now)

    @property
    def leave_done(self) -> bool:
        return self.swim.leave_done

    # -- network input -----------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.stats["packets_received"] += 1
        self.stats["bytes_received"] += len(data)
        try:
            messages = decode_packet(data)
        except DecodeError:
            self.stats["drop_decode"] += 1
            return
        handle = self.swim.handle_message
        for msg in messages:
            handle(msg, addr, now)
        self.swim.wake_gossip(now)

    def handle_stream(self, request: bytes, addr: Address, now: float) -> bytes | None:
        """Answer a stream request; None means: close without a reply (bad input)."""
        self.stats["streams_received"] += 1
        try:
            msg = decode_stream(request)
        except DecodeError:
            self.stats["drop_stream_decode"] += 1
            return None
        if type(msg) is PushPull:
            reply = self.swim.handle_push_pull(msg, addr, now)
            self.swim.wake_gossip(now)
            return reply
        if type(msg) is Ping:
            return self.swim.handle_stream_ping(msg)
        self.stats["drop_stream_unexpected"] += 1
        return None

    def stream_reply(self, reply: bytes, addr: Address, now: float) -> None:
        try:
            msg = decode_stream(reply)
        except DecodeError:
            self.stats["drop_stream_decode"] += 1
            self.swim.push_pull_failed(addr, now)
            return
        if type(msg) is PushPull:
            self.swim.push_pull_reply(msg, addr, now)
            self.swim.wake_gossip(now)
        elif type(msg) is Ack:
            self.swim.stream_ack(msg, addr, now)
        else:
            self.stats["drop_stream_unexpected"] += 1

    def stream_failed(self, addr: Address, now: float) -> None:
        self.swim.push_pull_failed(addr, now)

    def handle_timer(self, now: float) -> None:
        self.swim.handle_timer(now)
        self.swim.wake_gossip(now)

    # -- output ------------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[Address, bytes]]:
        out = self.swim.outbox
        if out:
            self.swim.outbox = []
            self.stats["packets_sent"] += len(out)
            self.stats["bytes_sent"] += sum(len(d) for _, d in out)
        return out

    def streams_to_open(self) -> list[tuple[Address, bytes]]:
        out = self.swim.streams
        if out:
            self.swim.streams = []
        return out

    def events(self) -> list[MemberEvent]:
        out = self.swim.events
        if out:
            self.swim.events = []
        return out

    def next_deadline(self) -> float | None:
        return self.swim.next_deadline()
