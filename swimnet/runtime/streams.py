"""Stream exchanges over TCP: one request frame, at most one reply frame, then close.

Rules:
- every exchange, client or server side, runs under one deadline (`timeout`, the config's
  tcp_timeout) covering connect, send and receive: a peer that stalls, trickles bytes or
  holds a connection open is cut off at the deadline;
- server side, in order (see `guard`): the per-source connection cap; the length prefix (or
  authenticated header) within `guard.prefix_timeout`, holding no slot meanwhile; one of
  `limit` slots (none free: closed at once); the announced length reserved in the buffer
  budget; the body; the engine, under the source's inflation allowance; the reply, reserved
  in the budget while it is sent;
- client side: at most `limit` exchanges at once (beyond: fails at once); the reply's
  length is reserved in the buffer budget before its body is read; the reply's inflation
  is charged to the replying source: `request` arms that allowance for the rest of the
  calling task, where the engine consumes the reply;
- frames are authenticated (see `framing`) when the node's policy says so;
- nothing a peer does raises out of here: failures come back as an `Outcome` without a
  reply / a closed connection, and are counted by reason in `stats` (drop_stream_* for what
  a peer sent us, drop_auth_* when it failed authentication, as the engine counts sealed
  input; stream_failed_* for exchanges we opened).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import trio

from swimnet.runtime.framing import (
    FrameError,
    FrameHead,
    FrameReader,
    read_body,
    read_head,
    send_frame,
)
from swimnet.runtime.guard import StreamGuard as StreamGuard
from swimnet.runtime.sockstream import SockStream
from swimnet.runtime.transport import Transport, error_name
from swimnet.wire import inflate
from swimnet.wire.limits import MAX_STREAM_FRAME
from swimnet.wire.messages import Address

StreamHandler = Callable[[bytes, Address], bytes | None]
"""The engine side of a server exchange: request bytes and peer address -> reply or None."""


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
    guard = transport.guard
    if guard is not None and reply is not None:
        inflate.arm(guard.allowance(addr[0]))
    return Outcome(reply, "" if reply is not None else reason)


async def _exchange(transport: Transport, addr: Address, payload: bytes, max_size: int) -> Outcome:
    stats = transport.stats
    guard = transport.guard
    security = guard.security if guard is not None else None
    try:
        stream = await transport.connect(addr)
    except ValueError:
        return Outcome(None, "bad_address")
    except OSError as exc:
        return Outcome(None, f"connect_{error_name(exc)}")
    stats["streams_opened"] += 1
    try:
        stats["stream_bytes_sent"] += await send_frame(stream, payload, security)
        reader = FrameReader(stream)
        head = await read_head(reader, max_size, security)
        budget = guard.budget if guard is not None else None
        if budget is not None and not budget.reserve(head.length):
            return Outcome(None, "budget")
        try:
            reply = await read_body(reader, head)
        finally:
            if budget is not None:
                budget.release(head.length)
    except FrameError as exc:
        return Outcome(None, exc.reason)
    except trio.BrokenResourceError:
        return Outcome(None, "broken")
    except OSError as exc:
        return Outcome(None, error_name(exc))
    finally:
        stream.close()
    stats["stream_bytes_received"] += reader.received
    return Outcome(reply, "")


def _count_refusal(stats: Counter[str], exc: FrameError) -> None:
    """drop_auth_<reason> for authentication failures (as the engine counts sealed input),
    drop_stream_<reason> for the rest."""
    stats[f"drop_auth_{exc.auth}" if exc.auth else f"drop_stream_{exc.reason}"] += 1


async def serve_connection(
    stream: SockStream,
    handle: StreamHandler,
    stats: Counter[str],
    *,
    timeout: float,
    limiter: trio.CapacityLimiter,
    guard: StreamGuard,
    max_size: int = MAX_STREAM_FRAME,
) -> None:
    """Server side of one accepted connection; always closes it."""
    stats["streams_accepted"] += 1
    try:
        peer = stream.peer
        source = guard.admit(peer[0])
        if source is None:
            return
        try:
            await _serve(stream, peer, handle, stats, limiter, guard, timeout, max_size)
        finally:
            guard.leave(source)
    finally:
        stream.close()


async def _serve(
    stream: SockStream,
    peer: Address,
    handle: StreamHandler,
    stats: Counter[str],
    limiter: trio.CapacityLimiter,
    guard: StreamGuard,
    timeout: float,
    max_size: int,
) -> None:
    now = trio.current_time()
    deadline = now + timeout
    reader = FrameReader(stream)
    head: FrameHead | None = None
    with trio.move_on_at(min(deadline, now + guard.prefix_timeout)) as scope:
        try:
            head = await read_head(reader, max_size, guard.security)
        except FrameError as exc:
            _count_refusal(stats, exc)
        except (OSError, trio.BrokenResourceError):
            stats["drop_stream_broken"] += 1
    if scope.cancelled_caught:
        stats["drop_stream_prefix_timeout"] += 1
    if head is None:
        return
    try:
        limiter.acquire_nowait()
    except trio.WouldBlock:
        stats["drop_stream_busy"] += 1
        return
    try:
        with trio.move_on_at(deadline) as scope:
            await _exchange_in_slot(stream, reader, head, peer, handle, stats, guard)
        if scope.cancelled_caught:
            stats["drop_stream_timeout"] += 1
    finally:
        limiter.release()


async def _exchange_in_slot(
    stream: SockStream,
    reader: FrameReader,
    head: FrameHead,
    peer: Address,
    handle: StreamHandler,
    stats: Counter[str],
    guard: StreamGuard,
) -> None:
    reply = await _receive_and_handle(reader, head, peer, handle, stats, guard)
    if reply is None:
        return
    if not guard.budget.reserve(len(reply)):
        stats["drop_stream_budget_reply"] += 1
        return
    try:
        stats["stream_bytes_sent"] += await send_frame(stream, reply, guard.security)
    except (OSError, trio.BrokenResourceError):
        stats["drop_stream_broken"] += 1
    finally:
        guard.budget.release(len(reply))


async def _receive_and_handle(
    reader: FrameReader,
    head: FrameHead,
    peer: Address,
    handle: StreamHandler,
    stats: Counter[str],
    guard: StreamGuard,
) -> bytes | None:
    """The request's body (its length reserved meanwhile) handed to the engine; the reply."""
    budget = guard.budget
    if not budget.reserve(head.length):
        stats["drop_stream_budget"] += 1
        return None
    try:
        try:
            req = await read_body(reader, head)
        except FrameError as exc:
            _count_refusal(stats, exc)
            return None
        except (OSError, trio.BrokenResourceError):
            stats["drop_stream_broken"] += 1
            return None
        stats["stream_bytes_received"] += reader.received
        with inflate.charging(guard.allowance(peer[0])):
            return handle(req, peer)
    finally:
        budget.release(head.length)
