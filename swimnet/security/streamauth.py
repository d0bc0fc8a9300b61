"""Authenticated stream framing: a MAC'd header before anything is buffered, a MAC per chunk.

The engine seals a whole stream frame with one XChaCha20-Poly1305 tag at its end, so a
receiver can only tell a key holder's frame from garbage once all of it arrived: whoever
can open a TCP connection could make a node buffer MAX_STREAM_FRAME bytes per connection.
Nodes that seal their output therefore send each (already sealed) stream frame inside this
framing, and receivers authenticate it as it arrives::

    header = MARKER(1) | key_id(4) | timestamp(4) | frame_id(16) | length(4) | tag(16)   45 bytes
    body   = chunk_0 | tag_0 | chunk_1 | tag_1 | ...   chunks of CHUNK_SIZE bytes (the last
             one shorter; no chunk when length is 0), `length` bytes in all

    mac_key = BLAKE2b-256(key=cluster key, person="swimnet-fmac-k1", data=label)
    tag     = BLAKE2b-128(key=mac_key, person="swimnet-fhead", data=header[:29])
    tag_i   = BLAKE2b-128(key=mac_key, person="swimnet-fchunk", data=header[:29] | i(4) | chunk_i)

Rules and invariants:
- before anything is authenticated a receiver holds the 45-byte header; a header that is
  not a key holder's (unknown key id, wrong tag, other label) is refused right there. After
  an authentic header every chunk is checked as soon as it is complete, so bytes that did
  not come from a key holder never exceed one chunk (CHUNK_SIZE + TAG_SIZE) per frame;
- the header binds the length, the key, the time and a random frame id; a chunk tag binds
  its frame (the header) and its position: chunks cannot be reordered, dropped, moved to
  another frame or added (the length fixes how many there are and their sizes);
- replay: a header older than the replay window is refused (`stale`, the window of the
  engine's sealed input). A fresh frame replayed whole is accepted here (the engine then
  sees the key holder's bytes, as with a replayed sealed datagram); a fresh header replayed
  in front of other bytes costs at most one chunk;
- a MAC, not an AEAD: the payload is already sealed by the engine (confidentiality and
  the end-to-end tag come from there), so authenticating costs one keyed BLAKE2b pass. The
  MAC key is derived from the cluster key (separate from its AEAD use) and the label (so
  clusters with other labels are refused, as for sealed packets);
- errors are `AuthenticationError` with `reason` in `FRAME_DROP_REASONS`;
- pure: the frame id comes from an injected nonce source and time is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, NamedTuple

from swimnet.errors import AuthenticationError, LocalProtocolError
from swimnet.security.keyring import KEY_ID_SIZE, Keyring
from swimnet.security.seal import NonceSource, encode_label

__all__ = [
    "CHUNK_SIZE",
    "FRAME_DROP_REASONS",
    "HEADER_SIZE",
    "MARKER",
    "TAG_SIZE",
    "FrameHeader",
    "body_size",
    "check_chunk",
    "chunk_tag",
    "make_header",
    "open_header",
]

MARKER: Final = 0xE5
"""First byte of an authenticated frame. A plain frame starts with its 4-byte length, whose
first byte is at most 0x04 (MAX_STREAM_FRAME is 64 MiB), so the two never mix."""
TAG_SIZE: Final = 16
FRAME_ID_SIZE: Final = 16
CHUNK_SIZE: Final = 64 * 1024
_BOUND: Final = 1 + KEY_ID_SIZE + 4 + FRAME_ID_SIZE + 4
"""The authenticated part of the header (29 bytes)."""
HEADER_SIZE: Final = _BOUND + TAG_SIZE
_MAX_LENGTH: Final = 2**32 - 1

FRAME_DROP_REASONS: Final[tuple[str, ...]] = (
    "bad_header",  # not an authenticated header (wrong marker or size)
    "unknown_key",  # the key id names no installed key
    "auth_failed",  # header or chunk tag wrong: forged, corrupted, other key or label
    "stale",  # header older than the replay window
)

_KEY_CACHE_MAX = 64
_mac_keys: dict[tuple[bytes, bytes], bytes] = {}


def _mac_key(key: bytes, label: bytes) -> bytes:
    derived = _mac_keys.get((key, label))
    if derived is None:
        derived = hashlib.blake2b(label, key=key, digest_size=32, person=b"swimnet-fmac-k1").digest()
        if len(_mac_keys) >= _KEY_CACHE_MAX:
            _mac_keys.clear()
        _mac_keys[(key, label)] = derived
    return derived


class FrameHeader(NamedTuple):
    """An authentic header: what the body's chunks are checked against."""

    length: int
    timestamp: int
    bound: bytes
    """header[:29], bound into every chunk tag."""
    mac_key: bytes


