"""Cluster-wide key management on a running node: `node.keys` (like `serf keys`).

Rules: each operation is applied locally at once (LocalProtocolError if it cannot be, e.g.
removing the primary), then gossiped inside the encrypted traffic; the call returns when
every member that was alive at the start answered, refused, or the timeout passed, with a
`KeyOpResult` saying which. Rotate with three calls, each completed before the next:
`install(new)`, `use(id of new)`, `remove(id of old)`: no packet is ever refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

from swimnet.errors import LocalProtocolError
from swimnet.security.keyops import KeyOpResult
from swimnet.security.keyring import Keyring

if TYPE_CHECKING:
    from swimnet.runtime.node import Node

_POLL = 0.02


@attrs.frozen
class KeyringListing:
    primary: str
    ids: tuple[str, ...]
    """Primary first."""
    version: int
    """Cluster-wide operation counter this keyring reflects."""


class Keys:
    def __init__(self, node: Node) -> None:
        self._node = node

    async def install(self, key: bytes, timeout: float = 10.0) -> KeyOpResult:
        return await self._run("install", key, timeout)

    async def use(self, key_id: str | bytes, timeout: float = 10.0) -> KeyOpResult:
        return await self._run("use", key_id, timeout)

    async def remove(self, key_id: str | bytes, timeout: float = 10.0) -> KeyOpResult:
        return await self._run("remove", key_id, timeout)

    def list(self) -> KeyringListing:
        """This node's keyring (ids only, never key material)."""
        ring = self._ring()
        return KeyringListing(ring.primary_id, tuple(ring.ids()), self._node.engine.keys.version)

    def _ring(self) -> Keyring:
        ring = self._node.engine.keyring
        if ring is None:
            raise LocalProtocolError("this node has no keyring (encryption is off)")
        return ring

    async def _run(self, action: str, arg: str | bytes, timeout: float) -> KeyOpResult:
        op_id = await self._node.key_op(action, arg, timeout)
        with trio.move_on_after(timeout + 1.0):
            while (result := self._node.key_op_result(op_id)) is None:
                await trio.sleep(_POLL)
            return result
        raise LocalProtocolError(f"key {action}: no result after {timeout} s")
