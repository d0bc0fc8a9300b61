"""Frames on a byte stream: plain (a 4-byte length prefix) or authenticated (MAC'd header
and chunks, see `swimnet.security.streamauth`).

    plain          length(4, big-endian) | payload
    authenticated  header(45) | chunk_0 | tag_0 | chunk_1 | tag_1 | ...

Rules:
- a stream exchange is exactly one request frame and at most one reply frame;
- reading comes in two steps: `read_head` learns the length (a plain prefix, or an
  authenticated header, checked), `read_body` reads the payload; in between the caller takes
  a stream slot and reserves memory for the announced length, so nothing is held for a
  peer that has not announced (and, where required, authenticated) a length;
- nothing is allocated up front and nothing is read ahead: before the head is known at most
  HEADER_SIZE bytes are buffered, then only this frame's bytes are read, and at most one
  unchecked chunk of an authenticated frame is held;
- what is accepted depends on the security policy in force when the frame arrives:
    no keyring                 plain frames up to `max_size`; authenticated ones are
                               refused (`no_keyring`);
    keyring, verify_incoming   authenticated frames up to `max_size`; plain ones only up to
                               UNAUTHENTICATED_MAX (the engine then refuses their content
                               unless it is sealed), so a non-key-holder never makes us
                               buffer more than that per connection;
    keyring, no verify         both (the migration to encryption), up to `max_size`;
  we send authenticated frames when the policy seals output, plain ones otherwise;
- every refusal is a `FrameError` whose `reason` is a short counter name: empty, truncated,
  oversize, unauthenticated_oversize, trailing, no_keyring, auth_failed, auth_unknown_key,
  auth_stale, auth_bad_header; authentication failures also carry `auth`, the reason as
  the engine names it for sealed input (servers count them as drop_auth_<auth>);
- deadlines are the caller's business (wrap calls in a cancel scope);
- streams are anything with trio's `receive_some` / `send_all` (`ByteReceiver`,
  `ByteSender`): trio streams, or the node's `sockstream.SockStream`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from swimnet.errors import AuthenticationError
from swimnet.security.seal import NonceSource, SecurityPolicy
from swimnet.security.streamauth import (
    CHUNK_SIZE,
    HEADER_SIZE,
    MARKER,
    TAG_SIZE,
    FrameHeader,
    check_chunk,
    chunk_tag,
    make_header,
    open_header,
)

PREFIX_SIZE = 4
UNAUTHENTICATED_MAX = 64 * 1024
"""Largest plain frame accepted while the policy requires authenticated input."""
_READ = 1 << 16
_SEND_BATCH = 1 << 20


class ByteReceiver(Protocol):
    """A byte stream to read from (trio.abc.ReceiveStream's method)."""

    async def receive_some(self, max_bytes: int) -> bytes | bytearray: ...


class ByteSender(Protocol):
    """A byte stream to write to (trio.abc.SendStream's method)."""

    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...


class FrameError(Exception):
    """A peer's framing is wrong; `reason` names it for counters (e.g. "oversize").

    `auth` is set when the frame failed authentication: the reason in the terms of sealed
    input (`swimnet.security.seal.DROP_REASONS` and `streamauth.FRAME_DROP_REASONS`), so a
    server counts it with the engine's `drop_auth_*` counters."""

    def __init__(self, reason: str, detail: str = "", auth: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.auth = auth


class FrameSecurity:
    """What framing needs to authenticate: the node's policy now, its clock, a nonce source."""

    __slots__ = ("nonce_source", "policy", "replay_window", "wall_clock")

    def __init__(
        self,
        policy: Callable[[], SecurityPolicy | None],
        *,
        replay_window: float,
        wall_clock: Callable[[], float] = time.time,
        nonce_source: NonceSource = os.urandom,
    ) -> None:
        self.policy = policy
        self.replay_window = replay_window
        self.wall_clock = wall_clock
        self.nonce_source = nonce_source


class FrameHead(NamedTuple):
    """A frame's announced length; `header` is set when the frame is authenticated."""

    length: int
    header: FrameHeader | None


class FrameReader:
    """Exact reads from a receive stream (never past what was asked for)."""

    __slots__ = ("_buf", "_stream", "received")

    def __init__(self, stream: ByteReceiver) -> None:
        self._stream = stream
        self._buf = bytearray()
        self.received = 0
        """Bytes read from the stream so far."""

    @property
    def buffered(self) -> int:
        return len(self._buf)

    async def fill(self, limit: int) -> None:
        """Read once, at most `limit` bytes, into the buffer."""
        chunk = await self._stream.receive_some(limit)
        if not chunk:
            raise FrameError("truncated" if self.received else "empty", "stream closed early")
        self.received += len(chunk)
        self._buf += chunk

    async def take(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self.fill(n - len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def take_into(self, out: bytearray, n: int) -> None:
        """Append exactly `n` bytes to `out`."""
        if self._buf:
            use = min(n, len(self._buf))
            out += self._buf[:use]
            del self._buf[:use]
            n -= use
        while n:
            chunk = await self._stream.receive_some(min(n, _READ))
            if not chunk:
                raise FrameError("truncated", f"{n} bytes missing")
            self.received += len(chunk)
            out += chunk
            n -= len(chunk)


def _refused(exc: AuthenticationError) -> FrameError:
    reason = exc.reason if exc.reason.startswith("auth_") else f"auth_{exc.reason}"
    return FrameError(reason, str(exc), auth=exc.reason)


def encode_frame(payload: bytes) -> bytes:
    """A plain frame."""
    return len(payload).to_bytes(PREFIX_SIZE, "big") + payload


async def send_frame(stream: ByteSender, payload: bytes, security: FrameSecurity | None = None) -> int:
    """Send one frame (authenticated when the policy seals output); returns the bytes written."""
    policy = security.policy() if security is not None else None
    keyring = policy.keyring if policy is not None and policy.seals_outgoing else None
    if security is None or policy is None or keyring is None:
        frame = encode_frame(payload)
        await stream.send_all(frame)
        return len(frame)
    head, header = make_header(
        keyring, policy.label, len(payload), int(security.wall_clock()), security.nonce_source
    )
    pieces: list[bytes | memoryview] = [head]
    pending = len(head)
    sent = 0
    view = memoryview(payload)
    for index, start in enumerate(range(0, len(payload), CHUNK_SIZE)):
        chunk = view[start : start + CHUNK_SIZE]
        pieces += (chunk, chunk_tag(header, index, chunk))
        pending += len(chunk) + TAG_SIZE
        if pending >= _SEND_BATCH:
            await stream.send_all(b"".join(pieces))
            sent, pieces, pending = sent + pending, [], 0
    if pieces:
        await stream.send_all(b"".join(pieces))
        sent += pending
    return sent


def _requires_authentication(policy: SecurityPolicy | None) -> bool:
    return policy is not None and policy.keyring is not None and policy.verify_incoming


async def read_head(reader: FrameReader, max_size: int, security: FrameSecurity | None = None) -> FrameHead:
    """The next frame's length, authenticated if it comes with a header; FrameError if refused."""
    await reader.fill(HEADER_SIZE)
    first = await reader.take(1)
    policy = security.policy() if security is not None else None
    if first[0] == MARKER:
        raw = first + await reader.take(HEADER_SIZE - 1)
        if security is None or policy is None or policy.keyring is None:
            raise FrameError("no_keyring", "authenticated frame, no keyring", auth="no_keyring")
        try:
            header = open_header(
                policy.keyring, policy.label, raw, int(security.wall_clock()), security.replay_window
            )
        except AuthenticationError as exc:
            raise _refused(exc) from None
        if header.length > max_size:
            raise FrameError("oversize", f"frame of {header.length} bytes, limit {max_size}")
        return FrameHead(header.length, header)
    length = int.from_bytes(first + await reader.take(PREFIX_SIZE - 1), "big")
    if length > max_size:
        raise FrameError("oversize", f"frame of {length} bytes, limit {max_size}")
    if length > UNAUTHENTICATED_MAX and _requires_authentication(policy):
        raise FrameError("unauthenticated_oversize", f"plain frame of {length} bytes")
    return FrameHead(length, None)


async def read_body(reader: FrameReader, head: FrameHead) -> bytes:
    """The payload announced by `head` (each chunk checked if authenticated); FrameError."""
    out = bytearray()
    header = head.header
    if header is None:
        await reader.take_into(out, head.length)
    else:
        for index, start in enumerate(range(0, head.length, CHUNK_SIZE)):
            await reader.take_into(out, min(CHUNK_SIZE, head.length - start))
            tag = await reader.take(TAG_SIZE)
            with memoryview(out) as view:
                try:
                    check_chunk(header, index, view[start:], tag)
                except AuthenticationError as exc:
                    raise _refused(exc) from None
    if reader.buffered:
        raise FrameError("trailing", f"{reader.buffered} bytes after the frame")
    return bytes(out)


async def receive_frame(stream: ByteReceiver, max_size: int, security: FrameSecurity | None = None) -> bytes:
    """Read exactly one frame; any byte beyond it that arrived together with it is a protocol
    violation ("trailing"): the sender writes one frame and then waits for our reply."""
    reader = FrameReader(stream)
    return await read_body(reader, await read_head(reader, max_size, security))
