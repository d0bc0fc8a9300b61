"""The key file format: text in, Keyring out, and back. Pure (the file I/O and the
permission checks live in ``swimnet.io.keyfile``).

Format rules:
- One key per line, standard base64 (RFC 4648, with padding) of exactly 32 bytes.
- The first key is the primary; the others follow in ring order.
- Blank lines and lines whose first non-blank character is ``#`` are ignored; comments
  only take whole lines. Leading and trailing whitespace around a key is ignored.
- Every error is a ConfigError whose message names the 1-based line number (and, when a
  file is being parsed, the caller prefixes the path). Messages never quote key text.
- ``parse_keyring(format_keyring(ring)).keys() == ring.keys()`` for every ring.
"""

from __future__ import annotations

import base64
import binascii

from swimnet.errors import ConfigError
from swimnet.security.keyring import KEY_SIZE, Keyring, key_id

__all__ = ["format_keyring", "parse_keyring", "parse_keys"]

_HEADER = "# swimnet keyring: one base64 32-byte key per line, primary first.\n# Keep this file mode 0600.\n"


def parse_keys(text: str) -> list[bytes]:
    """The keys in ``text``, in file order; ConfigError naming the line on any error."""
    keys: list[bytes] = []
    seen: dict[bytes, int] = {}  # key id -> line
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"key file line {number}", "not valid base64") from None
        if len(key) != KEY_SIZE:
            raise ConfigError(f"key file line {number}", f"a key must be {KEY_SIZE} bytes, got {len(key)}")
        raw_id = key_id(key)
        if raw_id in seen:
            what = "repeats" if key in keys else "has the same id as"
            raise ConfigError(f"key file line {number}", f"key {raw_id.hex()} {what} line {seen[raw_id]}")
        seen[raw_id] = number
        keys.append(key)
    if not keys:
        raise ConfigError("key file", "no keys (at least one line with a base64 key)")
    return keys


def parse_keyring(text: str) -> Keyring:
    """A Keyring from key file text; ConfigError on any error."""
    return Keyring(parse_keys(text))


def format_keyring(keyring: Keyring) -> str:
    """Key file text for ``keyring``: a comment header, then one key per line."""
    lines = [base64.b64encode(key).decode("ascii") for key in keyring]
    return _HEADER + "\n".join(lines) + "\n"
