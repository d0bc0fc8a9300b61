"""Cluster-wide keyring operations (install / use / remove), as a pure state machine.

Rules:
- every keyring a member holds is tagged (version, rank, origin): a total order. An operation
  applied at its origin takes (its version + 1, the action's rank, its own name), and carries
  the keyring it results in; a node adopts that keyring wholesale only if the tag is greater
  than its own, so a replayed (captured) operation never changes anything, and operations
  started concurrently on different members (same version) converge: every member ends with
  the keyring of the greatest tag, whatever order the operations arrive in;
- the rank breaks ties at one version: remove (3) > use (2) > install (1). A removal must beat
  a concurrent use of the same key: members that removed the key could never open what the
  others would seal with it. With this rank the winner's primary is always a key every
  loser still holds, so the winner's keyring reaches everyone;
- the operator whose operation lost learns it: an operation whose effect does not hold in
  the local keyring when it finishes is reported failed at its origin ("superseded");
- operations are still meant to be run one at a time (install everywhere, then use, then
  remove), as with `serf keys`; each reports which members acknowledged and which refused.
  (An operation started on a member that has not yet adopted a concurrent winner is ordered
  after it and builds on the losing keyring: run operations one at a time);
- `state()` / `merge_state()` carry the whole keyring and its tag in push-pull, so a node
  that missed operations (it was down) adopts a newer keyring at its next sync, provided it
  still holds a key the cluster accepts;
- pure: no clock, no I/O; `now` is an argument.
"""

from __future__ import annotations

import attrs

from swimnet.errors import LocalProtocolError, SwimnetError
from swimnet.security.keyring import Keyring, key_id
from swimnet.wire.keys import ACTION_RANK, KeyOp, KeyOpAck, KeyringState

Tag = tuple[int, int, str]
"""(version, action rank, origin): the total order of keyrings."""


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
    __slots__ = ("acks", "deadline", "expected", "op")

    def __init__(self, op: KeyOp, expected: set[str], deadline: float) -> None:
        self.op = op
        self.expected = expected
        self.acks: dict[str, tuple[bool, str]] = {}
        self.deadline = deadline


class KeyManager:
    """The local side of cluster-wide key management."""

    def __init__(self, keyring: Keyring | None, name: str) -> None:
        self.keyring = keyring
        self.name = name
        self.tag: Tag = (0, 0, "")
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
        self.tag = (self.version + 1, ACTION_RANK[action], self.name)
        self._next_op = (self._next_op + 1) & 0xFFFFFFFF
        op_id = self._next_op
        op = KeyOp(self.version, self.name, op_id, action, raw_id, key, ring.keys())
        self._pending[op_id] = _Pending(op, set(expected), now + timeout)
        if not expected:
            self._finish(op_id)
        return op_id, op

    @property
    def version(self) -> int:
        return self.tag[0]

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
        """A remote operation: adopt its keyring if its tag is greater than ours; the ack to
        send to its origin (None: old news)."""
        tag = (op.version, ACTION_RANK[op.action], op.origin)
        if tag <= self.tag or self.keyring is None:
            return None
        problem = _inconsistent(op)
        if problem is None:
            problem = self._adopt(op.keys, tag)
        if problem is not None:
            return KeyOpAck(op.op_id, self.name, False, problem[:200])
        return KeyOpAck(op.op_id, self.name, True)

    def _adopt(self, keys: tuple[bytes, ...], tag: Tag) -> str | None:
        """Make our keyring exactly `keys` (primary first) and take `tag`; the problem if not."""
        ring = self.keyring
        assert ring is not None
        try:
            Keyring(keys)  # refuses what a ring cannot hold, before ours changes
            for key in keys:
                ring.install(key)
            ring.use(keys[0])
            for key in tuple(ring):
                if key not in keys:
                    ring.remove(key)
        except SwimnetError as exc:
            return str(exc)
        self.tag = tag
        return None

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
        failed = {n: err for n, (ok, err) in sorted(p.acks.items()) if not ok}
        if self.holds(p.op) is None:  # a concurrent operation won (see the module rules)
            failed[self.name] = f"superseded by a concurrent key operation ({self.tag[2]})"
        self.results[op_id] = KeyOpResult(
            p.op.action,
            p.op.key_id.hex(),
            tuple(sorted(n for n, (ok, _) in p.acks.items() if ok)),
            failed,
            tuple(sorted(p.expected - set(p.acks))),
        )

    def state(self) -> KeyringState | None:
        if self.keyring is None:
            return None
        version, rank, origin = self.tag
        return KeyringState(version, self.keyring.keys(), rank, origin)

    def merge_state(self, state: KeyringState) -> bool:
        """Adopt a keyring with a greater tag wholesale (we missed operations, or ours lost
        a race); True if adopted."""
        tag = (state.version, state.rank, state.origin)
        if self.keyring is None or tag <= self.tag:
            return False
        return self._adopt(state.keys, tag) is None


def _inconsistent(op: KeyOp) -> str | None:
    """What is wrong with an operation whose keyring does not show its own effect."""
    ids = [key_id(k) for k in op.keys]
    if op.action == "install" and op.key not in op.keys:
        return "key_op: the installed key is not in its keyring"
    if op.action == "use" and ids[0] != op.key_id:
        return "key_op: the key put in use is not the keyring's primary"
    if op.action == "remove" and op.key_id in ids:
        return "key_op: the removed key is still in its keyring"
    return None
