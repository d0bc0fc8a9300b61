"""swimnet.security.aead: the unchecked libsodium calls give exactly what PyNaCl's public,
checked bindings give, and refuse what they refuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from swimnet.security import aead

keys = st.binary(min_size=32, max_size=32)
nonces = st.binary(min_size=24, max_size=24)


@given(st.binary(max_size=2000), st.binary(min_size=1, max_size=300), nonces, keys)
def test_encrypt_and_decrypt_agree_with_the_checked_bindings(
    plaintext: bytes, ad: bytes, nonce: bytes, key: bytes
) -> None:
    sealed = aead.encrypt(plaintext, ad, nonce, key)
    assert sealed == crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)
    assert len(sealed) == len(plaintext) + aead.TAG_SIZE
    assert aead.decrypt(sealed, ad, nonce, key) == plaintext


@given(st.binary(min_size=1, max_size=200), nonces, keys, st.data())
def test_any_change_is_refused_as_the_bindings_refuse_it(
    plaintext: bytes, nonce: bytes, key: bytes, data: st.DataObject
) -> None:
    ad = b"\xe1label"
    sealed = bytearray(aead.encrypt(plaintext, ad, nonce, key))
    where = data.draw(st.integers(0, len(sealed) - 1))
    sealed[where] ^= data.draw(st.integers(1, 255))
    assert aead.decrypt(bytes(sealed), ad, nonce, key) is None
    with pytest.raises(CryptoError):
        crypto_aead_xchacha20poly1305_ietf_decrypt(bytes(sealed), ad, nonce, key)


def test_other_key_other_ad_and_short_input_are_refused() -> None:
    key, nonce, ad = b"k" * 32, b"n" * 24, b"\xe1a"
    sealed = aead.encrypt(b"hello", ad, nonce, key)
    assert aead.decrypt(sealed, ad, nonce, b"K" * 32) is None
    assert aead.decrypt(sealed, b"\xe1b", nonce, key) is None
    assert aead.decrypt(sealed, ad, b"N" * 24, key) is None
    for size in range(aead.TAG_SIZE):
        assert aead.decrypt(sealed[:size], ad, nonce, key) is None
    assert aead.decrypt(aead.encrypt(b"", ad, nonce, key), ad, nonce, key) == b""


_cipher = aead.Cipher()  # one for every example: its buffer outlives each call


@given(st.binary(max_size=2000), st.binary(min_size=1, max_size=300), nonces, keys)
def test_a_cipher_gives_what_the_functions_give(
    plaintext: bytes, ad: bytes, nonce: bytes, key: bytes
) -> None:
    sealed = _cipher.encrypt(plaintext, ad, nonce, key)
    assert sealed == aead.encrypt(plaintext, ad, nonce, key)
    other = _cipher.encrypt(b"x" * 3000, ad, nonce, key)  # overwrites the buffer: results are copies
    assert _cipher.decrypt(sealed, ad, nonce, key) == plaintext
    assert _cipher.decrypt(other, ad, nonce, key) == b"x" * 3000
    assert sealed == aead.encrypt(plaintext, ad, nonce, key)


def test_a_cipher_refuses_what_the_functions_refuse_and_handles_any_size() -> None:
    cipher = aead.Cipher()
    key, nonce, ad = b"k" * 32, b"n" * 24, b"\xe1a"
    for size in range(aead.TAG_SIZE):
        assert cipher.decrypt(b"\0" * size, ad, nonce, key) is None
    sealed = cipher.encrypt(b"hello", ad, nonce, key)
    assert cipher.decrypt(sealed, ad, nonce, b"K" * 32) is None
    assert cipher.decrypt(sealed, b"\xe1b", nonce, key) is None
    assert cipher.decrypt(sealed[:-1] + bytes([sealed[-1] ^ 1]), ad, nonce, key) is None
    assert cipher.decrypt(sealed, ad, nonce, key) == b"hello"  # a failure left nothing behind
    for size in (0, aead.SCRATCH_SIZE - aead.TAG_SIZE, aead.SCRATCH_SIZE, 3 * aead.SCRATCH_SIZE):
        big = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        sealed = cipher.encrypt(big, ad, nonce, key)  # beyond its buffer: allocated as aead.encrypt does
        assert sealed == aead.encrypt(big, ad, nonce, key)
        assert cipher.decrypt(sealed, ad, nonce, key) == big
