"""The keyring: an ordered set of 32-byte symmetric keys with one primary.

Rules and invariants:
- A ring is never empty; ``keys()[0]`` is the primary, the one that seals outgoing packets.
  Every installed key (primary or not) opens incoming packets, so a key can be installed
  everywhere, then made primary everywhere, then removed everywhere, without dropping a
  packet (memberlist's install -> use -> remove rotation).
- Every key is exactly 32 bytes (XChaCha20-Poly1305). No key appears twice.
- A key's id is the first 4 bytes of BLAKE2b-512(key), shown as 8 lowercase hex chars.
  Ids are unique within a ring (two keys whose ids collide are refused with ConfigError),
  so ``key_for_id`` is an O(1) dict lookup and needs no trial decryption.
- ``generation`` starts at 0 and increases by one on every change (install of a new key,
  a change of primary, a removal); no-op calls leave it unchanged.
- Errors: malformed input (wrong key length, bad id text, empty ring, duplicate, id
  collision) raises ConfigError, since keys come from configuration; ``use``/``remove`` of a
  key that is not installed, and ``remove`` of the primary, raise LocalProtocolError
  (the caller asked for something the ring cannot do). Messages name ids, never keys.
- Key material never appears in ``repr``, ``str`` or error messages: only ids.
- Pure: no I/O, no clock, no randomness (generate keys on the I/O side).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from swimnet.errors import ConfigError, LocalProtocolError

KEY_SIZE = 32
KEY_ID_SIZE = 4

__all__ = ["KEY_ID_SIZE", "KEY_SIZE", "Keyring", "key_id"]


def key_id(key: bytes) -> bytes:
    """The raw 4-byte id of ``key``: the first 4 bytes of BLAKE2b-512(key)."""
    return hashlib.blake2b(key).digest()[:KEY_ID_SIZE]


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise ConfigError("keyring", f"a key must be bytes, not {type(key).__name__}")
    key = bytes(key)
    if len(key) != KEY_SIZE:
        raise ConfigError("keyring", f"a key must be {KEY_SIZE} bytes, got {len(key)}")
    return key


class Keyring:
    """An ordered set of 32-byte keys, primary first. See the module docstring."""

    __slots__ = ("_by_id", "_generation", "_keys", "_primary_raw_id")

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._keys: list[bytes] = []
        self._by_id: dict[bytes, bytes] = {}
        for key in keys:
            key = _check_key(key)
            if key in self._keys:
                raise ConfigError("keyring", f"key {key_id(key).hex()} is listed twice")
            self._add(key)
        if not self._keys:
            raise ConfigError("keyring", "at least one key is required")
        self._primary_raw_id = key_id(self._keys[0])
        self._generation = 0

    # -- queries -------------------------------------------------------------------------

    @property
    def primary(self) -> bytes:
        """The key that seals outgoing packets."""
        return self._keys[0]

    @property
    def primary_raw_id(self) -> bytes:
        """The 4-byte id of the primary key (what goes on the wire)."""
        return self._primary_raw_id

    @property
    def primary_id(self) -> str:
        """The primary key's id as 8 hex chars."""
        return self._primary_raw_id.hex()

    @property
    def generation(self) -> int:
        """Increases by one on every change of the ring."""
        return self._generation

    def keys(self) -> tuple[bytes, ...]:
        """All keys, primary first, then in install order."""
        return tuple(self._keys)

    def ids(self) -> list[str]:
        """The ids (8 hex chars) of all keys, primary first."""
        return [key_id(k).hex() for k in self._keys]

    @staticmethod
    def id_of(key: bytes) -> str:
        """The id (8 hex chars) of any 32-byte key, installed or not."""
        return key_id(_check_key(key)).hex()

    def key_for_id(self, raw_id: bytes) -> bytes | None:
        """The installed key whose 4-byte id is ``raw_id``, or None."""
        return self._by_id.get(raw_id)

    def __iter__(self) -> Iterator[bytes]:
        """The keys, primary first (a snapshot: changing the ring while iterating is fine)."""
        return iter(tuple(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key in self._keys

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary_id}, ids={self.ids()}, generation={self._generation})"

    __str__ = __repr__

    # -- changes -------------------------------------------------------------------------

    def install(self, key: bytes) -> None:
        """Add ``key`` as a non-primary key; a no-op if it is already installed."""
        key = _check_key(key)
        if key in self._keys:
            return
        self._add(key)
        self._generation += 1

    def use(self, key_or_id: bytes | str) -> None:
        """Make an installed key primary (given as the key or its 8-hex-char id)."""
        key = self._resolve(key_or_id, "use")
        if key == self._keys[0]:
            return
        self._keys.remove(key)
        self._keys.insert(0, key)
        self._primary_raw_id = key_id(key)
        self._generation += 1

    def remove(self, key_or_id: bytes | str) -> None:
        """Remove an installed, non-primary key (given as the key or its id)."""
        key = self._resolve(key_or_id, "remove")
        raw = key_id(key)
        if key == self._keys[0]:
            raise LocalProtocolError(
                f"keyring: cannot remove the primary key {raw.hex()}; use() another first"
            )
        self._keys.remove(key)
        del self._by_id[raw]
        self._generation += 1

    # -- internals -----------------------------------------------------------------------

    def _add(self, key: bytes) -> None:
        raw = key_id(key)
        if raw in self._by_id:
            raise ConfigError("keyring", f"two different keys share the id {raw.hex()}")
        self._keys.append(key)
        self._by_id[raw] = key

    def _resolve(self, key_or_id: bytes | str, action: str) -> bytes:
        if isinstance(key_or_id, str):
            text = key_or_id.strip().lower()
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = b""
            if len(raw) != KEY_ID_SIZE:
                raise ConfigError(
                    "keyring", f"{action}: a key id is {2 * KEY_ID_SIZE} hex chars, got {key_or_id!r}"
                )
            found = self._by_id.get(raw)
            if found is None:
                raise LocalProtocolError(f"keyring: {action}: no installed key has id {text}")
            return found
        key = _check_key(key_or_id)
        if key not in self._keys:
            raise LocalProtocolError(f"keyring: {action}: key {key_id(key).hex()} is not installed")
        return key
