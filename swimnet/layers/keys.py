"""The keys layer: cluster-wide keyring operations (install / use / remove) over gossip and
streams, and keyring catch-up in push-pull (`KeyManager` holds the pure rules).

Rules:
- nothing here is accepted unless it arrived sealed: a key operation, an ack or a keyring
  state in plaintext is counted (`drop_key_op_plaintext`, `drop_keyring_state_plaintext`)
  and dropped; keyring state is only offered in push-pull when outgoing traffic is sealed;
- an operation goes to every live member over a stream (its reply is the member's ack) and
  by gossip too, which reaches whoever the direct exchange missed; a member acks a gossiped
  operation on its first receipt over a stream, then a few more times as datagrams;
- every operation started here ends with one `KeyOpFinished(op_id, result)`: all expected
  members answered, the ones still missing left or failed, or the timeout passed.
"""

from __future__ import annotations

from collections.abc import Mapping

from swimnet.errors import DecodeError
from swimnet.layers.contract import Host, MessageHandler, StreamHandler
from swimnet.layers.events import KeyOpFinished
from swimnet.membership.events import MemberEvent, MemberFailed, MemberLeft
from swimnet.security.keyops import KeyManager
from swimnet.security.keyring import Keyring
from swimnet.wire.codec import decode_message, encode_message
from swimnet.wire.keys import KeyOp, KeyOpAck, KeyringState
from swimnet.wire.messages import Address, WireMessage

_ACKS_PER_OP = 3
"""A gossiped operation is acknowledged on each of its first receipts, at most this many times."""
_MAX_SEEN = 1024


class KeysLayer:
    section = "keys"
    broadcasts = None

    def __init__(self, host: Host, keyring: Keyring | None) -> None:
        self._host = host
        self._keys = KeyManager(keyring, host.name)
        self._seen: dict[tuple[str, int, int], int] = {}
        self._waiting: set[int] = set()
        """Operations started here whose KeyOpFinished is not out yet."""

    @property
    def version(self) -> int:
        """The cluster-wide operation counter this node's keyring reflects."""
        return self._keys.version

    def set_keyring(self, keyring: Keyring | None) -> None:
        self._keys.keyring = keyring

    def message_handlers(self) -> Mapping[type, MessageHandler]:
        return {KeyOp: self._on_key_op, KeyOpAck: self._on_ack_datagram}

    def stream_handlers(self) -> Mapping[type, StreamHandler]:
        return {KeyOp: self._stream_key_op, KeyOpAck: self._stream_ack}

    # -- local API ---------------------------------------------------------------------------

    def start(self, action: str, key_or_id: bytes | str, now: float, timeout: float) -> int:
        """Apply locally (LocalProtocolError if it cannot be), then send to everyone."""
        host = self._host
        live = host.live_members()
        op_id, op = self._keys.start(action, key_or_id, {m.name for m in live}, now, timeout)
        self._waiting.add(op_id)
        for m in live:
            host.open_stream(m.address, op, self)
        host.broadcast(("keyop", op.origin, op.op_id), op)
        host.stats[f"key_ops_{action}"] += 1
        self._announce()
        return op_id

    # -- input -------------------------------------------------------------------------------

    def _on_key_op(self, op: KeyOp, addr: Address, now: float, sealed: bool) -> None:
        host = self._host
        if not sealed:
            host.stats["drop_key_op_plaintext"] += 1
            return
        seen_key = (op.origin, op.op_id, op.version)
        seen = self._seen.get(seen_key, 0)
        if seen >= _ACKS_PER_OP:
            return
        if len(self._seen) > _MAX_SEEN:
            self._seen.clear()
        self._seen[seen_key] = seen + 1
        ack = self._apply(op)
        if ack is None:
            ack = self._keys.holds(op)  # seen before, or adopted through a push-pull
        origin = host.member(op.origin)
        if ack is not None and origin is not None and op.origin != host.name:
            if seen == 0:  # first receipt: a stream, which loss cannot eat
                host.open_stream(origin.address, ack, self)
                host.stats["key_op_acks_sent_stream"] += 1
            else:  # a few more times as datagrams, in case the stream failed
                host.send(origin.address, [ack])
                host.stats["key_op_acks_sent_datagram"] += 1
        elif ack is None:
            host.stats["key_op_not_acked"] += 1

    def _stream_key_op(self, op: KeyOp, addr: Address, now: float, sealed: bool) -> WireMessage | None:
        """A key operation sent to us directly: apply it, the reply is our ack."""
        if not sealed:
            self._host.stats["drop_key_op_plaintext"] += 1
            return None
        self._seen[(op.origin, op.op_id, op.version)] = _ACKS_PER_OP  # answered: gossip needs no ack
        ack = self._apply(op)
        if ack is not None:
            return ack
        superseded = KeyOpAck(op.op_id, self._host.name, False, "superseded by a newer keyring")
        return self._keys.holds(op) or superseded

    def _apply(self, op: KeyOp) -> KeyOpAck | None:
        """Apply an operation new to us and relay it; None if it was not new."""
        ack = self._keys.apply(op)
        if ack is not None:
            self._host.broadcast(("keyop", op.origin, op.op_id), op)
            if not ack.ok:
                self._host.stats["key_ops_refused"] += 1
        return ack

    def _on_ack_datagram(self, ack: KeyOpAck, addr: Address, now: float, sealed: bool) -> None:
        if sealed:
            self._record(ack)

    def _stream_ack(self, ack: KeyOpAck, addr: Address, now: float, sealed: bool) -> WireMessage | None:
        if not sealed:
            self._host.stats["drop_key_op_plaintext"] += 1
            return None
        self._record(ack)
        return ack  # echoed: the sender only needs to know it arrived

    def handle_reply(
        self, stream_id: int, message: WireMessage, addr: Address, now: float, sealed: bool
    ) -> bool:
        if type(message) is not KeyOpAck:
            return False
        if sealed:
            self._record(message)
        return True

    def stream_failed(self, stream_id: int, now: float) -> None:
        self._host.stats["stream_failed_keys"] += 1  # gossip still carries it

    def _record(self, ack: KeyOpAck) -> None:
        self._keys.record_ack(ack)
        self._announce()

    def local_state(self, join: bool, now: float) -> bytes | None:
        state = self._keys.state()
        if state is None or not self._host.seals_outgoing:
            return None  # keys never travel in plaintext
        return encode_message(state)

    def merge_state(self, data: bytes, join: bool, now: float, sealed: bool) -> None:
        stats = self._host.stats
        if not sealed:
            stats["drop_keyring_state_plaintext"] += 1
            return
        try:
            state = decode_message(data)
        except DecodeError:
            stats["drop_keyring_state_decode"] += 1
            return
        if type(state) is KeyringState and self._keys.merge_state(state):
            stats["keyring_adopted"] += 1

    def member_event(self, event: MemberEvent, now: float) -> None:
        if type(event) in (MemberFailed, MemberLeft):
            self._keys.member_gone(event.member.name)
            self._announce()

    # -- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._keys.next_deadline()

    def handle_timer(self, now: float) -> None:
        self._keys.expire(now)
        self._announce()

    def _announce(self) -> None:
        if not self._waiting:
            return
        results = self._keys.results
        for op_id in [i for i in self._waiting if i in results]:
            self._waiting.discard(op_id)
            self._host.emit(KeyOpFinished(op_id, results.pop(op_id)))
