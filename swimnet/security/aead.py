"""XChaCha20-Poly1305 (IETF) from libsodium, called per packet without per-call checks.

PyNaCl's `nacl.bindings` functions check every argument on every call and format their
error messages before knowing whether they fail; on a 60-byte probe that costs more than
the cipher. Here the same libsodium functions are called through PyNaCl's own cffi handle.

Rules:
- callers pass `bytes` of the right sizes: a 32-byte key (the keyring checks keys when they
  are installed), a 24-byte nonce and the associated data (seal.py builds both); nothing is
  checked here;
- `encrypt` returns ciphertext || tag (16 bytes longer); `decrypt` returns the plaintext,
  or None when the input is shorter than a tag or fails authentication (any tampering,
  another key, other associated data);
- output buffers are allocated without zeroing: libsodium writes every byte of them before
  they are copied out, and a failed decryption returns None without reading them;
- `Cipher` does the same through one output buffer of its own (SCRATCH_SIZE bytes, made
  once), for the engine's per-datagram path: no allocation per call for an output that fits
  (a larger one is allocated as above); it is not thread-safe (libsodium runs without the
  GIL and the buffer is shared by its calls), so each owner (an engine) has its own;
- without PyNaCl's cffi handle (another PyNaCl build) the public bindings are used: the
  same results, at their cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TAG_SIZE = 16
SCRATCH_SIZE = 1 << 16
"""A Cipher's output buffer: more than any datagram (MAX_DATAGRAM plus a tag)."""

encrypt: Callable[[bytes, bytes, bytes, bytes], bytes]
decrypt: Callable[[bytes, bytes, bytes, bytes], bytes | None]

try:
    from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found,unused-ignore]
    from nacl._sodium import lib as _lib  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - every PyNaCl release so far ships _sodium
    _ffi = _lib = None


_new: Any = _ffi.new_allocator(should_clear_after_alloc=False) if _ffi is not None else None


def _fast_encrypt(plaintext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    size = len(plaintext) + TAG_SIZE
    out: Any = _new("unsigned char[]", size)
    _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out, _ffi.NULL, plaintext, len(plaintext), ad, len(ad), _ffi.NULL, nonce, key
    )
    data: bytes = _ffi.buffer(out, size)[:]
    return data


def _fast_decrypt(ciphertext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes | None:
    size = len(ciphertext) - TAG_SIZE
    if size < 0:
        return None
    out: Any = _new("unsigned char[]", max(size, 1))
    failed = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, _ffi.NULL, _ffi.NULL, ciphertext, len(ciphertext), ad, len(ad), nonce, key
    )
    if failed:
        return None
    data: bytes = _ffi.buffer(out, size)[:]
    return data


def _slow_encrypt(plaintext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
    from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

    data: bytes = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)
    return data


def _slow_decrypt(ciphertext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes | None:
    from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
    from nacl.exceptions import CryptoError

    if len(ciphertext) < TAG_SIZE:
        return None
    try:
        data: bytes = crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, ad, nonce, key)
    except CryptoError:
        return None
    return data


_FAST = _lib is not None and hasattr(_lib, "crypto_aead_xchacha20poly1305_ietf_encrypt")

if _FAST:
    encrypt, decrypt = _fast_encrypt, _fast_decrypt
else:  # pragma: no cover
    encrypt, decrypt = _slow_encrypt, _slow_decrypt


class Cipher:
    """`encrypt`/`decrypt` through an output buffer of its own (see the module rules)."""

    __slots__ = ("_out", "_view")

    def __init__(self) -> None:
        self._out: Any = _new("unsigned char[]", SCRATCH_SIZE) if _FAST else None
        self._view: Any = _ffi.buffer(self._out) if _FAST else None

    def encrypt(self, plaintext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes:
        """ciphertext || tag, as `encrypt`."""
        size = len(plaintext) + TAG_SIZE
        if self._out is None or size > SCRATCH_SIZE:
            return encrypt(plaintext, ad, nonce, key)
        _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
            self._out, _ffi.NULL, plaintext, len(plaintext), ad, len(ad), _ffi.NULL, nonce, key
        )
        data: bytes = self._view[:size]
        return data

    def decrypt(self, ciphertext: bytes, ad: bytes, nonce: bytes, key: bytes) -> bytes | None:
        """The plaintext, or None (too short, or authentication failed), as `decrypt`."""
        size = len(ciphertext) - TAG_SIZE
        if self._out is None or size > SCRATCH_SIZE:
            return decrypt(ciphertext, ad, nonce, key)
        if size < 0:
            return None
        if _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
            self._out, _ffi.NULL, _ffi.NULL, ciphertext, len(ciphertext), ad, len(ad), nonce, key
        ):
            return None
        data: bytes = self._view[:size]
        return data
