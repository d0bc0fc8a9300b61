"""Sealing and opening packets (XChaCha20-Poly1305), and the migration policy around it.

Sealed format (datagrams, and each frame of a stream)::

    nonce(24) = version(1, 0xE1) || key_id(4) || random(19)
    packet    = nonce || ciphertext || tag(16)

Rules and invariants:
- Overhead is exactly ``OVERHEAD`` = 40 bytes (24 nonce + 16 tag). The version byte and
  the sender's key id are the first 5 bytes of the 24-byte XChaCha20 nonce rather than a
  separate header, so they cost nothing extra: the receiver reads the version from byte 0
  and picks the key by id in O(1) (no trial decryption as in memberlist), and both are
  authenticated because the nonce feeds the cipher. This keeps within the project's
  40-byte budget (memberlist study, target 8); a separate version byte would make it 41.
  The 19 random bytes (152 bits) come from the injected ``nonce_source(n) -> n bytes``;
  nonces must never repeat under one key (2**48 packets under one key collide with
  probability < 2**-56), so production passes ``os.urandom`` and tests pass a seeded
  ``random.Random``.
- Associated data = version byte || cluster label (UTF-8, at most 255 bytes). The label
  is never sent in a sealed packet; a receiver with another label computes another tag,
  so a label mismatch is indistinguishable from forgery and is reported as
  ``auth_failed`` (telling them apart would need the label on the wire).
- The version byte 0xE1 and the plaintext label-header byte 0xF4 (memberlist's 244) are
  reserved first bytes: swimnet's plaintext wire codec starts every packet with its
  protocol-version byte (``swimnet.wire.limits.PROTOCOL_VERSION`` = 2, kept in 0..31),
  so ``looks_sealed`` and the label header can never be confused with a plaintext
  packet. ``protect`` refuses to send, unlabelled, a plaintext that starts with a
  reserved byte.
- ``open_sealed``/``unprotect`` raise only AuthenticationError for any input bytes, with
  ``reason`` one of ``DROP_REASONS`` (short snake_case, meant for drop counters).
- Migration (memberlist's GossipVerifyIncoming/Outgoing): with a keyring,
  ``encrypt_outgoing`` chooses sealed or plaintext output and ``verify_incoming`` refuses
  plaintext input; sealed input is always opened. Without a keyring, output is plaintext
  and sealed input is refused (``no_keyring``). Plaintext packets carry the label in a
  header ``0xF4 || len(1) || label`` when the label is not empty; a plaintext packet must
  carry exactly our label (``label_mismatch``, ``missing_label``).
- ``DatagramSealer`` is the engine's per-datagram path: the nonce ``stamp || random``
  (``TIMESTAMP_SIZE`` bytes of a clock, then ``nonce_source(RANDOM_SIZE - TIMESTAMP_SIZE)``)
  and the same bytes and errors as ``protect``/``unprotect`` of a sealed packet, in one
  call each (the primary key and its id taken once per keyring generation, the associated
  data once, output through its own ``aead.Cipher``); one per engine (not thread-safe).
- Pure: no I/O, no clock, no randomness except through ``nonce_source`` (and the clock
  given to a ``DatagramSealer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs

from swimnet.errors import AuthenticationError, ConfigError, LocalProtocolError
from swimnet.security import aead
from swimnet.security.keyring import KEY_ID_SIZE, Keyring

__all__ = [
    "DROP_REASONS",
    "LABEL_HEADER",
    "MAX_LABEL_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "RANDOM_SIZE",
    "TAG_SIZE",
    "VERSION",
    "DatagramSealer",
    "NonceSource",
    "Sealer",
    "SecurityPolicy",
    "encode_label",
    "looks_sealed",
    "open_sealed",
    "protect",
    "protect_overhead",
    "seal",
    "sealed_timestamp",
    "unprotect",
]

NonceSource = Callable[[int], bytes]
"""``nonce_source(n)`` returns ``n`` fresh random bytes (e.g. ``os.urandom``)."""

VERSION: Final = 0xE1
LABEL_HEADER: Final = 0xF4
MAX_LABEL_SIZE: Final = 255
NONCE_SIZE: Final = 24
TAG_SIZE: Final = 16
RANDOM_SIZE: Final = NONCE_SIZE - 1 - KEY_ID_SIZE
OVERHEAD: Final = NONCE_SIZE + TAG_SIZE

_VERSION_BYTE: Final = bytes([VERSION])
_KEY_ID_END: Final = 1 + KEY_ID_SIZE
TIMESTAMP_SIZE: Final = 4
"""The engine starts the random part of every nonce with the sender's clock (uint32 seconds,
big-endian), leaving 15 random bytes; being part of the nonce it costs nothing and is
authenticated. Receivers refuse sealed input older than their replay window."""


_STAMPED_RANDOM_SIZE: Final = RANDOM_SIZE - TIMESTAMP_SIZE
_Decrypt = Callable[[bytes, bytes, bytes, bytes], bytes | None]
"""`aead.decrypt`'s signature."""


