"""Length-prefixed frames on a byte stream: a 4-byte big-endian length, then the payload.

Rules:
- a stream exchange is exactly one request frame and at most one reply frame;
- `receive_frame` refuses a length above `max_size` as soon as the prefix arrives (nothing
  is allocated up front: memory grows only with bytes the peer really sent), a stream that
  ends early, and bytes after the frame; each refusal is a `FrameError` whose `reason` is a
  short counter name;
- deadlines are the caller's business (wrap calls in a cancel scope).
"""

from __future__ import annotations

import trio

PREFIX_SIZE = 4
_CHUNK = 1 << 16


class FrameError(Exception):
    """A peer's framing is wrong; `reason` names it for counters (e.g. "oversize")."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode_frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(PREFIX_SIZE, "big") + payload


async def send_frame(stream: trio.abc.SendStream, payload: bytes) -> int:
    """Send one frame; returns the bytes written (prefix included)."""
    frame = encode_frame(payload)
    await stream.send_all(frame)
    return len(frame)


async def receive_frame(stream: trio.abc.ReceiveStream, max_size: int) -> bytes:
    """Read exactly one frame and the end of the stream's data for it.

    The sender writes one frame and then waits for our reply (or closes), so any byte beyond
    the frame that arrives together with it is a protocol violation ("trailing").
    """
    buf = bytearray()
    while len(buf) < PREFIX_SIZE:
        chunk = await stream.receive_some(_CHUNK)
        if not chunk:
            raise FrameError("truncated" if buf else "empty", "stream closed before a length prefix")
        buf += chunk
    length = int.from_bytes(buf[:PREFIX_SIZE], "big")
    if length > max_size:
        raise FrameError("oversize", f"frame of {length} bytes, limit {max_size}")
    need = PREFIX_SIZE + length
    while len(buf) < need:
        chunk = await stream.receive_some(min(need - len(buf), _CHUNK))
        if not chunk:
            raise FrameError("truncated", f"{len(buf) - PREFIX_SIZE} of {length} bytes")
        buf += chunk
    if len(buf) > need:
        raise FrameError("trailing", f"{len(buf) - need} bytes after the frame")
    del buf[:PREFIX_SIZE]
    return bytes(buf)
