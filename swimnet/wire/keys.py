"""Key-management messages (codes 64-95): cluster-wide keyring operations and their acks.

Rules: a `KeyOp` travels as a relayed broadcast, inside sealed gossip only (the engine
refuses it in plaintext); it carries the keyring it results in, and (version, action rank,
origin) orders operations cluster-wide, a total order (a node adopts an op's keyring only if
it is newer than its own, so replays change nothing and concurrent ops converge, see
`security.keyops`); a `KeyOpAck` goes straight back to the originator; `KeyringState`
carries a whole keyring with the same order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from swimnet.errors import DecodeError
from swimnet.wire import fields as f
from swimnet.wire.codec import register
from swimnet.wire.limits import MAX_NAME
from swimnet.wire.messages import WireMessage

KEY_ACTIONS = ("install", "use", "remove")
ACTION_RANK = {"install": 1, "use": 2, "remove": 3}
"""Ties at one version: a removal beats a concurrent use, which beats an install (0: the
keyring a node started with)."""
MAX_KEYS = 16
KEY_SIZE = 32
KEY_ID_SIZE = 4


@attrs.frozen
class KeyOp(WireMessage):
    """`origin` asks every member to `action` a key (install carries the key itself)."""

    CODE: ClassVar[int] = 64
    version: int
    origin: str
    op_id: int
    action: str
    key_id: bytes
    key: bytes = b""
    keys: tuple[bytes, ...] = ()
    """The keyring the operation results in at its origin, primary first."""


@attrs.frozen
class KeyOpAck(WireMessage):
    """`node` applied (ok) or refused (`error`) operation `op_id` of the receiver."""

    CODE: ClassVar[int] = 65
    op_id: int
    node: str
    ok: bool
    error: str = ""


@attrs.frozen
class KeyringState(WireMessage):
    """A node's whole keyring and its version, carried in push-pull (for nodes that missed ops)."""

    CODE: ClassVar[int] = 66
    version: int
    keys: tuple[bytes, ...]
    """Primary first."""
    rank: int = 0
    """ACTION_RANK of the operation that made this keyring (0: none yet)."""
    origin: str = ""
    """The member that made it."""


def _dec_keys(keys: Any, field: str) -> tuple[bytes, ...]:
    if type(keys) is not list or not 1 <= len(keys) <= MAX_KEYS:
        raise DecodeError(f"{field}: expected 1..{MAX_KEYS} keys")
    parsed = tuple(f.blob(k, field, KEY_SIZE) for k in keys)
    if any(len(k) != KEY_SIZE for k in parsed) or len(set(parsed)) != len(parsed):
        raise DecodeError(f"{field}: keys are 32 distinct bytes strings")
    return parsed


def _dec_key_op(v: list[Any]) -> KeyOp:
    f.fields(v, 7, "key_op")
    action = f.text(v[4], "key_op.action", 16)
    if action not in KEY_ACTIONS:
        raise DecodeError(f"key_op.action: unknown {action!r}")
    key_id = f.blob(v[5], "key_op.key_id", KEY_ID_SIZE)
    key = f.blob(v[6], "key_op.key", KEY_SIZE)
    if len(key_id) != KEY_ID_SIZE or len(key) not in ((KEY_SIZE,) if action == "install" else (0,)):
        raise DecodeError("key_op: bad key or key id length")
    return KeyOp(
        f.uint(v[1], "key_op.version", 2**63),
        f.name(v[2], "key_op.origin"),
        f.uint(v[3], "key_op.op_id"),
        action,
        key_id,
        key,
        _dec_keys(v[7], "key_op.keys"),
    )


def _dec_key_op_ack(v: list[Any]) -> KeyOpAck:
    f.fields(v, 4, "key_op_ack")
    return KeyOpAck(
        f.uint(v[1], "key_op_ack.op_id"),
        f.name(v[2], "key_op_ack.node"),
        f.boolean(v[3], "key_op_ack.ok"),
        f.text(v[4], "key_op_ack.error", 200, empty=True),
    )


def _dec_keyring_state(v: list[Any]) -> KeyringState:
    f.fields(v, 4, "keyring_state")
    rank = f.uint(v[3], "keyring_state.rank", max(ACTION_RANK.values()))
    origin = f.text(v[4], "keyring_state.origin", MAX_NAME, empty=True)
    if (rank == 0) != (origin == ""):
        raise DecodeError("keyring_state: an origin comes with a rank")
    return KeyringState(
        f.uint(v[1], "keyring_state.version", 2**63), _dec_keys(v[2], "keyring_state.keys"), rank, origin
    )


register(
    KeyOp,
    lambda m: [m.version, m.origin, m.op_id, m.action, m.key_id, m.key, list(m.keys)],
    _dec_key_op,
    relayed=True,
)
register(KeyOpAck, lambda m: [m.op_id, m.node, m.ok, m.error], _dec_key_op_ack)
register(KeyringState, lambda m: [m.version, list(m.keys), m.rank, m.origin], _dec_keyring_state)
