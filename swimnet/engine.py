"""The sans-IO node: bytes in, bytes out. Composes the wire codec, security (sealing and
key management), membership (SWIM + Lifeguard) and topology (coordinates); the tables
layer plugs in through `register_handler` and `register_user_state`.

Surface (every entry point takes `now`; nothing here reads a clock or does I/O):

    receive_datagram(data, addr, now)           a datagram from the network
    handle_stream(request, addr, now) -> bytes  a stream request from a peer; the reply
                                                (addr: the TCP peer, an ephemeral port)
    stream_reply(reply, addr, now) -> bool      the reply to a stream we opened
    stream_failed(addr, now)                    a stream we opened could not complete
    handle_timer(now)                           call at (or after) next_deadline()
    datagrams_to_send() / streams_to_open()     drain after every call (already sealed)
    events()                                    drain after every call
    next_deadline() -> float | None

Rules:
- peer input never raises out of the engine: anything unauthenticated, undecodable or
  unexpected is counted in `stats` by reason (`drop_*`) and dropped, and changes nothing;
- with a keyring, every datagram and stream frame is sealed (XChaCha20-Poly1305, the
  cluster label as associated data); nonces come from the injected `nonce_source`
  (the runtime passes os.urandom; the default draws from `rng`, for reproducible runs);
- key operations and keyring state are only accepted from sealed input, and keyring state
  is only sent in sealed streams;
- anti-replay: sealed input whose sender timestamp (in the nonce) is older than
  `replay_window` is refused; time for it comes from `wall_clock` (the runtime passes
  time.time; the default is the `now` of the entry points, i.e. virtual time).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Container, Sequence
from typing import Any

import msgpack

from swimnet.config import Config
from swimnet.engine_tables import TablesLayer
from swimnet.errors import AuthenticationError, DecodeError, LocalProtocolError
from swimnet.membership.events import MemberEvent, MemberFailed, MemberLeft
from swimnet.membership.member import Member
from swimnet.membership.swim import Swim
from swimnet.security.keyops import KeyManager, KeyOpResult
from swimnet.security.keyring import Keyring
from swimnet.security.seal import (
    TIMESTAMP_SIZE,
    SecurityPolicy,
    looks_sealed,
    protect,
    protect_overhead,
    sealed_timestamp,
    unprotect,
)
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.topology.coordinate import Coordinate
from swimnet.topology.selection import choose_excluding
from swimnet.topology.tracker import PeerCoordinates
from swimnet.wire.codec import decode_packet, decode_stream, encode_message, encode_stream
from swimnet.wire.keys import KeyOp, KeyOpAck, KeyringState
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

MessageHandler = Callable[[Any, Address, float, bool], None]
"""(message, sender address, now, arrived sealed)."""
StreamHandler = Callable[[Any, Address, float], WireMessage | None]
ReplyHandler = Callable[[Any, Address, float], None]

_MEMBERSHIP = (Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead)
_MAX_SECTIONS = 8
_KEEP = object()
_MAX_TRACKED_STREAMS = 1024
_KEY_OP_ACKS = 3
"""A key operation is acknowledged on each of its first receipts, at most this many times."""


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
    ) -> None:
        if not config.name:
            raise LocalProtocolError("config.name must be set to run a node")
        self.config = config
        self.rng = rng
        self.swim = Swim(config, rng, now, incarnation=incarnation)
        self.stats: Counter[str] = self.swim.stats
        self.topology = PeerCoordinates(rng, stats=self.stats)
        self.swim.ack_payload = self._ack_payload
        self.swim.on_rtt = self.topology.observe
        if config.topology_bias > 0.0:
            self.swim.biased_choice = self._biased_choice
        self.swim.on_forget = self.topology.forget

        self._random = nonce_source if nonce_source is not None else rng.randbytes
        self._now = now
        self._wall = wall_clock if wall_clock is not None else (lambda: self._now)
        self.replay_window = config.effective_replay_window
        self.policy: SecurityPolicy | None = None
        self._keyring = config.keyring
        self.set_security(config.verify_incoming, config.encrypt_outgoing)
        self.keys = KeyManager(config.keyring, config.name)
        self.swim.event_hooks.append(self._member_event)

        self._handlers: dict[type, MessageHandler] = {
            KeyOp: self._on_key_op,
            KeyOpAck: lambda msg, addr, now, sealed: self.keys.record_ack(msg) if sealed else None,
        }
        self._stream_handlers: dict[type, StreamHandler] = {
            KeyOpAck: self._stream_key_op_ack,
            KeyOp: self._stream_key_op,
        }
        self._reply_handlers: dict[type, ReplyHandler] = {KeyOpAck: self._key_op_ack_reply}
        self._sections: dict[
            str, tuple[Callable[[bool], bytes | None], Callable[[bytes, bool, float], None]]
        ] = {}
        self._input_sealed = False
        self._key_ops_seen: dict[tuple[str, int, int], int] = {}
        self._stream_kinds: dict[bytes, str] = {}
        """Request frame -> kind, for streams handed out and not reported failed (bounded)."""
        self.register_user_state("keys", self._keys_section, self._merge_keys_section)
        self.swim.local_user_state = self._local_user_state
        self.swim.merge_user_state = self._merge_user_state
        self.tables = TablesLayer(self, now, tables_config)

    # -- extension points (the tables layer uses them) ---------------------------------------

    def register_handler(self, cls: type, handler: MessageHandler) -> None:
        """Route datagram messages of type `cls` to `handler`."""
        self._handlers[cls] = handler

    def register_stream(self, cls: type, handler: StreamHandler, on_reply: dict[type, ReplyHandler]) -> None:
        """Serve stream requests of type `cls`; route replies of the given types."""
        self._stream_handlers[cls] = handler
        self._reply_handlers.update(on_reply)

    def register_user_state(
        self,
        name: str,
        produce: Callable[[bool], bytes | None],
        consume: Callable[[bytes, bool, float], None],
    ) -> None:
        """A named section of the push-pull exchange (produce(join) -> bytes or None)."""
        self._sections[name] = (produce, consume)

    def open_stream(self, addr: Address, message: WireMessage) -> None:
        """Queue a stream request (sealed on the way out, see streams_to_open)."""
        self.swim.streams.append((addr, _frame(message), type(message).__name__))

    def send(self, addr: Address, messages: list[WireMessage]) -> None:
        """Queue a datagram (topped up with piggybacked broadcasts)."""
        self.swim.send(addr, messages)

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

    def _ack_payload(self, seq: int) -> bytes:
        # our coordinate rides on every `coordinate_every`-th ack (by the prober's sequence
        # number): half the samples, a fraction of the bytes
        every = self.config.coordinate_every
        return self.topology.ack_payload() if every and seq % every == 0 else b""

    def _biased_choice(self, candidates: Sequence[str], k: int, skip: Container[str]) -> list[str]:
        cfg = self.config
        return choose_excluding(
            candidates, k, self.rng, self._rtt_for_choice, cfg.topology_bias, skip, cfg.topology_uniform_share
        )

    def _rtt_for_choice(self, member: str) -> float | None:
        return self.topology.remoteness(member, self.config.topology_rtt_floor)

    def members(self) -> list[Member]:
        return self.swim.member_list()

    def view(self) -> dict[str, State]:
        return {name: m.state for name, m in self.swim.members.items()}

    @property
    def last_now(self) -> float:
        """The `now` of the latest entry point call."""
        return self._now

    # -- API -------------------------------------------------------------------------------

    def join(self, seeds: list[Address], now: float) -> None:
        """Open a join push-pull to every seed (see streams_to_open)."""
        self.swim.join(seeds, now)

    def join_request(self) -> bytes:
        """The (sealed) request frame of a join push-pull, for runtimes that run it themselves."""
        return self._protect(self.swim.push_pull_request(join=True))

    def set_meta(self, meta: bytes, now: float) -> None:
        """Publish new metadata (at most MAX_META bytes) under a higher incarnation."""
        if not isinstance(meta, bytes) or len(meta) > MAX_META:
            raise LocalProtocolError(f"meta: must be bytes of at most {MAX_META} bytes")
        self._now = now
        self.swim.set_meta(meta, now)
        self.swim.wake_gossip(now)

    def leave(self, now: float) -> None:
        self.swim.leave(now)
        self.swim.wake_gossip(now)

    @property
    def leaving(self) -> bool:
        """leave() was called."""
        return self.swim.leaving

    @property
    def leave_done(self) -> bool:
        return self.swim.leave_done

    # tables (NetworkDB-style, network-scoped); changes also arrive in events()

    def join_network(self, network: str, now: float) -> list[TableChange]:
        self._now = now
        return self.tables.join_network(network, now)

    def leave_network(self, network: str, now: float) -> list[TableChange]:
        self._now = now
        return self.tables.leave_network(network, now)

    def table_put(self, network: str, table: str, key: str, value: bytes, now: float) -> list[TableChange]:
        self._now = now
        return self.tables.put(network, table, key, value, now)

    def table_delete(self, network: str, table: str, key: str, now: float) -> list[TableChange]:
        self._now = now
        return self.tables.delete(network, table, key, now)

    def table_get(self, network: str, table: str, key: str) -> bytes | None:
        return self.tables.state.get(network, table, key)

    def table_items(self, network: str, table: str) -> dict[str, bytes]:
        return self.tables.state.items(network, table)

    def table_snapshot(self, network: str, table: str) -> list[TableChange]:
        """The visible entries as CREATED changes: what a new watcher starts from."""
        return self.tables.state.snapshot(network, table)

    def networks(self) -> list[str]:
        return self.tables.state.joined_networks()

    def set_security(
        self, verify_incoming: bool, encrypt_outgoing: bool, *, keyring: Keyring | object | None = _KEEP
    ) -> None:
        """Change the migration switches (and optionally the keyring) at run time: the
        plaintext -> encrypted rolling upgrade, one node at a time: (keyring, False, False),
        then (True for encrypt_outgoing), then verify_incoming too."""
        cfg = self.config
        ring = self._keyring if keyring is _KEEP else keyring
        assert ring is None or isinstance(ring, Keyring)
        self._keyring = ring
        if ring is None and not cfg.label:
            self.policy = None
        else:
            self.policy = SecurityPolicy(ring, cfg.label, verify_incoming, encrypt_outgoing)
        if hasattr(self, "keys"):
            self.keys.keyring = ring
        overhead = protect_overhead(self.policy) if self.policy is not None else 0
        self.swim.packet_budget = cfg.packet_size - overhead

    @property
    def keyring(self) -> Keyring | None:
        return self._keyring

    def key_op(self, action: str, key_or_id: bytes | str, now: float, timeout: float = 10.0) -> int:
        """Start a cluster-wide keyring operation (install/use/remove); returns its id.

        Applied locally at once (LocalProtocolError if it cannot be), then gossiped; see
        `key_op_result`.
        """
        live = [m for m in self.swim.members.values() if m.state <= State.SUSPECT and m.name != self.name]
        op_id, op = self.keys.start(action, key_or_id, {m.name for m in live}, now, timeout)
        # to every member directly (a stream each: the reply is its ack), and by gossip too,
        # which reaches whoever the direct exchange could not
        for m in live:
            self.open_stream(m.addr, op)
        self.swim.broadcast(("keyop", op.origin, op.op_id), op)
        self.swim.wake_gossip(now)
        self.stats[f"key_ops_{action}"] += 1
        return op_id

    def key_op_result(self, op_id: int) -> KeyOpResult | None:
        """None while members are still answering; then who applied, refused, or missed it."""
        return self.keys.results.get(op_id)

    # -- network input -----------------------------------------------------------------------

    def _unprotect(self, data: bytes, now: float) -> bytes | None:
        self._now = now
        self._input_sealed = False
        if self.policy is None:
            return data
        try:
            plain = unprotect(self.policy, data)
        except AuthenticationError as exc:
            self.stats[f"drop_auth_{exc.reason}"] += 1
            return None
        if looks_sealed(data):
            # anti-replay: captured traffic older than the window is refused; the window is
            # shorter than dead_reap_time, so a replay can never resurrect a forgotten member
            if sealed_timestamp(data) < int(self._wall()) - self.replay_window:
                self.stats["drop_auth_stale"] += 1
                return None
            self._input_sealed = True
        return plain

    def _nonce(self, n: int) -> bytes:
        stamp = (int(self._wall()) & 0xFFFFFFFF).to_bytes(TIMESTAMP_SIZE, "big")
        return stamp + self._random(n - TIMESTAMP_SIZE)

    def _protect(self, data: bytes) -> bytes:
        return data if self.policy is None else protect(self.policy, data, self._nonce)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.stats["packets_received"] += 1
        self.stats["bytes_received"] += len(data)
        plain = self._unprotect(data, now)
        if plain is None:
            return
        try:
            messages = decode_packet(plain)
        except DecodeError:
            self.stats["drop_decode"] += 1
            return
        sealed = self._input_sealed
        handle, handlers = self.swim.handle_message, self._handlers
        for msg in messages:
            if type(msg) in _MEMBERSHIP:
                handle(msg, addr, now)
            else:
                handler = handlers.get(type(msg))
                if handler is None:
                    self.stats["drop_unexpected_message"] += 1
                else:
                    handler(msg, addr, now, sealed)
        self.swim.wake_gossip(now)

    def handle_stream(self, request: bytes, addr: Address, now: float) -> bytes | None:
        """Answer a stream request; None means: close without a reply (bad input)."""
        self.stats["streams_received"] += 1
        plain = self._unprotect(request, now)
        if plain is None:
            return None
        try:
            msg = decode_stream(plain)
        except DecodeError:
            self.stats["drop_stream_decode"] += 1
            return None
        reply: bytes | None
        if type(msg) is PushPull:
            reply = self.swim.handle_push_pull(msg, addr, now)
        elif type(msg) is Ping:
            reply = self.swim.handle_stream_ping(msg)
        elif (handler := self._stream_handlers.get(type(msg))) is not None:
            answer = handler(msg, addr, now)
            reply = None if answer is None else _frame(answer)
        else:
            self.stats["drop_stream_unexpected"] += 1
            reply = None
        self.swim.wake_gossip(now)
        return None if reply is None else self._protect(reply)

    def stream_reply(self, reply: bytes, addr: Address, now: float, request: bytes | None = None) -> bool:
        """The reply to a stream we opened (pass its `request` frame: it is then forgotten);
        False if the reply was refused (counted in stats)."""
        if request is not None:
            self._stream_kinds.pop(request, None)
        plain = self._unprotect(reply, now)
        if plain is None:
            self.swim.push_pull_failed(addr, now)
            return False
        try:
            msg = decode_stream(plain)
        except DecodeError:
            self.stats["drop_stream_decode"] += 1
            self.swim.push_pull_failed(addr, now)
            return False
        accepted = True
        if type(msg) is PushPull:
            self.swim.push_pull_reply(msg, addr, now)
        elif type(msg) is Ack:
            self.swim.stream_ack(msg, addr, now)
        elif (handler := self._reply_handlers.get(type(msg))) is not None:
            handler(msg, addr, now)
        else:
            self.stats["drop_stream_unexpected"] += 1
            accepted = False
        self.swim.wake_gossip(now)
        return accepted

    def stream_failed(self, addr: Address, now: float, request: bytes | None = None) -> None:
        """A stream we opened got no reply. Pass the `request` bytes (as streams_to_open gave
        them) so the engine knows which exchange failed; without them, a push-pull is assumed."""
        kind = self._stream_kinds.pop(request, None) if request is not None else None
        if kind is None or kind in ("join", "push_pull"):
            self.swim.push_pull_failed(addr, now)
        else:
            self.stats[f"stream_failed_{kind}"] += 1

    def handle_timer(self, now: float) -> None:
        self._now = now
        self.swim.handle_timer(now)
        self.keys.expire(now)
        self.tables.handle_timer(now)
        self.swim.wake_gossip(now)

    # -- key management ------------------------------------------------------------------------

    def _on_key_op(self, op: KeyOp, addr: Address, now: float, sealed: bool) -> None:
        if not sealed:
            self.stats["drop_key_op_plaintext"] += 1
            return
        seen_key = (op.origin, op.op_id, op.version)
        seen = self._key_ops_seen.get(seen_key, 0)
        if seen >= _KEY_OP_ACKS:
            return
        if len(self._key_ops_seen) > 1024:
            self._key_ops_seen.clear()
        self._key_ops_seen[seen_key] = seen + 1
        ack = self.keys.apply(op)
        if ack is not None:
            self.swim.broadcast(("keyop", op.origin, op.op_id), op)  # new to us: relay it
            if not ack.ok:
                self.stats["key_ops_refused"] += 1
        else:
            ack = self.keys.holds(op)  # seen before, or adopted through a push-pull
        origin = self.swim.members.get(op.origin)
        if ack is not None and origin is not None and op.origin != self.name:
            if seen == 0:  # first receipt: a stream, which loss cannot eat
                self.open_stream(origin.addr, ack)
                self.stats["key_op_acks_sent_stream"] += 1
            else:  # a few more times as datagrams, in case the stream failed
                self.swim.send(origin.addr, [ack])
                self.stats["key_op_acks_sent_datagram"] += 1
        elif ack is None:
            self.stats["key_op_not_acked"] += 1

    def _stream_key_op(self, op: KeyOp, addr: Address, now: float) -> WireMessage | None:
        """A key operation sent to us directly: apply it, the reply is our ack."""
        if not self._input_sealed:
            self.stats["drop_key_op_plaintext"] += 1
            return None
        seen_key = (op.origin, op.op_id, op.version)
        self._key_ops_seen[seen_key] = _KEY_OP_ACKS  # answered here: gossip copies need no ack
        ack = self.keys.apply(op)
        if ack is not None:
            self.swim.broadcast(("keyop", op.origin, op.op_id), op)
            if not ack.ok:
                self.stats["key_ops_refused"] += 1
            return ack
        return self.keys.holds(op) or KeyOpAck(op.op_id, self.name, False, "superseded by a newer keyring")

    def _key_op_ack_reply(self, ack: KeyOpAck, addr: Address, now: float) -> None:
        if self._input_sealed:
            self.keys.record_ack(ack)

    def _stream_key_op_ack(self, ack: KeyOpAck, addr: Address, now: float) -> WireMessage | None:
        if not self._input_sealed:
            self.stats["drop_key_op_plaintext"] += 1
            return None
        self.keys.record_ack(ack)
        return ack  # echoed: the sender only needs to know it arrived

    def _keys_section(self, join: bool) -> bytes | None:
        state = self.keys.state()
        if state is None or self.policy is None or not self.policy.seals_outgoing:
            return None  # keys never travel in plaintext
        return encode_message(state)

    def _merge_keys_section(self, data: bytes, join: bool, now: float) -> None:
        if not self._input_sealed:
            self.stats["drop_keyring_state_plaintext"] += 1
            return
        try:
            state = decode_stream(b"\x02" + data)
        except DecodeError:
            self.stats["drop_keyring_state_decode"] += 1
            return
        if type(state) is KeyringState and self.keys.merge_state(state):
            self.stats["keyring_adopted"] += 1

    def _member_event(self, event: MemberEvent) -> None:
        if type(event) in (MemberFailed, MemberLeft):
            self.keys.member_gone(event.member.name)

    # -- push-pull sections ------------------------------------------------------------------

    def _local_user_state(self, join: bool) -> bytes:
        sections = []
        for name, (produce, _) in self._sections.items():
            data = produce(join)
            if data is not None:
                sections.append([name, data])
        return msgpack.packb(sections) if sections else b""

    def _merge_user_state(self, data: bytes, join: bool, now: float) -> None:
        try:
            sections = msgpack.unpackb(data, max_array_len=_MAX_SECTIONS * 2, max_map_len=0, max_ext_len=0)
        except Exception:
            self.stats["drop_user_state_decode"] += 1
            return
        if type(sections) is not list or len(sections) > _MAX_SECTIONS:
            self.stats["drop_user_state_decode"] += 1
            return
        for section in sections:
            if type(section) is not list or len(section) != 2 or type(section[1]) is not bytes:
                self.stats["drop_user_state_decode"] += 1
                continue
            entry = self._sections.get(section[0]) if type(section[0]) is str else None
            if entry is None:
                self.stats["drop_user_state_unknown_section"] += 1
                continue
            entry[1](section[1], join, now)

    # -- output ------------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[Address, bytes]]:
        out = self.swim.outbox
        if out:
            self.swim.outbox = []
            if self.policy is not None:
                out = [(addr, self._protect(data)) for addr, data in out]
            self.stats["packets_sent"] += len(out)
            self.stats["bytes_sent"] += sum(len(d) for _, d in out)
        return out

    def streams_to_open(self) -> list[tuple[Address, bytes]]:
        """(address, request frame) exchanges to run: send the frame, hand the one reply
        frame to stream_reply, or report stream_failed(addr, now, request)."""
        pending = self.swim.streams
        if not pending:
            return []
        self.swim.streams = []
        out = []
        kinds = self._stream_kinds
        for addr, data, kind in pending:
            frame = self._protect(data)
            if len(kinds) >= _MAX_TRACKED_STREAMS:
                kinds.pop(next(iter(kinds)))
            kinds[frame] = kind
            out.append((addr, frame))
        return out

    def events(self) -> list[MemberEvent | TableChange]:
        """Membership events, then table changes, each in the order they happened."""
        out: list[MemberEvent | TableChange] = []
        if self.swim.events:
            out.extend(self.swim.events)
            self.swim.events = []
        if self.tables.changes:
            out.extend(self.tables.changes)
            self.tables.changes = []
        return out

    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for d in (self.swim.next_deadline(), self.keys.next_deadline(), self.tables.next_deadline())
            if d is not None
        ]
        return min(deadlines) if deadlines else None


_frame = encode_stream
