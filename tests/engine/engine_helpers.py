"""A hand-driven harness around one `Engine`: a virtual clock, real encoded bytes in and out.

Every input is an encoded datagram or stream frame (so the codec is exercised too); every
output is drained and decoded into a log the test can inspect. Nothing reads a clock: the
harness's `now` only moves when the test says so (`advance`, `step`).

Conventions: the node under test is "self" at SELF_ADDR; peers are added with `add_peer`
(an encoded Alive fed to the engine) and live at distinct 10.0.1.x addresses.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TypeVar

import attrs

from swimnet.config import Config
from swimnet.engine import Engine
from swimnet.membership.events import MemberEvent
from swimnet.membership.member import Member
from swimnet.wire import (
    Ack,
    Address,
    Alive,
    Ping,
    PushPull,
    State,
    WireMessage,
    decode_packet,
    decode_stream,
    encode_packet,
    encode_stream,
)

M = TypeVar("M", bound=WireMessage)

SELF = "self"
SELF_ADDR: Address = ("10.0.0.1", 7946)
OUTSIDER_ADDR: Address = ("10.9.9.9", 4000)
"""A prober nobody knows: used to read the piggybacked broadcasts without changing state."""


def make_config(**overrides: object) -> Config:
    return Config.lan(name=SELF, bind=f"{SELF_ADDR[0]}:{SELF_ADDR[1]}", **overrides)


@attrs.frozen
class Sent:
    """One datagram the engine sent: when, to whom, and its decoded messages."""

    time: float
    addr: Address
    messages: tuple[WireMessage, ...]
    size: int = 0
    """Bytes on the wire."""

    def of(self, kind: type[M]) -> list[M]:
        """The messages of exactly this type, in packet order."""
        return [m for m in self.messages if type(m) is kind]  # type: ignore[misc]


@attrs.frozen
class Opened:
    """One stream the engine asked to open: when, to whom, and the decoded request."""

    time: float
    addr: Address
    request: WireMessage
    raw: bytes = b""
    """The request frame as handed out."""
    id: int = 0
    """The stream id (what stream_reply / stream_failed take back)."""


Responder = Callable[["Harness", Sent], None]
"""Plays the network: called with every datagram the engine sends; may feed answers back."""


class Harness:
    def __init__(self, seed: int = 0, *, now: float = 0.0, incarnation: int = 1, **overrides: object) -> None:
        self.config = make_config(**overrides)
        self.engine = Engine(self.config, rng=random.Random(seed), now=now, incarnation=incarnation)
        self.now = now
        self.sent: list[Sent] = []
        self.opened: list[Opened] = []
        self._answered: set[int] = set()
        self.events_log: list[tuple[float, MemberEvent]] = []
        self._events_read = 0
        self.addr_of: dict[str, Address] = {SELF: SELF_ADDR}
        self.name_at: dict[Address, str] = {SELF_ADDR: SELF}
        self._next_peer = 2
        self._ping_seq = 900_000

    # -- identity --------------------------------------------------------------------------

    def new_addr(self) -> Address:
        addr = (f"10.0.1.{self._next_peer}", 7946)
        self._next_peer += 1
        return addr

    def add_peer(
        self, name: str, incarnation: int = 1, meta: bytes = b"", addr: Address | None = None
    ) -> Address:
        """Make `name` a known alive member (by feeding its Alive), return its address."""
        addr = addr if addr is not None else self.new_addr()
        self.addr_of[name] = addr
        self.name_at[addr] = name
        self.feed([Alive(incarnation, name, addr, meta)], src=addr)
        return addr

    def add_peers(self, names: Iterable[str]) -> None:
        for name in names:
            self.add_peer(name)

    # -- input -----------------------------------------------------------------------------

    def feed(self, messages: Iterable[WireMessage], src: Address | str = OUTSIDER_ADDR) -> list[Sent]:
        """Deliver one encoded datagram at `now`; return what the engine sent in response."""
        addr = self.addr_of[src] if isinstance(src, str) else src
        messages = list(messages)
        for m in messages:  # remember where members live, so responders can answer for them
            if type(m) is Alive and m.node not in self.addr_of and m.addr not in self.name_at:
                self.addr_of[m.node] = m.addr
                self.name_at[m.addr] = m.node
        self.engine.receive_datagram(encode_packet(messages), addr, self.now)
        return self.collect()

    def push_pull(self, remote: PushPull, src: Address | str = OUTSIDER_ADDR) -> PushPull:
        """Serve a push-pull request (server side); return the decoded reply."""
        addr = self.addr_of[src] if isinstance(src, str) else src
        reply = self.engine.handle_stream(encode_stream(remote), addr, self.now)
        self.collect()
        assert reply is not None, "a valid push-pull request must be answered"
        decoded = decode_stream(reply)
        assert type(decoded) is PushPull
        return decoded

    def stream_reply(self, reply: WireMessage, src: Address | str | Opened) -> list[Sent]:
        """Answer a stream the engine opened: `src` is that stream, or its peer (then the
        latest unanswered stream to it)."""
        self.engine.stream_reply(self._stream_to(src).id, encode_stream(reply), self.now)
        return self.collect()

    def stream_failed(self, src: Address | str | Opened) -> list[Sent]:
        self.engine.stream_failed(self._stream_to(src).id, self.now)
        return self.collect()

    def _stream_to(self, src: Address | str | Opened) -> Opened:
        if isinstance(src, Opened):
            opened = src
        else:
            addr = self.addr_of[src] if isinstance(src, str) else src
            found = [o for o in self.opened if o.addr == addr and o.id not in self._answered]
            assert found, f"no open stream to {addr}"
            opened = found[-1]
        self._answered.add(opened.id)
        return opened

    # -- output ----------------------------------------------------------------------------

    def collect(self) -> list[Sent]:
        """Drain the engine's datagrams, streams and events into the logs."""
        new = [
            Sent(self.now, addr, tuple(decode_packet(data)), len(data))
            for addr, data in self.engine.datagrams_to_send()
        ]
        self.sent.extend(new)
        for r in self.engine.streams_to_open():
            self.opened.append(Opened(self.now, r.addr, decode_stream(r.data), r.data, r.id))
        for event in self.engine.events():
            self.events_log.append((self.now, event))
        return new

    def events(self) -> list[MemberEvent]:
        """Events logged since the last call."""
        out = [e for _, e in self.events_log[self._events_read :]]
        self._events_read = len(self.events_log)
        return out

    def sent_since(self, start: int) -> list[Sent]:
        return self.sent[start:]

    # -- time ------------------------------------------------------------------------------

    def step(self, responder: Responder | None = None) -> list[Sent]:
        """Fire the next timer deadline (and nothing later); return what was sent."""
        deadline = self.engine.next_deadline()
        assert deadline is not None, "an engine always has a timer armed"
        self.now = max(self.now, deadline)
        start = len(self.sent)
        self.engine.handle_timer(self.now)
        self._respond(self.collect(), responder)
        return self.sent[start:]

    def advance(self, until: float, responder: Responder | None = None) -> list[Sent]:
        """Fire every timer due up to `until`, in order; then set the clock to `until`."""
        start = len(self.sent)
        while True:
            deadline = self.engine.next_deadline()
            if deadline is None or deadline > until:
                break
            self.now = max(self.now, deadline)
            self.engine.handle_timer(self.now)
            self._respond(self.collect(), responder)
        self.now = max(self.now, until)
        return self.sent[start:]

    def step_until(
        self, found: Callable[[Sent], bool], limit: float = 60.0, responder: Responder | None = None
    ) -> Sent:
        """Fire timers one by one until a datagram matching `found` is sent."""
        end = self.now + limit
        while self.now <= end:
            for s in self.step(responder):
                if found(s):
                    return s
        raise AssertionError(f"nothing matching was sent within {limit}s (now={self.now})")

    def _respond(self, batch: list[Sent], responder: Responder | None) -> None:
        if responder is None:
            return
        queue = list(batch)
        while queue:
            s = queue.pop(0)
            before = len(self.sent)
            responder(self, s)
            queue.extend(self.sent[before:])

    def probe_to(
        self, name: str | None = None, limit: float = 60.0, responder: Responder | None = None
    ) -> Sent:
        """Run until the engine sends a probe Ping (to `name`, or to any peer)."""

        def is_probe(s: Sent) -> bool:
            pings = s.of(Ping)
            return bool(pings) and pings[0].source == SELF and (name is None or pings[0].target == name)

        return self.step_until(is_probe, limit, responder)

    def awareness_interval(self) -> float:
        """The probe interval as stretched by the current health score."""
        return self.config.probe_interval * (self.engine.health_score + 1)

    # -- views -----------------------------------------------------------------------------

    def state(self, name: str) -> State | None:
        return self.engine.view().get(name)

    def member(self, name: str) -> Member | None:
        found = [m for m in self.engine.members() if m.name == name]
        return found[0] if found else None

    def broadcasts(self) -> list[WireMessage]:
        """The broadcasts piggybacked on the answer to an outsider's ping (one transmission)."""
        self._ping_seq += 1
        replies = [s for s in self.feed([Ping(self._ping_seq, SELF, "outsider")]) if s.addr == OUTSIDER_ADDR]
        assert len(replies) == 1, replies
        ack, *rest = replies[0].messages
        assert ack == Ack(self._ping_seq, ack.payload)  # type: ignore[union-attr]
        return rest

    def drain_broadcasts(self, limit: int = 200) -> None:
        """Transmit the queued broadcasts until none is left (memberlist tests' queue Reset)."""
        for _ in range(limit):
            if not self.broadcasts():
                return
        raise AssertionError("the broadcast queue never emptied")


# -- responders ------------------------------------------------------------------------------


def ack_pings(answering: Iterable[str] | None = None) -> Responder:
    """A network where the named peers (default: every known peer) answer direct pings."""
    names = None if answering is None else set(answering)

    def respond(h: Harness, s: Sent) -> None:
        peer = h.name_at.get(s.addr)
        if peer is None or peer == SELF or (names is not None and peer not in names):
            return
        for ping in s.of(Ping):
            if ping.target == peer:
                h.feed([Ack(ping.seq)], src=s.addr)

    return respond
