"""Keyring administration: cluster-wide operations for the API, file reload on SIGHUP, and
writing the ring back to the key file.

Rules:
- operations are cluster-wide (`node.keys`: applied locally at once, then gossiped; the
  KeyOpResult says which members acknowledged, refused or missed them); arguments are a
  32-byte key (INVALID otherwise) or a key id (8 hex characters, INVALID otherwise); an
  id no installed key has is NOT_FOUND; a request the local ring refuses (removing the
  primary) changes nothing and is a CONFLICT; without a keyring every operation is a
  CONFLICT;
- SIGHUP reloads the key file LOCALLY: its keys are installed, its first key becomes
  primary, keys not in the file are removed; a file that cannot be read or parsed changes
  nothing (logged);
- the key file is the ring's persistent copy (like serf's keyring_file): when the ring
  changes by any other way (cluster-wide operations, a newer ring adopted from a peer) the
  agent rewrites the file atomically with mode 0600 (`save_if_changed`, called periodically),
  so a restarted agent starts with the keys the cluster uses.
"""

from __future__ import annotations

import logging

from swimnet.agent import checks
from swimnet.agent.errors import conflict, invalid, not_found
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import ConfigError, LocalProtocolError
from swimnet.io.keyfile import load_keyring_file, save_keyring_file
from swimnet.runtime import KeyringListing, Node
from swimnet.security.keyops import KeyOpResult
from swimnet.security.keyring import KEY_SIZE, Keyring

log = logging.getLogger(LOGGER)

KEY_OP_TIMEOUT = 10.0


class KeysAdmin:
    def __init__(self, node: Node, path: str | None) -> None:
        self.node = node
        self.path = path
        ring = node.keyring
        self._saved: tuple[bytes, ...] | None = ring.keys() if ring is not None else None
        self._save_failed = False

    def _ring(self) -> Keyring:
        ring = self.node.keyring
        if ring is None:
            raise conflict("encryption is off: this agent has no keyring (start it with --keyring)")
        return ring

    def listing(self) -> KeyringListing:
        self._ring()
        return self.node.keys.list()

    async def install(self, key: bytes) -> KeyOpResult:
        if len(key) != KEY_SIZE:
            raise invalid(f"key: a key must be {KEY_SIZE} bytes, got {len(key)}", "key")
        self._ring()
        return await self._run("install", key)

    async def use(self, key_id: str) -> KeyOpResult:
        return await self._run("use", checks.key_id(key_id))

    async def remove(self, key_id: str) -> KeyOpResult:
        return await self._run("remove", checks.key_id(key_id))

    async def _run(self, action: str, arg: bytes | str) -> KeyOpResult:
        ring = self._ring()
        if isinstance(arg, str) and ring.key_for_id(bytes.fromhex(arg)) is None:
            raise not_found(f"id: no installed key has id {arg}", "id")
        keys = self.node.keys
        try:
            if action == "install":
                assert isinstance(arg, bytes)
                result = await keys.install(arg, KEY_OP_TIMEOUT)
            elif action == "use":
                result = await keys.use(arg, KEY_OP_TIMEOUT)
            else:
                result = await keys.remove(arg, KEY_OP_TIMEOUT)
        except (LocalProtocolError, ConfigError) as exc:
            raise conflict(f"key {action}: {exc}", "id" if action != "install" else "key") from None
        event(
            log,
            f"key {action}",
            event=f"key_{action}",
            key_id=result.key_id,
            acked=len(result.acked),
            failed=len(result.failed),
            missing=len(result.missing),
        )
        self.save_if_changed()
        return result

    def reload(self) -> None:
        """SIGHUP: make the ring equal to the key file (see the module rules)."""
        ring = self.node.keyring
        if self.path is None or ring is None:
            event(
                log, "SIGHUP: no keyring file configured, nothing to reload", event="keyring_reload_skipped"
            )
            return
        try:
            wanted = load_keyring_file(self.path)
        except ConfigError as exc:
            event(
                log,
                "keyring reload failed",
                level=logging.ERROR,
                event="keyring_reload_failed",
                error=str(exc),
            )
            return
        for key in wanted:
            ring.install(key)
        ring.use(wanted.primary)
        for key in tuple(ring):
            if key not in wanted:
                ring.remove(key)
        self._saved = ring.keys()
        event(log, "keyring reloaded", event="keyring_reloaded", primary=ring.primary_id, keys=len(ring))

    def save_if_changed(self) -> None:
        ring = self.node.keyring
        if self.path is None or ring is None or ring.keys() == self._saved:
            return
        try:
            save_keyring_file(self.path, ring)
        except OSError as exc:
            if not self._save_failed:
                event(
                    log,
                    "cannot save the key file",
                    level=logging.ERROR,
                    event="keyring_save_failed",
                    error=str(exc),
                )
            self._save_failed = True
            return
        self._saved = ring.keys()
        self._save_failed = False
        event(log, "key file updated", event="keyring_saved", primary=ring.primary_id, keys=len(ring))
