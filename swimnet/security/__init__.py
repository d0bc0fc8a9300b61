"""Keyring and AEAD seal/open for swimnet packets (PyNaCl XChaCha20-Poly1305).

Rules: pure (no I/O, no clock, no ``os.urandom``; nonces come from an injected source);
key material never appears in reprs or messages, only 8-hex-char key ids; every failure to
open a peer's packet is an AuthenticationError whose ``reason`` is in ``DROP_REASONS``.
Key files on disk and key generation live in ``swimnet.io.keyfile``.
"""

from __future__ import annotations

from swimnet.security.keyfile import format_keyring, parse_keyring, parse_keys
from swimnet.security.keyring import KEY_ID_SIZE, KEY_SIZE, Keyring, key_id
from swimnet.security.seal import (
    DROP_REASONS,
    LABEL_HEADER,
    MAX_LABEL_SIZE,
    NONCE_SIZE,
    OVERHEAD,
    RANDOM_SIZE,
    TAG_SIZE,
    VERSION,
    DatagramSealer,
    NonceSource,
    Sealer,
    SecurityPolicy,
    encode_label,
    looks_sealed,
    open_sealed,
    protect,
    protect_overhead,
    seal,
    unprotect,
)

__all__ = [
    "DROP_REASONS",
    "KEY_ID_SIZE",
    "KEY_SIZE",
    "LABEL_HEADER",
    "MAX_LABEL_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "RANDOM_SIZE",
    "TAG_SIZE",
    "VERSION",
    "DatagramSealer",
    "Keyring",
    "NonceSource",
    "Sealer",
    "SecurityPolicy",
    "encode_label",
    "format_keyring",
    "key_id",
    "looks_sealed",
    "open_sealed",
    "parse_keyring",
    "parse_keys",
    "protect",
    "protect_overhead",
    "seal",
    "unprotect",
]
