"""One UDP socket and one TCP listener on the same address and port.

Rules:
- port 0 picks a free port for UDP and binds TCP to that same port, retrying with a fresh
  port if TCP finds it taken; a fixed port that cannot be bound raises OSError;
- sending never raises: a datagram goes out with one non-blocking `sendto`; OS errors
  (ECONNREFUSED from ICMP, EHOSTUNREACH, ENOBUFS, a full buffer) and non-numeric or
  foreign-family destinations are counted in `stats` and the datagram is dropped (UDP is
  lossy anyway, and the protocol retries);
- only literal addresses are ever sent to or connected to (no DNS on peer input);
- both sockets are plain non-blocking stdlib sockets: the node's receive loop and
  `sockstream.serve` wait on them with trio's wait_readable;
- `close()` is synchronous and idempotent; tasks blocked on the sockets must be cancelled
  first (the node does that).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections import Counter
from typing import TYPE_CHECKING

import trio

from swimnet.runtime import sockstream
from swimnet.runtime.resolve import is_numeric
from swimnet.runtime.sockstream import SockStream
from swimnet.wire.messages import Address

if TYPE_CHECKING:
    from swimnet.runtime.guard import StreamGuard

UDP_RECEIVE_BUFFER = 2 * 1024 * 1024
"""Requested SO_RCVBUF (memberlist asks for 2 MB); the kernel may grant less."""
LISTEN_BACKLOG = 512
_PORT_ATTEMPTS = 64
_HOST_CACHE_MAX = 4096


def error_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "EOTHER") if exc.errno else "EOTHER"


class Transport:
    """The node's sockets; create with `open_transport`."""

    def __init__(self, family: int, udp: socket.socket, tcp: socket.socket, stats: Counter[str]):
        self.family = family
        self.udp = udp
        self.tcp = tcp
        """The listening TCP socket (non-blocking)."""
        self.stats = stats
        host, port = udp.getsockname()[:2]
        self.address: Address = (str(host), int(port))
        self._numeric: dict[str, bool] = {}
        self.closed = False
        """Set by `close()` (a plain attribute: the node reads it after every engine call)."""
        self.guard: StreamGuard | None = None
        """The node's stream limits and frame security (set by the node; None: plain frames,
        no limits beyond the caller's)."""

    # -- UDP ---------------------------------------------------------------------------

    def _usable(self, host: str) -> bool:
        ok = self._numeric.get(host)
        if ok is None:
            if len(self._numeric) >= _HOST_CACHE_MAX:
                self._numeric.clear()
            ok = self._numeric[host] = is_numeric(host, self.family)
        return ok

    def send_datagram(self, addr: Address, data: bytes) -> bool:
        """Hand one datagram to the kernel; False (and a counter) when it was dropped."""
        stats = self.stats
        if not self._usable(addr[0]) or not 0 < addr[1] < 65_536:
            stats["drop_send_bad_address"] += 1
            return False
        try:
            self.udp.sendto(data, addr)
        except BlockingIOError:
            stats["drop_send_buffer_full"] += 1
            return False
        except OSError as exc:
            stats["send_errors"] += 1
            stats[f"send_error_{error_name(exc)}"] += 1
            return False
        stats["udp_packets_sent"] += 1
        stats["udp_bytes_sent"] += len(data)
        return True

    # -- TCP ---------------------------------------------------------------------------

    async def connect(self, addr: Address) -> SockStream:
        """A TCP stream to a literal address; OSError (or ValueError for a bad address) if not."""
        if not self._usable(addr[0]) or not 0 < addr[1] < 65_536:
            raise ValueError(f"not a literal address of this node's family: {addr!r}")
        return await sockstream.connect(self.family, addr)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.udp, self.tcp):
            if sock.fileno() != -1:
                with contextlib.suppress(RuntimeError):  # outside trio: a plain close is enough
                    trio.lowlevel.notify_closing(sock)
            sock.close()


def _bind_pair(family: int, host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to (host, port); port 0 -> the same free port for both."""
    last: OSError | None = None
    for _ in range(_PORT_ATTEMPTS if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.setblocking(False)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            udp.bind((host, port))
            real_port = udp.getsockname()[1]
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, real_port))
            tcp.listen(LISTEN_BACKLOG)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as exc:
            udp.close()
            tcp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise
            last = exc
    assert last is not None
    raise last


def open_transport(family: int, host: str, port: int, stats: Counter[str]) -> Transport:
    """Bind both sockets (host must be a literal address of `family`)."""
    udp, tcp = _bind_pair(family, host, port)
    return Transport(family, udp, tcp, stats)
