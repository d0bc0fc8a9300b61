"""The sans-IO node: bytes in, bytes out. Composes the wire codec, sealing, membership
(SWIM + Lifeguard), topology (membership's ping delegate and peer selection) and the layers
above membership (keys, tables, coordinates), which implement one `Layer` contract against a
narrow `Host` (see swimnet/layers/contract.py).

Surface (every entry point takes `now`; nothing here reads a clock or does I/O):

    receive_datagram(data, addr, now)           a datagram from the network
    handle_stream(request, addr, now) -> bytes  a stream request from a peer; the reply
                                                (addr: the TCP peer, an ephemeral port)
    stream_reply(stream_id, reply, now) -> bool the reply to a stream we opened
    stream_failed(stream_id, now)               a stream we opened could not complete
    handle_timer(now)                           call at (or after) next_deadline()
    datagrams_to_send() / streams_to_open()     drain after every call (already sealed)
    events()                                    drain after every call
    next_deadline() -> float | None

Read API: name, address, config, local_member, incarnation, members(), view(),
health_score, coordinate, rtt_estimate(), tables (a read-only TablesReader), keyring,
key_version, policy, stats (read them; they are the engine's own counters).

Rules:
- the engine keeps sealing, dispatch and draining; protocol decisions live in membership
  and the layers; every message type is served by exactly one of them;
- every stream exchange has an id (`StreamRequest.id`); exactly one of stream_reply or
  stream_failed must follow for it; the reply goes to whoever opened it (membership for
  join / join_sync / push_pull / ping, else the layer); unknown ids are counted and dropped;
- events come out in the order they happened: membership events, table changes, and
  completion events (`KeyOpFinished`, `SyncFinished`) that end what callers wait for;
- peer input never raises out of the engine: anything unauthenticated, undecodable or
  unexpected is counted in `stats` by reason (`drop_*`) and dropped, and changes nothing;
- with a keyring, every datagram and stream frame is sealed (XChaCha20-Poly1305, the
  cluster label as associated data); nonces come from the injected `nonce_source`
  (the runtime passes os.urandom; the default draws from `rng`, for reproducible runs);
  secrets (key operations, keyring state) are only accepted from sealed input;
- anti-replay: sealed input whose sender timestamp (in the nonce) is older than
  `replay_window` is refused; time for it comes from `wall_clock` (the runtime passes
  time.time; the default is the `now` of the entry points, i.e. virtual time).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import attrs
import msgpack

from swimnet.config import Config
from swimnet.errors import AuthenticationError, DecodeError, LocalProtocolError
from swimnet.layers.contract import Layer, MessageHandler, StreamHandler
from swimnet.layers.coordinates import CoordinatesLayer
from swimnet.layers.events import KeyOpFinished, SyncFinished
from swimnet.layers.keys import KeysLayer
from swimnet.layers.tables import TablesLayer
from swimnet.layers.topology import PingObserver, TopologyDelegate
from swimnet.membership.delegates import SwimDelegates
from swimnet.membership.events import MemberEvent
from swimnet.membership.member import Member, MemberRecord
from swimnet.membership.swim import Swim
from swimnet.security.keyring import Keyring
from swimnet.security.seal import (
    TIMESTAMP_SIZE,
    VERSION,
    DatagramSealer,
    SecurityPolicy,
    protect,
    protect_overhead,
    sealed_timestamp,
    unprotect,
)
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.view import TablesReader
from swimnet.topology.coordinate import Coordinate
from swimnet.wire.codec import decode_packet, decode_stream, encode_stream, pack_packet
from swimnet.wire.limits import MAX_META
from swimnet.wire.messages import (
    Ack,
    Address,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    Ping,
    PushPull,
    State,
    Suspect,
    WireMessage,
)

_SUSPECT = State.SUSPECT
"""A State member as a constant (reading `State.X`, an enum class attribute, costs more)."""

_T = TypeVar("_T")
EngineEvent = MemberEvent | TableChange | KeyOpFinished | SyncFinished

_MEMBERSHIP = frozenset((Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead))
_MAX_SECTIONS = 8
_KEEP = object()
_MAX_OPEN_STREAMS = 1024
"""Stream exchanges tracked at once; past it the oldest is taken as failed."""


@attrs.frozen
class StreamRequest:
    """A stream exchange to run: send `data` to `addr`, then report the one reply frame with
    `stream_reply(id, ...)` or the failure with `stream_failed(id, ...)`."""

    id: int
    addr: Address
    data: bytes
    kind: str
    """"join", "join_sync" (a post-join sync), "catch_up" (a catch-up push-pull after a
    join), "push_pull", "ping" (membership) or the opening layer's section name."""


