"""Cluster-wide keyring operations (install / use / remove), as a pure state machine.

Rules:
- an operation carries a cluster-wide `version`: the originator takes its keyring version
  plus one; a node applies an operation only if its version is newer than its own keyring
  version, so a replayed (captured) operation never changes anything;
- operations must be run one at a time by the operator (install everywhere, then use, then
  remove), as with `serf keys`; each reports which members acknowledged and which refused;
- `state()` / `merge_state()` carry the whole keyring in push-pull, so a node that missed
  operations (it was down) adopts a newer keyring at its next sync, provided it still
  holds a key the cluster accepts;
- pure: no clock, no I/O; `now` is an argument.
"""

from __future__ import annotations

import attrs

from swimnet.errors import LocalProtocolError, SwimnetError
from swimnet.security.keyring import Keyring, key_id
from swimnet.wire.keys import KeyOp, KeyOpAck, KeyringState


@attrs.frozen
class KeyOpResult:
    """How a cluster-wide key operation went."""

    action: str
    key_id: str
    acked: tuple[str, ...]
    """Members that applied it."""
    failed: dict[str, str]
    """Members that refused it, with their reason."""
    missing: tuple[str, ...]
    """Members that did not answer before the timeout."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing


class _Pending:
    __slots__ = ("acks", "action", "deadline", "expected", "key_id")

    def __init__(self, action: str, key_id: str, expected: set[str], deadline: float) -> None:
        self.action = action
        self.key_id = key_id
        self.expected = expected
        self.acks: dict[str, tuple[bool, str]] = {}
        self.deadline = deadline


class KeyManager:
    """The local side of cluster-wide key management."""

    def __init__(self, keyring: Keyring | None, name: str) -> None:
        self.keyring = keyring
        self.name = name
        self.version = 0
        self._next_op = 0
        self._pending: dict[int, _Pending] = {}
        self.results: dict[int, KeyOpResult] = {}

    def start(
        self, action: str, key_or_id: bytes | str, expected: set[str], now: float, timeout: float
    ) -> tuple[int, KeyOp]:
        """Apply an operation locally and return (op id, the message to broadcast)."""
        ring = self._ring()
        if action == "install":
            if not isinstance(key_or_id, bytes):
                raise LocalProtocolError("keys.install takes the 32-byte key itself")
            ring.install(key_or_id)
            raw_id, key = key_id(key_or_id), key_or_id
        elif action in ("use", "remove"):
            raw_id = self._resolve_id(ring, key_or_id)
            (ring.use if action == "use" else ring.remove)(raw_id.hex())
            key = b""
        else:
            raise LocalProtocolError(f"unknown key action {action!r}")
        self.version += 1
        self._next_op = (self._next_op + 1) & 0xFFFFFFFF
        op_id = self._next_op
        self._pending[op_id] = _Pending(action, raw_id.hex(), set(expected), now + timeout)
        if not expected:
            self._finish(op_id)
        return op_id, KeyOp(self.version, self.name, op_id, action, raw_id, key)

    @staticmethod
    def _resolve_id(ring: Keyring, key_or_id: bytes | str) -> bytes:
        if isinstance(key_or_id, bytes):
            return key_id(key_or_id)
        try:
            raw = bytes.fromhex(key_or_id.strip())
        except ValueError:
            raw = b""
        if len(raw) != 4:
            raise LocalProtocolError(f"not a key id: {key_or_id!r} (8 hex characters)")
        if ring.key_for_id(raw) is None:
            raise LocalProtocolError(f"no installed key has id {raw.hex()}")
        return raw

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise LocalProtocolError("this node has no keyring (encryption is off)")
        return self.keyring

    def apply(self, op: KeyOp) -> KeyOpAck | None:
        """A remote operation: apply it if newer; the ack to send to its origin (None: old)."""
        if op.version <= self.version or self.keyring is None:
            return None
        self.version = op.version
        try:
            if op.action == "install":
                self.keyring.install(op.key)
            elif op.action == "use":
                self.keyring.use(op.key_id.hex())
            else:
                self.keyring.remove(op.key_id.hex())
        except SwimnetError as exc:
            return KeyOpAck(op.op_id, self.name, False, str(exc)[:200])
        return KeyOpAck(op.op_id, self.name, True)

    def holds(self, op: KeyOp) -> KeyOpAck | None:
        """For an operation seen before (or adopted through push-pull): an ok ack if its
        effect holds in our keyring, else None (answering again is idempotent)."""
        ring = self.keyring
        if ring is None:
            return None
        key = ring.key_for_id(op.key_id)
        held = (
            (op.action == "install" and key is not None)
            or (op.action == "use" and key is not None and key == ring.primary)
            or (op.action == "remove" and key is None)
        )
        return KeyOpAck(op.op_id, self.name, True) if held else None

    def record_ack(self, ack: KeyOpAck) -> None:
        pending = self._pending.get(ack.op_id)
        if pending is None or ack.node not in pending.expected:
            return
        pending.acks[ack.node] = (ack.ok, ack.error)
        if len(pending.acks) == len(pending.expected):
            self._finish(ack.op_id)

    def expire(self, now: float) -> None:
        for op_id in [i for i, p in self._pending.items() if p.deadline <= now]:
            self._finish(op_id)

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(p.deadline for p in self._pending.values())

    def member_gone(self, name: str) -> None:
        """A member left or failed: stop waiting for its answer."""
        for op_id, pending in list(self._pending.items()):
            if name in pending.expected and name not in pending.acks:
                pending.expected.discard(name)
                if len(pending.acks) == len(pending.expected):
                    self._finish(op_id)

    def _finish(self, op_id: int) -> None:
        p = self._pending.pop(op_id)
        self.results[op_id] = KeyOpResult(
            p.action,
            p.key_id,
            tuple(sorted(n for n, (ok, _) in p.acks.items() if ok)),
            {n: err for n, (ok, err) in sorted(p.acks.items()) if not ok},
            tuple(sorted(p.expected - set(p.acks))),
        )

    def state(self) -> KeyringState | None:
        if self.keyring is None:
            return None
        return KeyringState(self.version, self.keyring.keys())

    def merge_state(self, state: KeyringState) -> bool:
        """Adopt a newer keyring wholesale (we missed operations); True if adopted."""
        if self.keyring is None or state.version <= self.version:
            return False
        ring = self.keyring
        for key in state.keys:
            ring.install(key)
        ring.use(state.keys[0])
        for key in tuple(ring):
            if key not in state.keys:
                ring.remove(key)
        self.version = state.version
        return True
