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
- without PyNaCl's cffi handle (another PyNaCl build) the public bindings are used: the
  same results, at their cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TAG_SIZE = 16

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


if _lib is not None and hasattr(_lib, "crypto_aead_xchacha20poly1305_ietf_encrypt"):
    encrypt, decrypt = _fast_encrypt, _fast_decrypt
else:  # pragma: no cover
    encrypt, decrypt = _slow_encrypt, _slow_decrypt