def sealed_timestamp(packet: bytes) -> int:
    """The sender timestamp in a sealed packet's nonce (meaningful once the packet opened)."""
    return int.from_bytes(packet[_KEY_ID_END : _KEY_ID_END + TIMESTAMP_SIZE], "big")


DROP_REASONS: Final[tuple[str, ...]] = (
    "truncated",  # shorter than nonce + tag, or a cut-off label header
    "bad_version",  # sealed-looking input with an unknown version (open_sealed only)
    "unknown_key",  # the key id in the nonce names no installed key
    "auth_failed",  # tag check failed: forged, corrupted, wrong key or other label
    "no_keyring",  # a sealed packet reached a node without a keyring
    "plaintext_refused",  # plaintext while verify_incoming is on
    "label_mismatch",  # plaintext label header with another label
    "missing_label",  # plaintext without a label header while we have a label
    "bad_label",  # plaintext label header of length 0
)


def encode_label(label: str) -> bytes:
    """The label as UTF-8; ConfigError if it is longer than 255 bytes."""
    raw = label.encode("utf-8")
    if len(raw) > MAX_LABEL_SIZE:
        raise ConfigError("label", f"at most {MAX_LABEL_SIZE} UTF-8 bytes, got {len(raw)}")
    return raw


def looks_sealed(packet: bytes) -> bool:
    """True if ``packet`` starts with the sealed version byte (0xE1)."""
    return len(packet) > 0 and packet[0] == VERSION


def _seal(keyring: Keyring, ad: bytes, plaintext: bytes, nonce_source: NonceSource) -> bytes:
    random_part = nonce_source(RANDOM_SIZE)
    if len(random_part) != RANDOM_SIZE:
        raise LocalProtocolError(f"nonce_source({RANDOM_SIZE}) returned {len(random_part)} bytes")
    nonce = _VERSION_BYTE + keyring.primary_raw_id + bytes(random_part)
    return nonce + aead.encrypt(bytes(plaintext), ad, nonce, keyring.primary)


def _open(keyring: Keyring, ad: bytes, packet: bytes, decrypt: _Decrypt = aead.decrypt) -> bytes:
    """Every check of a sealed packet, in one place (`decrypt`: `aead.decrypt` or a
    `Cipher`'s)."""
    if type(packet) is not bytes:
        packet = bytes(packet)
    if len(packet) < OVERHEAD:
        raise AuthenticationError("truncated", f"{len(packet)} bytes < {OVERHEAD}")
    if packet[0] != VERSION:
        raise AuthenticationError("bad_version", f"version byte 0x{packet[0]:02x}")
    raw_id = packet[1:_KEY_ID_END]
    key = keyring.key_for_id(raw_id)
    if key is None:
        raise AuthenticationError("unknown_key", f"key id {raw_id.hex()}")
    plaintext = decrypt(packet[NONCE_SIZE:], ad, packet[:NONCE_SIZE], key)
    if plaintext is None:
        raise AuthenticationError("auth_failed", f"key id {raw_id.hex()}")
    return plaintext


def seal(keyring: Keyring, label: str, plaintext: bytes, nonce_source: NonceSource) -> bytes:
    """Seal ``plaintext`` under the primary key; the result is ``OVERHEAD`` bytes longer."""
    return _seal(keyring, _VERSION_BYTE + encode_label(label), plaintext, nonce_source)


def open_sealed(keyring: Keyring, label: str, packet: bytes) -> bytes:
    """Open a sealed packet with any installed key; AuthenticationError on any failure."""
    return _open(keyring, _VERSION_BYTE + encode_label(label), packet)


class DatagramSealer:
    """Seal and open packets under one keyring and label, for the engine (see the rules).

    ``seal(plaintext)`` equals ``seal(keyring, label, plaintext, source)`` for the nonce
    source ``lambda n: stamp(clock()) + nonce_source(n - TIMESTAMP_SIZE)``; ``open(packet)``
    equals ``open_sealed(keyring, label, packet)`` for a packet that starts with the version
    byte. The keyring is held by reference: a rotation takes effect on the next call.
    """

    __slots__ = ("_ad", "_cipher", "_clock", "_generation", "_head", "_key", "_keyring", "_random")

    def __init__(
        self, keyring: Keyring, label: str, nonce_source: NonceSource, clock: Callable[[], float]
    ) -> None:
        self._keyring = keyring
        self._ad = _VERSION_BYTE + encode_label(label)
        self._random = nonce_source
        self._clock = clock
        self._cipher = aead.Cipher()
        self._generation = -1
        """The keyring generation ``_key`` and ``_head`` were taken from."""
        self._key = b""
        self._head = b""
        """version || primary key id: the nonce up to its stamp."""

    def seal(self, plaintext: bytes) -> bytes:
        keyring = self._keyring
        if keyring.generation != self._generation:
            self._generation = keyring.generation
            self._key = keyring.primary
            self._head = _VERSION_BYTE + keyring.primary_raw_id
        stamp = (int(self._clock()) & 0xFFFFFFFF).to_bytes(TIMESTAMP_SIZE, "big")
        random_part = self._random(_STAMPED_RANDOM_SIZE)
        if len(random_part) != _STAMPED_RANDOM_SIZE:
            raise LocalProtocolError(
                f"nonce_source({_STAMPED_RANDOM_SIZE}) returned {len(random_part)} bytes"
            )
        nonce = self._head + stamp + random_part
        return nonce + self._cipher.encrypt(plaintext, self._ad, nonce, self._key)

    def open(self, packet: bytes) -> bytes:
        return _open(self._keyring, self._ad, packet, self._cipher.decrypt)