@attrs.define
class _Open:
    kind: str
    addr: Address
    owner: Layer | None
    """None: membership's own exchange."""


class Engine:
    """One node's protocol state machine."""

    def __init__(
        self,
        config: Config,
        *,
        rng: random.Random,
        now: float,
        incarnation: int = 1,
        nonce_source: Callable[[int], bytes] | None = None,
        wall_clock: Callable[[], float] | None = None,
        tables_config: TablesConfig | None = None,
        ping_observer: PingObserver | None = None,
    ) -> None:
        if not config.name:
            raise LocalProtocolError("config.name must be set to run a node")
        self._config = config
        self._rng = rng
        self._stats: Counter[str] = Counter()
        self._rx_packets = self._rx_bytes = self._tx_packets = self._tx_bytes = 0
        """Datagram counts not yet in `_stats` (see `stats`)."""
        self._random = nonce_source if nonce_source is not None else rng.randbytes
        self._now = now
        self._wall = wall_clock if wall_clock is not None else (lambda: self._now)
        self._replay_window = config.effective_replay_window
        self._policy: SecurityPolicy | None = None
        self._sealer: DatagramSealer | None = None
        """The policy's keyring and label (None without a keyring): opens every sealed input,
        and seals our output while the policy says so (`_seals`)."""
        self._seals = False
        self._keyring = config.keyring
        self._input_sealed = False
        self._events: list[EngineEvent] = []
        self._outgoing: list[StreamRequest] = []
        self._open: dict[int, _Open] = {}
        self._next_stream = 0
        self._layers_deadline: float | None = None
        self._layers_stale = True
        """The layers' earliest deadline, recomputed only after a call into a layer (every
        one goes through the engine, which marks it stale): a datagram of membership
        messages alone, the common case, leaves it as it was."""

        host = _Host(self)
        self._topology = TopologyDelegate(config, rng, self._stats, ping_observer, epoch=incarnation)
        self._keys = KeysLayer(host, config.keyring)
        self._tables = TablesLayer(host, now, tables_config)
        coordinates = CoordinatesLayer(host, self._topology.coordinates)
        self._layers: tuple[Layer, ...] = (self._keys, self._tables, coordinates)
        self._handlers: dict[type, MessageHandler] = {}
        self._stream_handlers: dict[type, StreamHandler] = {}
        for layer in self._layers:
            _register(self._handlers, layer.message_handlers(), layer.section)
            _register(self._stream_handlers, layer.stream_handlers(), layer.section)
        self._sections = {layer.section: layer for layer in self._layers}
        swim_side = _SwimSide(self)
        self._swim = Swim(
            config,
            rng,
            now,
            incarnation=incarnation,
            stats=self._stats,
            delegates=SwimDelegates(
                ping=self._topology,
                state=swim_side,
                events=swim_side,
                selection=self._topology if config.topology_bias > 0.0 else None,
                broadcasts=tuple(layer.broadcasts for layer in self._layers if layer.broadcasts is not None),
            ),
        )
        self._timers = self._swim.timers
        """Membership's timers (their next deadline is asked after every call)."""
        self.set_security(config.verify_incoming, config.encrypt_outgoing)

    # -- read API ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def config(self) -> Config:
        return self._config

    @property
    def address(self) -> Address:
        return self._swim.addr

    @property
    def local_member(self) -> Member:
        return self._swim.local_member

    @property
    def incarnation(self) -> int:
        return self._swim.incarnation

    def members(self) -> list[Member]:
        """Every member known (ourselves included), in any state."""
        return self._swim.member_list()

    def view(self) -> dict[str, State]:
        """Member name -> state, as this node sees it."""
        return {name: m.state for name, m in self._swim.members.items()}

    @property
    def health_score(self) -> int:
        """Lifeguard's local health multiplier score: 0 is healthy."""
        return self._swim.awareness.score

    @property
    def coordinate(self) -> Coordinate:
        """Our Vivaldi network coordinate."""
        return self._topology.coordinate

    def rtt_estimate(self, member: str) -> float | None:
        """Estimated round-trip time (seconds) to a member, None if not known yet."""
        return self._topology.rtt_estimate(member)

    @property
    def tables(self) -> TablesReader:
        """The replicated tables as this node holds them, read-only."""
        return self._tables.reader

    @property
    def stats(self) -> Counter[str]:
        """The engine's counters (read them). The datagram counts (packets_received,
        bytes_received, packets_sent, bytes_sent) wait in four ints of the engine until read
        here (the Counter is then not touched per packet: at thousands of simulated nodes a
        cold object costs); a key appears once counted, as if counted per packet. So does
        topology's count of acks without a coordinate (see PeerCoordinates.flush_counts)."""
        self._topology.coordinates.flush_counts()
        if self._rx_packets or self._tx_packets:
            stats = self._stats
            if self._rx_packets:
                stats["packets_received"] += self._rx_packets
                stats["bytes_received"] += self._rx_bytes
                self._rx_packets = self._rx_bytes = 0
            if self._tx_packets:
                stats["packets_sent"] += self._tx_packets
                stats["bytes_sent"] += self._tx_bytes
                self._tx_packets = self._tx_bytes = 0
        return self._stats

    @property
    def keyring(self) -> Keyring | None:
        return self._keyring

    @property
    def policy(self) -> SecurityPolicy | None:
        """The sealing policy in force (None: plaintext, no label); the runtime's stream
        framing authenticates with it."""
        return self._policy

    @property
    def key_version(self) -> int:
        """The cluster-wide key operation counter this node's keyring reflects."""
        return self._keys.version

    @property
    def leaving(self) -> bool:
        """leave() was called."""
        return self._swim.leaving

    @property
    def leave_done(self) -> bool:
        """Our leave went out (or timed out)."""
        return self._swim.leave_done

    # -- API -------------------------------------------------------------------------------

    def join(self, seeds: list[Address], now: float) -> None:
        """Open a join push-pull to every seed (streams of kind "join", see streams_to_open)."""
        self._now = now
        self._swim.join(seeds, now)

    def set_meta(self, meta: bytes, now: float) -> None:
        """Publish new metadata (at most MAX_META bytes) under a higher incarnation."""
        if not isinstance(meta, bytes) or len(meta) > MAX_META:
            raise LocalProtocolError(f"meta: must be bytes of at most {MAX_META} bytes")
        self._now = now
        self._swim.set_meta(meta, now)
        self._swim.wake_gossip(now)

    def leave(self, now: float) -> None:
        self._now = now
        self._swim.leave(now)
        self._swim.wake_gossip(now)

    def join_network(self, network: str, now: float) -> list[TableChange]:
        """Hold `network`'s tables from now on (synced at once with a member of it)."""
        return self._after(self._tables.join_network(network, now), now)

    def leave_network(self, network: str, now: float) -> list[TableChange]:
        return self._after(self._tables.leave_network(network, now), now)

    def table_put(self, network: str, table: str, key: str, value: bytes, now: float) -> list[TableChange]:
        return self._after(self._tables.put(network, table, key, value, now), now)

    def table_delete(self, network: str, table: str, key: str, now: float) -> list[TableChange]:
        return self._after(self._tables.delete(network, table, key, now), now)

    def sync_network(self, network: str, now: float) -> bool:
        """Start a table sync of `network` with one live peer of it now; False if there is
        none. Its end is announced as `SyncFinished(network, peer, ok)`."""
        return self._after(self._tables.sync_network(network, now), now)

    def key_op(self, action: str, key_or_id: bytes | str, now: float, timeout: float = 10.0) -> int:
        """Start a cluster-wide keyring operation (install/use/remove); returns its id.

        Applied locally at once (LocalProtocolError if it cannot be), then sent to every
        member; its end is announced as `KeyOpFinished(op_id, result)`.
        """
        return self._after(self._keys.start(action, key_or_id, now, timeout), now)

    def set_security(
        self, verify_incoming: bool, encrypt_outgoing: bool, *, keyring: Keyring | object | None = _KEEP
    ) -> None:
        """Change the migration switches (and optionally the keyring) at run time: the
        plaintext -> encrypted rolling upgrade, one node at a time: (keyring, False, False),
        then (True for encrypt_outgoing), then verify_incoming too."""
        cfg = self._config
        ring = self._keyring if keyring is _KEEP else keyring
        if ring is not None and not isinstance(ring, Keyring):
            raise LocalProtocolError("keyring: must be a swimnet.Keyring or None")
        self._keyring = ring
        if ring is None and not cfg.label:
            self._policy = None
        else:
            self._policy = SecurityPolicy(ring, cfg.label, verify_incoming, encrypt_outgoing)
        self._sealer = None if ring is None else DatagramSealer(ring, cfg.label, self._random, self._wall)
        self._seals = self._policy is not None and self._policy.seals_outgoing
        self._keys.set_keyring(ring)
        self._layers_stale = True
        self._swim.set_sealing_overhead(protect_overhead(self._policy) if self._policy is not None else 0)

    def _after(self, result: _T, now: float) -> _T:
        """An API call changed state: piggybacked output may be due."""
        self._layers_stale = True
        self._now = now
        self._swim.wake_gossip(now)
        return result

    # -- network input -----------------------------------------------------------------------

    def _unprotect(self, data: bytes, now: float) -> bytes | None:
        self._now = now
        self._input_sealed = False
        if self._policy is None:
            return data
        sealed = len(data) > 0 and data[0] == VERSION  # looks_sealed(data)
        sealer = self._sealer
        try:
            if sealed and sealer is not None and type(data) is bytes:
                plain = sealer.open(data)  # what unprotect does with a sealed packet, in one call
            else:
                plain = unprotect(self._policy, data)
        except AuthenticationError as exc:
            self._stats[f"drop_auth_{exc.reason}"] += 1
            return None
        if sealed:
            # anti-replay: captured traffic older than the window is refused; the window is
            # shorter than dead_reap_time, so a replay can never resurrect a forgotten member
            if sealed_timestamp(data) < int(self._wall()) - self._replay_window:
                self._stats["drop_auth_stale"] += 1
                return None
            self._input_sealed = True
        return plain

    def _nonce(self, n: int) -> bytes:
        stamp = (int(self._wall()) & 0xFFFFFFFF).to_bytes(TIMESTAMP_SIZE, "big")
        return stamp + self._random(n - TIMESTAMP_SIZE)

    def _protect(self, data: bytes) -> bytes:
        if self._seals:
            assert self._sealer is not None
            return self._sealer.seal(data)  # what protect does when it seals, in one call
        return data if self._policy is None else protect(self._policy, data, self._nonce)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self._rx_packets += 1  # into stats when read (see `stats`)
        self._rx_bytes += len(data)
        if self._policy is None:  # plaintext, no label: nothing to open
            self._now = now
            self._input_sealed = False
            plain = data
        else:
            opened = self._unprotect(data, now)
            if opened is None:
                return
            plain = opened
        try:
            messages = decode_packet(plain)
        except DecodeError:
            self._stats["drop_decode"] += 1
            return
        swim = self._swim
        membership = False
        for msg in messages:
            if type(msg) in _MEMBERSHIP:
                swim.handle_message(msg, addr, now)
                membership = True
            else:
                handler = self._handlers.get(type(msg))
                if handler is None:
                    self._stats["drop_unexpected_message"] += 1
                else:
                    self._layers_stale = True
                    handler(msg, addr, now, self._input_sealed)
        if membership:
            swim.heard_from(addr)
        swim.wake_gossip(now)

    def handle_stream(self, request: bytes, addr: Address, now: float) -> bytes | None:
        """Answer a stream request; None means: close without a reply (bad input)."""
        self._stats["streams_received"] += 1
        self._layers_stale = True
        plain = self._unprotect(request, now)
        if plain is None:
            return None
        try:
            msg = decode_stream(plain)
        except DecodeError:
            self._stats["drop_stream_decode"] += 1
            return None
        reply: bytes | None
        if type(msg) is PushPull:
            reply = self._swim.handle_push_pull(msg, addr, now)
        elif type(msg) is Ping:
            reply = self._swim.handle_stream_ping(msg)
        elif (handler := self._stream_handlers.get(type(msg))) is not None:
            answer = handler(msg, addr, now, self._input_sealed)
            reply = None if answer is None else encode_stream(answer)
        else:
            self._stats["drop_stream_unexpected"] += 1
            reply = None
        self._swim.wake_gossip(now)
        return None if reply is None else self._protect(reply)

    def stream_reply(self, stream_id: int, reply: bytes, now: float) -> bool:
        """The reply to stream `stream_id`; False if it was refused (counted in stats)."""
        self._now = now
        self._layers_stale = True
        exchange = self._open.pop(stream_id, None)
        if exchange is None:
            self._stats["drop_stream_unknown_id"] += 1
            return False
        plain = self._unprotect(reply, now)
        msg: WireMessage | None = None
        if plain is not None:
            try:
                msg = decode_stream(plain)
            except DecodeError:
                self._stats["drop_stream_decode"] += 1
        if msg is None:
            self._failed(exchange, stream_id, now)
            self._swim.wake_gossip(now)
            return False
        accepted = self._route_reply(exchange, stream_id, msg, now)
        if not accepted:
            self._stats["drop_stream_unexpected"] += 1
        self._swim.wake_gossip(now)
        return accepted

    def _route_reply(self, exchange: _Open, stream_id: int, msg: WireMessage, now: float) -> bool:
        if exchange.owner is not None:
            return exchange.owner.handle_reply(stream_id, msg, exchange.addr, now, self._input_sealed)
        if exchange.kind == "ping" and type(msg) is Ack:
            self._swim.stream_ack(msg, exchange.addr, now)
            return True
        if exchange.kind != "ping" and type(msg) is PushPull:
            self._swim.push_pull_reply(msg, exchange.addr, now, kind=exchange.kind)
            return True
        if exchange.kind != "ping":
            self._swim.push_pull_failed(exchange.addr, now)
        return False

    def stream_failed(self, stream_id: int, now: float) -> None:
        """Stream `stream_id` got no reply (refused, timed out, closed)."""
        self._now = now
        self._layers_stale = True
        exchange = self._open.pop(stream_id, None)
        if exchange is None:
            self._stats["drop_stream_unknown_id"] += 1
            return
        self._failed(exchange, stream_id, now)
        self._swim.wake_gossip(now)

    def _failed(self, exchange: _Open, stream_id: int, now: float) -> None:
        if exchange.owner is not None:
            self._layers_stale = True
            exchange.owner.stream_failed(stream_id, now)
        elif exchange.kind == "ping":
            self._stats["stream_failed_ping"] += 1
        else:
            self._swim.push_pull_failed(exchange.addr, now)

    def handle_timer(self, now: float) -> None:
        self._now = now
        theirs = self._layers_deadline
        layers_due = self._layers_stale or (theirs is not None and theirs <= now)
        self._swim.handle_timer(now)
        if layers_due:  # else: not one of them has anything due (their timers are theirs)
            self._layers_stale = True
            for layer in self._layers:
                layer.handle_timer(now)
        self._swim.wake_gossip(now)

    # -- push-pull sections ------------------------------------------------------------------

    def _local_state(self, join: bool, now: float) -> bytes:
        self._layers_stale = True
        sections = []
        for name, layer in self._sections.items():
            data = layer.local_state(join, now)
            if data is not None:
                sections.append([name, data])
        return msgpack.packb(sections) if sections else b""

    def _merge_remote_state(self, data: bytes, join: bool, now: float) -> None:
        self._layers_stale = True
        stats = self._stats
        try:
            sections = msgpack.unpackb(data, max_array_len=_MAX_SECTIONS * 2, max_map_len=0, max_ext_len=0)
        except Exception:
            stats["drop_user_state_decode"] += 1
            return
        if type(sections) is not list or len(sections) > _MAX_SECTIONS:
            stats["drop_user_state_decode"] += 1
            return
        for section in sections:
            if type(section) is not list or len(section) != 2 or type(section[1]) is not bytes:
                stats["drop_user_state_decode"] += 1
                continue
            layer = self._sections.get(section[0]) if type(section[0]) is str else None
            if layer is None:
                stats["drop_user_state_unknown_section"] += 1
                continue
            layer.merge_state(section[1], join, now, self._input_sealed)

    def _member_event(self, event: MemberEvent, now: float) -> None:
        self._layers_stale = True
        self._events.append(event)
        for layer in self._layers:
            layer.member_event(event, now)

    # -- output ------------------------------------------------------------------------------

    def _open_stream(self, addr: Address, frame: bytes, kind: str, owner: Layer | None) -> int:
        self._next_stream += 1
        stream_id = self._next_stream
        if len(self._open) >= _MAX_OPEN_STREAMS:
            oldest = next(iter(self._open))
            self._stats["stream_tracking_evicted"] += 1
            self._failed(self._open.pop(oldest), oldest, self._now)
        self._open[stream_id] = _Open(kind, addr, owner)
        self._outgoing.append(StreamRequest(stream_id, addr, frame, kind))
        return stream_id

    def datagrams_to_send(self) -> list[tuple[Address, bytes]]:
        if not self._swim.outbox:
            return []
        out = self._swim.take_outbox()
        if self._seals:
            assert self._sealer is not None
            seal = self._sealer.seal
            out = [(addr, seal(data)) for addr, data in out]
        elif self._policy is not None:
            out = [(addr, self._protect(data)) for addr, data in out]
        size = 0
        for _, data in out:
            size += len(data)
        self._tx_packets += len(out)  # into stats when read (see `stats`)
        self._tx_bytes += size
        return out

    def streams_to_open(self) -> list[StreamRequest]:
        """The stream exchanges to run, their frames sealed (see StreamRequest)."""
        if self._swim.streams:
            for addr, frame, kind in self._swim.take_streams():
                self._open_stream(addr, frame, kind, None)
        if not self._outgoing:
            return []
        out, self._outgoing = self._outgoing, []
        if self._policy is None:
            return out
        return [attrs.evolve(r, data=self._protect(r.data)) for r in out]

    def events(self) -> list[EngineEvent]:
        """Membership events, table changes and completion events, in the order they happened."""
        out = self._events
        if out:
            self._events = []
        return out

    def next_deadline(self) -> float | None:
        if self._layers_stale:
            self._layers_stale = False
            best = None
            for layer in self._layers:
                d = layer.next_deadline()
                if d is not None and (best is None or d < best):
                    best = d
            self._layers_deadline = best
        ours, theirs = self._timers.next_deadline(), self._layers_deadline
        if ours is None or (theirs is not None and theirs < ours):
            return theirs
        return ours