def body_size(length: int) -> int:
    """Bytes on the wire after the header for a payload of `length` bytes."""
    return length + TAG_SIZE * -(-length // CHUNK_SIZE)


def make_header(
    keyring: Keyring, label: str, length: int, timestamp: int, nonce_source: NonceSource
) -> tuple[bytes, FrameHeader]:
    """The header for a `length`-byte payload, under the primary key."""
    if not 0 <= length <= _MAX_LENGTH:
        raise LocalProtocolError(f"frame length {length} out of range")
    frame_id = nonce_source(FRAME_ID_SIZE)
    if len(frame_id) != FRAME_ID_SIZE:
        raise LocalProtocolError(f"nonce_source({FRAME_ID_SIZE}) returned {len(frame_id)} bytes")
    bound = (
        bytes([MARKER])
        + keyring.primary_raw_id
        + (timestamp & 0xFFFFFFFF).to_bytes(4, "big")
        + bytes(frame_id)
        + length.to_bytes(4, "big")
    )
    key = _mac_key(keyring.primary, encode_label(label))
    tag = hashlib.blake2b(bound, key=key, digest_size=TAG_SIZE, person=b"swimnet-fhead").digest()
    return bound + tag, FrameHeader(length, timestamp & 0xFFFFFFFF, bound, key)


def open_header(keyring: Keyring, label: str, header: bytes, now: int, window: float) -> FrameHeader:
    """Authenticate a received header; AuthenticationError (reason in FRAME_DROP_REASONS)."""
    if len(header) != HEADER_SIZE or header[0] != MARKER:
        raise AuthenticationError("bad_header", f"{len(header)} bytes")
    header = bytes(header)
    raw_id = header[1 : 1 + KEY_ID_SIZE]
    cluster_key = keyring.key_for_id(raw_id)
    if cluster_key is None:
        raise AuthenticationError("unknown_key", f"key id {raw_id.hex()}")
    bound = header[:_BOUND]
    key = _mac_key(cluster_key, encode_label(label))
    want = hashlib.blake2b(bound, key=key, digest_size=TAG_SIZE, person=b"swimnet-fhead").digest()
    if not hmac.compare_digest(want, header[_BOUND:]):
        raise AuthenticationError("auth_failed", "frame header")
    timestamp = int.from_bytes(header[1 + KEY_ID_SIZE : 5 + KEY_ID_SIZE], "big")
    if timestamp < now - window:
        raise AuthenticationError("stale", f"frame header from {timestamp}, now {now}")
    return FrameHeader(int.from_bytes(bound[-4:], "big"), timestamp, bound, key)


def chunk_tag(header: FrameHeader, index: int, chunk: bytes | bytearray | memoryview) -> bytes:
    mac = hashlib.blake2b(key=header.mac_key, digest_size=TAG_SIZE, person=b"swimnet-fchunk")
    mac.update(header.bound)
    mac.update(index.to_bytes(4, "big"))
    mac.update(chunk)
    return mac.digest()


def check_chunk(header: FrameHeader, index: int, chunk: bytes | bytearray | memoryview, tag: bytes) -> None:
    """AuthenticationError("auth_failed") unless `tag` is chunk `index`'s tag in this frame."""
    if not hmac.compare_digest(chunk_tag(header, index, chunk), bytes(tag)):
        raise AuthenticationError("auth_failed", f"frame chunk {index}")
