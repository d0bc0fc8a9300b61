"""Cluster-wide key management on a running node: `node.keys` (like `serf keys`).

Rules: each operation is applied locally at once (LocalProtocolError if it cannot be, e.g.
removing the primary), then gossiped inside the encrypted traffic; the call returns when
every member that was alive at the start answered, refused, or the timeout passed, with a
`KeyOpResult` saying which (the engine's `KeyOpFinished` event wakes the caller). Rotate
with three calls, each completed before the next:
`install(new)`, `use(id of new)`, `remove(id of old)`: no packet is ever refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs

from swimnet.errors import LocalProtocolError
from swimnet.security.keyops import KeyOpResult
from swimnet.security.keyring import Keyring


@attrs.frozen
class KeyringListing:
    primary: str
    ids: tuple[str, ...]
    """Primary first."""
    version: int
    """Cluster-wide operation counter this keyring reflects."""


KeyOpRunner = Callable[[str, "bytes | str", float], Awaitable[KeyOpResult]]
"""Runs one cluster-wide operation to its end: (action, key or key id, timeout) -> result."""


class Keys:
    """`node.keys`: built by the node with its operation runner and keyring readers."""

    def __init__(
        self, run: KeyOpRunner, keyring: Callable[[], Keyring | None], version: Callable[[], int]
    ) -> None:
        self._run_op = run
        self._keyring = keyring
        self._version = version

    async def install(self, key: bytes, timeout: float = 10.0) -> KeyOpResult:
        return await self._run("install", key, timeout)

    async def use(self, key_id: str | bytes, timeout: float = 10.0) -> KeyOpResult:
        return await self._run("use", key_id, timeout)

    async def remove(self, key_id: str | bytes, timeout: float = 10.0) -> KeyOpResult:
        return await self._run("remove", key_id, timeout)

    def list(self) -> KeyringListing:
        """This node's keyring (ids only, never key material)."""
        ring = self._ring()
        return KeyringListing(ring.primary_id, tuple(ring.ids()), self._version())

    def _ring(self) -> Keyring:
        ring = self._keyring()
        if ring is None:
            raise LocalProtocolError("this node has no keyring (encryption is off)")
        return ring

    async def _run(self, action: str, arg: str | bytes, timeout: float) -> KeyOpResult:
        return await self._run_op(action, arg, timeout)
