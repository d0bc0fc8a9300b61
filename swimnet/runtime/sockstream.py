"""TCP connections for stream exchanges over plain non-blocking sockets, driven by trio.

Why: trio's SocketStream checkpoints (yields to the scheduler) on every send and receive
even when the kernel completes it at once; an exchange of one request and one reply on
loopback then costs a dozen scheduler steps. Here every operation tries the syscall first
and waits (`wait_readable` / `wait_writable`) only on EAGAIN, the way the UDP receive loop
does, so an exchange takes two or three steps.

Rules:
- `receive_some(n)` returns at most n bytes, b"" at end of stream; `send_all(data)` returns
  once the kernel took every byte; as trio's SocketStream, both raise
  trio.BrokenResourceError for a socket error (ECONNRESET, EPIPE, ...) and
  trio.ClosedResourceError once the stream is closed;
- the waits are the cancellation points: a caller's deadline interrupts an operation that
  has to wait; one that completes at once is not interrupted, but after `YIELD_EVERY` bytes
  moved without a wait the operation checkpoints, so a peer that streams as fast as
  loopback cannot hold the event loop or outrun a deadline;
- `close()` is synchronous and idempotent (trio is told first, so a task blocked on the
  socket wakes with ClosedResourceError);
- `connect` gives a connected stream or raises OSError (the socket is closed on failure or
  cancellation); `serve` accepts until cancelled, one task per connection in its own
  nursery; accept errors are counted in `stats` (accept_error_<errno>) and never raise:
  running out of descriptors or memory pauses accepting for ACCEPT_PAUSE seconds.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections import Counter
from collections.abc import Awaitable, Callable

import trio

from swimnet.wire.messages import Address

YIELD_EVERY = 1 << 20
"""Bytes moved by operations that did not wait, after which one of them checkpoints."""
ACCEPT_BATCH = 64
"""Connections accepted per wake-up of the accept loop before yielding to other tasks."""
ACCEPT_PAUSE = 0.1
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class SockStream:
    """One connected TCP socket (non-blocking); from `connect` or `serve`."""

    __slots__ = ("_fd", "_sock", "_unyielded", "peer")

    def __init__(self, sock: socket.socket, peer: Address) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # the peer already left: harmless
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._fd = sock.fileno()
        self._unyielded = 0
        self.peer = peer
        """The remote address (host, port)."""

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _check_open(self) -> None:
        if self._fd < 0:
            raise trio.ClosedResourceError("the stream is closed")

    async def receive_some(self, max_bytes: int) -> bytes:
        self._check_open()
        while True:
            try:
                data = self._sock.recv(max_bytes)
            except BlockingIOError:
                await self._wait(trio.lowlevel.wait_readable)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket error: {exc}") from exc
            await self._moved(len(data))
            return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        with memoryview(data) as view:
            sent = 0
            while sent < len(view):
                try:
                    sent += self._sock.send(view[sent:])
                except BlockingIOError:
                    await self._wait(trio.lowlevel.wait_writable)
                except OSError as exc:
                    raise trio.BrokenResourceError(f"socket error: {exc}") from exc
            await self._moved(sent)

    async def _wait(self, wait: Callable[[int], Awaitable[None]]) -> None:
        """The kernel would block: wait until it would not (a cancellation point), then
        count afresh towards YIELD_EVERY."""
        await wait(self._fd)
        self._check_open()
        self._unyielded = 0

    async def _moved(self, size: int) -> None:
        """`size` bytes moved without a wait: checkpoint once YIELD_EVERY were."""
        self._unyielded += size
        if self._unyielded >= YIELD_EVERY:
            self._unyielded = 0
            await trio.lowlevel.checkpoint()

    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()


async def connect(family: int, addr: Address) -> SockStream:
    """A stream connected to the literal address `addr` (the caller checked it)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect(addr)
        except BlockingIOError:  # EINPROGRESS: wait for the handshake
            await trio.lowlevel.wait_writable(sock)
            failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failed:
                raise OSError(failed, errno.errorcode.get(failed, "connect failed")) from None
        return SockStream(sock, (str(addr[0]), int(addr[1])))
    except BaseException:
        trio.lowlevel.notify_closing(sock)
        sock.close()
        raise


ConnectionHandler = Callable[[SockStream], Awaitable[None]]


async def serve(listener: socket.socket, handler: ConnectionHandler, stats: Counter[str]) -> None:
    """Accept connections on the non-blocking listening socket until cancelled; each one is
    handed to `handler` in a task of its own (the handler closes it)."""
    fd = listener.fileno()
    async with trio.open_nursery() as nursery:
        while True:
            await trio.lowlevel.wait_readable(fd)
            for _ in range(ACCEPT_BATCH):
                try:
                    sock, source = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    code = exc.errno or 0
                    stats[f"accept_error_{errno.errorcode.get(code, 'EOTHER')}"] += 1
                    if code in _CAPACITY_ERRNOS:
                        await trio.sleep(ACCEPT_PAUSE)
                    break
                try:
                    stream = SockStream(sock, (str(source[0]), int(source[1])))
                except OSError:  # the descriptor went bad at once
                    sock.close()
                    continue
                nursery.start_soon(handler, stream)
