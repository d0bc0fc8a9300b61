"""Stream exchanges over TCP: one request frame, at most one reply frame, then close.

Rules:
- every exchange, client or server side, runs under one deadline (`timeout`, the config's
  tcp_timeout) covering connect, send and receive: a peer that stalls, trickles bytes or
  holds a connection open is cut off at the deadline;
- at most `limit` exchanges run at once per side; a connection beyond that is closed at once
  (server) or fails at once (client), and counted;
- nothing a peer does raises out of here: failures come back as an `Outcome` without a
  reply / a closed connection, and are counted by reason in `stats` (drop_stream_* for what
  a peer sent us, stream_failed_* for exchanges we opened).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import trio

from swimnet.runtime.framing import PREFIX_SIZE, FrameError, receive_frame, send_frame
from swimnet.runtime.transport import Transport, error_name
from swimnet.wire.limits import MAX_STREAM_FRAME
from swimnet.wire.messages import Address

StreamHandler = Callable[[bytes, Address], bytes | None]
"""The engine side of a server exchange: request bytes and peer address -> reply or None."""


def _peer(stream: trio.SocketStream) -> Address:
    try:
        name = stream.socket.getpeername()
    except OSError:
        return ("", 0)
    return (str(name[0]), int(name[1]))


class Outcome(NamedTuple):
    """The result of one client exchange: the reply, or None and why (a counter suffix)."""

    reply: bytes | None
    failure: str


async def request(
    transport: Transport,
    addr: Address,
    payload: bytes,
    *,
    timeout: float,
    limiter: trio.CapacityLimiter,
    max_size: int = MAX_STREAM_FRAME,
) -> Outcome:
    """Client side: send `payload` to `addr` and read the reply; failures are counted."""
    stats = transport.stats
    try:
        limiter.acquire_nowait()
    except trio.WouldBlock:
        stats["stream_failed"] += 1
        stats["stream_failed_busy"] += 1
        return Outcome(None, "busy")
    reason = "timeout"
    reply: bytes | None = None
    try:
        with trio.move_on_after(timeout):
            reply, reason = await _exchange(transport, addr, payload, max_size)
    finally:
        limiter.release()
        if reply is None:
            stats["stream_failed"] += 1
            stats[f"stream_failed_{reason}"] += 1
    return Outcome(reply, "" if reply is not None else reason)


async def _exchange(transport: Transport, addr: Address, payload: bytes, max_size: int) -> Outcome:
    stats = transport.stats
    try:
        stream = await transport.connect(addr)
    except ValueError:
        return Outcome(None, "bad_address")
    except OSError as exc:
        return Outcome(None, f"connect_{error_name(exc)}")
    stats["streams_opened"] += 1
    async with stream:
        try:
            stats["stream_bytes_sent"] += await send_frame(stream, payload)
            reply = await receive_frame(stream, max_size)
        except FrameError as exc:
            return Outcome(None, exc.reason)
        except trio.BrokenResourceError:
            return Outcome(None, "broken")
        except OSError as exc:
            return Outcome(None, error_name(exc))
    stats["stream_bytes_received"] += len(reply) + PREFIX_SIZE
    return Outcome(reply, "")


async def serve_connection(
    stream: trio.SocketStream,
    handle: StreamHandler,
    stats: Counter[str],
    *,
    timeout: float,
    limiter: trio.CapacityLimiter,
    max_size: int = MAX_STREAM_FRAME,
) -> None:
    """Server side of one accepted connection; always closes it."""
    stats["streams_accepted"] += 1
    try:
        try:
            limiter.acquire_nowait()
        except trio.WouldBlock:
            stats["drop_stream_busy"] += 1
            return
        try:
            with trio.move_on_after(timeout) as scope:
                try:
                    req = await receive_frame(stream, max_size)
                except FrameError as exc:
                    stats[f"drop_stream_{exc.reason}"] += 1
                    return
                except (OSError, trio.BrokenResourceError):
                    stats["drop_stream_broken"] += 1
                    return
                stats["stream_bytes_received"] += len(req) + PREFIX_SIZE
                reply = handle(req, _peer(stream))
                if reply is None:
                    return
                try:
                    stats["stream_bytes_sent"] += await send_frame(stream, reply)
                except (OSError, trio.BrokenResourceError):
                    stats["drop_stream_broken"] += 1
            if scope.cancelled_caught:
                stats["drop_stream_timeout"] += 1
        finally:
            limiter.release()
    finally:
        await trio.aclose_forcefully(stream)