class Sealer:
    """``seal``/``open_sealed`` bound to one keyring, label and nonce source.

    The keyring is held by reference: rotations on it take effect on the next call.
    """

    __slots__ = ("_ad", "keyring", "label", "nonce_source")

    def __init__(self, keyring: Keyring, label: str, nonce_source: NonceSource) -> None:
        self.keyring = keyring
        self.label = label
        self.nonce_source = nonce_source
        self._ad = _VERSION_BYTE + encode_label(label)

    def seal(self, plaintext: bytes) -> bytes:
        return _seal(self.keyring, self._ad, plaintext, self.nonce_source)

    def open(self, packet: bytes) -> bytes:
        return _open(self.keyring, self._ad, packet)

    def __repr__(self) -> str:
        return f"Sealer(keyring={self.keyring!r}, label={self.label!r})"


def _check_label(_instance: object, _attribute: object, value: str) -> None:
    encode_label(value)


@attrs.frozen
class SecurityPolicy:
    """What a node sends and accepts. ``keyring`` None means plaintext only.

    ``verify_incoming`` and ``encrypt_outgoing`` matter only when there is a keyring.
    Rolling upgrade plaintext -> encrypted, each step on every node before the next:
    (keyring, verify_incoming=False, encrypt_outgoing=False), then encrypt_outgoing=True,
    then verify_incoming=True.
    """

    keyring: Keyring | None
    label: str = attrs.field(default="", validator=_check_label)
    verify_incoming: bool = True
    encrypt_outgoing: bool = True
    _label_bytes: bytes = attrs.field(init=False, repr=False, eq=False)
    _ad: bytes = attrs.field(init=False, repr=False, eq=False)
    _label_header: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        raw = encode_label(self.label)
        object.__setattr__(self, "_label_bytes", raw)
        object.__setattr__(self, "_ad", _VERSION_BYTE + raw)
        header = bytes([LABEL_HEADER, len(raw)]) + raw if raw else b""
        object.__setattr__(self, "_label_header", header)

    @property
    def seals_outgoing(self) -> bool:
        return self.keyring is not None and self.encrypt_outgoing

    @property
    def accepts_plaintext(self) -> bool:
        return self.keyring is None or not self.verify_incoming


def protect_overhead(policy: SecurityPolicy) -> int:
    """How many bytes ``protect`` adds to every packet under ``policy``."""
    if policy.seals_outgoing:
        return OVERHEAD
    return len(policy._label_header)


def protect(policy: SecurityPolicy, plaintext: bytes, nonce_source: NonceSource) -> bytes:
    """Seal ``plaintext`` or label it, as ``policy`` says."""
    if policy.keyring is not None and policy.encrypt_outgoing:
        return _seal(policy.keyring, policy._ad, plaintext, nonce_source)
    if policy._label_header:
        return policy._label_header + plaintext
    if plaintext and plaintext[0] in (VERSION, LABEL_HEADER):
        raise LocalProtocolError(f"plaintext starts with the reserved byte 0x{plaintext[0]:02x}")
    return bytes(plaintext)


def unprotect(policy: SecurityPolicy, packet: bytes) -> bytes:
    """The plaintext inside ``packet``, or AuthenticationError (reason in DROP_REASONS)."""
    if looks_sealed(packet):
        if policy.keyring is None:
            raise AuthenticationError("no_keyring", "sealed packet, no keyring")
        return _open(policy.keyring, policy._ad, packet)
    if not policy.accepts_plaintext:
        raise AuthenticationError("plaintext_refused", "verify_incoming is on")
    if len(packet) > 0 and packet[0] == LABEL_HEADER:
        if len(packet) < 2:
            raise AuthenticationError("truncated", "label header without length")
        size = packet[1]
        if size == 0:
            raise AuthenticationError("bad_label", "empty label header")
        end = 2 + size
        if len(packet) < end:
            raise AuthenticationError("truncated", f"label header of {size} bytes cut off")
        if packet[2:end] != policy._label_bytes:
            raise AuthenticationError("label_mismatch", f"got {bytes(packet[2:end])!r}")
        return bytes(packet[end:])
    if policy._label_bytes:
        raise AuthenticationError("missing_label")
    return bytes(packet)
