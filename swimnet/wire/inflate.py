"""Bounded inflation of compressed stream frames, and the caller's inflation allowance.

A compressed stream frame is `COMPRESSED`, the plain size (4 bytes, big-endian), then zlib
data. Inflating costs CPU and memory in proportion to the plain size, and zlib reaches
~1,032:1, so the declared size is checked before a single byte is inflated:

- absolute: at most `MAX_INFLATED` (derived in `limits` from the largest legitimate message);
- ratio: at most `MAX_INFLATE_RATIO` plain bytes per compressed byte (the encoder sends a
  frame uncompressed rather than above it, so no legitimate frame is refused);
- allowance: inside `charging(take)` (or after `arm(take)`), `take(size)` must grant the
  declared size first. The runtime passes a per-peer token bucket, so the CPU one peer can
  make us spend inflating is bounded over time, nested frames included (the tables' section
  of a push-pull's user state is itself a stream frame, inflated after the outer one:
  without one shared allowance the two ratios would multiply). Outside such a block only
  the per-frame bounds apply.

Inflation stops at the declared size (zlib's `max_length`), whatever the data holds, so the
declared size bounds the work. Errors are `DecodeError` (`InflateRefused` for an allowance
that said no). Pure: no clock, no I/O; the allowance is a callable the caller injects, kept
in a `ContextVar` so that concurrent trio tasks (and many nodes in one process) each see
their own.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from swimnet.errors import DecodeError
from swimnet.wire.limits import MAX_INFLATE_RATIO, MAX_INFLATED

Take = Callable[[int], bool]
"""`take(n)`: may we inflate `n` more bytes now? (It records the spending itself.)"""

HEADER_SIZE = 5
"""Marker byte and the 4-byte plain size."""

_allowance: ContextVar[Take | None] = ContextVar("swimnet_inflate_allowance", default=None)


class InflateRefused(DecodeError):
    """The caller's allowance refused the inflation (nothing was inflated)."""


@contextmanager
def charging(take: Take) -> Iterator[None]:
    """Every inflation inside the block first asks `take(declared size)`."""
    token = _allowance.set(take)
    try:
        yield
    finally:
        _allowance.reset(token)


def arm(take: Take) -> None:
    """Like `charging`, for the rest of the current context (a trio task: until it ends)."""
    _allowance.set(take)


def plain_size(data: bytes) -> int:
    """The plain size a compressed frame declares (no check)."""
    return int.from_bytes(data[1:HEADER_SIZE], "big")


def inflate(data: bytes) -> bytes:
    """The plain bytes of a compressed frame (without a version byte); DecodeError if refused."""
    if len(data) <= HEADER_SIZE:
        raise DecodeError("stream: truncated compressed frame")
    size = plain_size(data)
    packed = len(data) - HEADER_SIZE
    if size > MAX_INFLATED:
        raise DecodeError(f"stream: decompresses to more than {MAX_INFLATED} bytes")
    if size > MAX_INFLATE_RATIO * packed:
        raise DecodeError(f"stream: compression ratio above {MAX_INFLATE_RATIO} ({size} from {packed} bytes)")
    take = _allowance.get()
    if take is not None and not take(size):
        raise InflateRefused(f"stream: inflation allowance exhausted ({size} bytes)")
    inflater = zlib.decompressobj()
    try:
        plain = inflater.decompress(memoryview(data)[HEADER_SIZE:], size + 1)
    except zlib.error:
        raise DecodeError("stream: bad compressed data") from None
    if len(plain) != size or inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
        raise DecodeError("stream: compressed size mismatch")
    return plain