def _register(into: dict[type, Any], handlers: Any, owner: str) -> None:
    for cls, handler in handlers.items():
        if cls in into or cls in _MEMBERSHIP or cls in (PushPull,):
            raise LocalProtocolError(f"{owner}: {cls.__name__} is already served by another layer")
        into[cls] = handler


class _SwimSide:
    """Membership's state and event delegates: the layers' push-pull sections and their
    reactions to membership events, in the engine's order."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def local_state(self, join: bool, now: float) -> bytes:
        return self._engine._local_state(join, now)

    def merge_remote_state(self, data: bytes, join: bool, now: float) -> None:
        self._engine._merge_remote_state(data, join, now)

    def notify_member_event(self, event: MemberEvent, now: float) -> None:
        self._engine._member_event(event, now)


class _Host:
    """What the layers may ask of the engine (swimnet.layers.contract.Host)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def name(self) -> str:
        return self._engine._config.name

    @property
    def config(self) -> Config:
        return self._engine._config

    @property
    def rng(self) -> random.Random:
        return self._engine._rng

    @property
    def stats(self) -> Counter[str]:
        return self._engine._stats

    @property
    def packet_budget(self) -> int:
        return self._engine._swim.packet_budget

    @property
    def seals_outgoing(self) -> bool:
        policy = self._engine._policy
        return policy is not None and policy.seals_outgoing

    def send(self, addr: Address, messages: list[WireMessage]) -> None:
        self._engine._swim.send(addr, messages)

    def send_packet(self, addr: Address, parts: list[bytes]) -> None:
        self._engine._swim.outbox.append((addr, pack_packet(parts)))

    def broadcast(self, key: Hashable, message: WireMessage) -> None:
        self._engine._swim.broadcast(key, message)

    def open_stream(self, addr: Address, message: WireMessage, owner: Layer) -> int:
        return self._engine._open_stream(addr, encode_stream(message), owner.section, owner)

    def choose_members(self, k: int, accept: Callable[[MemberRecord], bool]) -> list[MemberRecord]:
        return self._engine._swim.choose_members(k, accept)

    def member(self, name: str) -> Member | None:
        m = self._engine._swim.members.get(name)
        return None if m is None else m.snapshot()

    def live_members(self) -> list[Member]:
        me = self._engine._config.name
        return [
            m.snapshot() for m in self._engine._swim.members.values() if m.state <= _SUSPECT and m.name != me
        ]

    def emit(self, event: Any) -> None:
        self._engine._events.append(event)
