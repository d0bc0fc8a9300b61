"""`ResolverService`: the embedded DNS server of one container namespace (trio).

    service = ResolverService("ctr1", view=index.view, networks=lambda: ("front",))
    await nursery.start(service.serve)      # listening on 127.0.0.11:53 inside ctr1
    ...
    await service.aclose()                  # sockets closed, resolv.conf and address undone

Rules:
- the UDP socket and the TCP listener are created INSIDE the namespace (by a helper thread
  that enters only its network namespace: `swimnet.datapath.netns.socket_in`); everything
  else (forwarding included) runs in the agent's own namespace;
- at start, `lo` gets 127.0.0.11/32 if it lacks it and, for a named namespace,
  `<netns_etc>/NAME/resolv.conf` says `nameserver 127.0.0.11` + `options ndots:0`; stopping
  undoes both (and closes the sockets), also when start fails half-way;
- a start or a stop never holds its caller longer than the caller's own bound: the start's
  worker thread is abandoned when its caller is cancelled (a kernel call that hangs), and
  then closes what it opened itself when it ends; the stop waits for its thread at most
  `CLOSE_LIMIT` seconds (it goes on unwaited after that; logged). Opening and closing run
  one at a time, in order (a lock), so a late-finishing start is always undone;
- every query reads `view()` and `networks()` afresh (no cache beyond the tables): a name
  the tables gain or lose answers accordingly at the next query;
- bounded: a UDP datagram or TCP frame over `MAX_QUERY_SIZE` is dropped, at most
  `max_tcp_connections` TCP connections (more are closed at once), a TCP query must arrive
  within `tcp_idle_timeout`, at most `max_forwards` relayed queries in flight (more: UDP
  dropped, TCP SERVFAIL);
- nothing a client or an upstream sends can stop the server: every outcome is counted in
  `metrics`; an unexpected exception while handling one query is counted as
  `dropped["internal_error"]` and the server goes on;
- received datagrams are drained in batches (at most `UDP_BATCH` per wake-up); the replies
  of a batch then go out, each with one non-blocking sendto (a full socket buffer drops the
  reply, counted; the client retries); relayed queries answer on their own when done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import trio

from swimnet.datapath.netns import path_of, socket_in
from swimnet.dns.exchange import Ignore, Relay, Respond, handle, reply_rcode, servfail
from swimnet.dns.forward import forward
from swimnet.dns.limits import HEADER_SIZE, MAX_QUERY_SIZE, ResolverConfig
from swimnet.dns.metrics import DnsMetrics, rcode_label
from swimnet.dns.names import NamesView
from swimnet.dns.sandbox import NetnsResolvConf, ensure_dns_address, remove_dns_address
from swimnet.dns.upstream import Upstreams
from swimnet.errors import SwimnetError
from swimnet.logfields import event

log = logging.getLogger("swimnet.dns")

UDP_BATCH = 64
CLOSE_LIMIT = 5.0
"""Seconds `serve` waits for its cleanup thread before leaving it to finish on its own."""
"""Datagrams handled per wake-up before other tasks get a turn."""
LISTEN_BACKLOG = 64


class ResolverError(SwimnetError):
    """The resolver could not start in a namespace (missing namespace, address in use...)."""


class _BadFrame(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolverService:
    def __init__(
        self,
        netns: str,
        view: Callable[[], NamesView],
        networks: Callable[[], Sequence[str]],
        *,
        config: ResolverConfig | None = None,
        upstreams: Upstreams | None = None,
        metrics: DnsMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.netns = netns
        self.path = path_of(netns)
        self.view = view
        self.networks = networks
        self.config = config or ResolverConfig()
        self.upstreams = upstreams or Upstreams()
        self.metrics = metrics or DnsMetrics()
        self.rng = rng or random.Random()
        self.policy = self.config.policy
        self._scope: trio.CancelScope | None = None
        self._stop_requested = False
        self._stopped = trio.Event()
        self._forwards = 0
        self._tcp_active = 0
        self._resolv_conf: NetnsResolvConf | None = None
        self._added_address = False
        self._sockets: list[socket.socket] = []
        self._io = threading.Lock()
        """Held by the worker thread that opens or closes (one at a time, in order)."""
        self._handover = threading.Lock()
        """Guards `_open_done` and `_open_abandoned` (never held across I/O)."""
        self._open_done = False
        self._open_abandoned = False

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def named(self) -> bool:
        return not self.netns.startswith("/")

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Open the sockets in the namespace, call `task_status.started(self)`, serve until
        stopped or cancelled, then clean up. Raises ResolverError if it cannot start."""
        handed_over = False
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._stop_requested:
                    return
                try:
                    await trio.to_thread.run_sync(self._open_thread, abandon_on_cancel=True)
                except trio.Cancelled:
                    handed_over = self._abandon_open()
                    raise
                udp, tcp = self._sockets
                listener = trio.SocketListener(trio.socket.from_stdlib_socket(tcp))
                event(log, "dns resolver started", event="dns_started", netns=self.netns)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._udp_loop, udp, nursery)
                    nursery.start_soon(self._tcp_loop, listener, nursery)
                    task_status.started(self)
        finally:
            if handed_over:
                event(log, "dns resolver start abandoned", event="dns_start_abandoned", netns=self.netns)
            else:
                await self._close_bounded()
            self._stopped.set()
            event(log, "dns resolver stopped", event="dns_stopped", netns=self.netns)

    async def _close_bounded(self) -> None:
        """Close in a worker thread, waiting at most `CLOSE_LIMIT` s (shielded): a close that
        takes longer goes on in its thread, unwaited (logged)."""
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_LIMIT) as bound:
            await trio.to_thread.run_sync(self._close_thread, abandon_on_cancel=True)
        if bound.cancelled_caught:
            event(
                log,
                "dns resolver cleanup goes on in the background",
                level=logging.WARNING,
                event="dns_close_slow",
                netns=self.netns,
                limit=CLOSE_LIMIT,
            )

    def _abandon_open(self) -> bool:
        """The start was cancelled while its thread runs: True if that thread will close
        what it opened when it ends (False: it already ended; the caller closes)."""
        with self._handover:
            self._open_abandoned = True
            return not self._open_done

    def _open_thread(self) -> None:
        try:
            with self._io:
                self._open()
        finally:
            with self._handover:
                self._open_done = True
                abandoned = self._open_abandoned
            if abandoned:  # nobody waits for this start any more: undo it here
                self._close_thread()

    def _close_thread(self) -> None:
        with self._io:
            self._close()

    def stop(self) -> None:
        """Ask the service to stop (returns at once; `aclose` also waits)."""
        self._stop_requested = True
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self) -> None:
        """Stop and wait until the sockets are closed and the namespace is cleaned up."""
        self.stop()
        if self._scope is not None:
            await self._stopped.wait()

    def _open(self) -> None:
        """Blocking part of the start (a worker thread): address, sockets, resolv.conf."""
        cfg = self.config
        try:
            if not os.path.exists(self.path):
                raise ResolverError(f"no network namespace {self.netns}")
            if cfg.add_address:
                self._added_address = ensure_dns_address(self.path, cfg.address)
            udp = socket_in(self.path, socket.AF_INET, socket.SOCK_DGRAM)
            self._sockets.append(udp)
            tcp = socket_in(self.path, socket.AF_INET, socket.SOCK_STREAM)
            self._sockets.append(tcp)
            udp.setblocking(False)
            udp.bind((cfg.address, cfg.port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((cfg.address, cfg.port))
            tcp.listen(LISTEN_BACKLOG)
            if self.named and cfg.netns_etc is not None:
                self._resolv_conf = NetnsResolvConf(self.netns, cfg.netns_etc)
                self._resolv_conf.write()
        except ResolverError:
            self._close()
            raise
        except Exception as exc:
            self._close()
            raise ResolverError(f"cannot serve DNS in {self.netns}: {exc}") from exc

    def _close(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self._resolv_conf is not None:
            self._resolv_conf.restore()
            self._resolv_conf = None
        if self._added_address:
            self._added_address = False
            remove_dns_address(self.path, self.config.address)

    # -- UDP ----------------------------------------------------------------------------

    async def _udp_loop(self, sock: socket.socket, nursery: trio.Nursery) -> None:
        replies: list[tuple[bytes, Any]] = []
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(UDP_BATCH):
                try:
                    data, addr = sock.recvfrom(MAX_QUERY_SIZE + 1)
                except BlockingIOError:
                    break
                except OSError:
                    self.metrics.dropped["recv_error"] += 1
                    continue
                self._datagram(data, addr, replies, nursery, sock)
            else:
                self._send_all(sock, replies)
                await trio.lowlevel.checkpoint()
                continue
            self._send_all(sock, replies)

    def _send_all(self, sock: socket.socket, replies: list[tuple[bytes, Any]]) -> None:
        # the replies of a batch leave together, after it: each sendto on loopback may hand
        # the CPU to the woken client, so sending between receives would slow the batch
        for data, addr in replies:
            self._sendto(sock, data, addr)
        replies.clear()

    def _datagram(
        self,
        data: bytes,
        addr: Any,
        replies: list[tuple[bytes, Any]],
        nursery: trio.Nursery,
        sock: socket.socket,
    ) -> None:
        try:
            outcome = handle(data, self.view(), self.networks(), self.rng, policy=self.policy)
        except Exception:
            self.metrics.dropped["internal_error"] += 1
            log.exception("dns: query handling failed")
            return
        if isinstance(outcome, Respond):
            self._count(outcome, "udp")
            replies.append((outcome.data, addr))
        elif isinstance(outcome, Relay):
            if self._forwards >= self.config.max_forwards:
                self.metrics.dropped["forward_busy"] += 1
            else:
                self._forwards += 1
                nursery.start_soon(self._relay_udp, outcome, addr, sock)
        else:
            self.metrics.dropped[outcome.reason] += 1

    async def _relay_udp(self, relay: Relay, addr: Any, sock: socket.socket) -> None:
        try:
            reply = await self._relay(relay)
        finally:
            self._forwards -= 1
        self._sendto(sock, reply, addr)

    def _sendto(self, sock: socket.socket, data: bytes, addr: Any) -> None:
        try:
            sock.sendto(data, addr)
        except OSError:
            self.metrics.dropped["send_error"] += 1

    async def _relay(self, relay: Relay) -> bytes:
        try:
            reply = await forward(
                relay, self.upstreams.current(), self.metrics, timeout=self.config.forward_timeout
            )
        except Exception:
            self.metrics.dropped["internal_error"] += 1
            log.exception("dns: forwarding failed")
            reply = servfail(relay)
        self.metrics.queries[(relay.qtype, rcode_label(reply_rcode(reply)))] += 1
        if len(reply) > 2 and reply[2] & 0x02:
            self.metrics.truncated["udp" if relay.limit < 65535 else "tcp"] += 1
        return reply

    def _count(self, outcome: Respond, transport: str) -> None:
        self.metrics.queries[(outcome.qtype, outcome.rcode)] += 1
        if outcome.malformed is not None:
            self.metrics.malformed[outcome.malformed] += 1
        if outcome.truncated:
            self.metrics.truncated[transport] += 1

    # -- TCP ----------------------------------------------------------------------------

    async def _tcp_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                self.metrics.dropped["accept_error"] += 1
                await trio.sleep(0.05)
                continue
            if self._tcp_active >= self.config.max_tcp_connections:
                self.metrics.dropped["tcp_limit"] += 1
                await trio.aclose_forcefully(stream)
                continue
            self._tcp_active += 1
            nursery.start_soon(self._tcp_connection, stream)

    async def _tcp_connection(self, stream: trio.SocketStream) -> None:
        buf = bytearray()
        idle = self.config.tcp_idle_timeout
        try:
            while True:
                frame: bytes | None = None
                with trio.move_on_after(idle):
                    frame = await _read_frame(stream, buf)
                if frame is None:
                    break
                reply = await self._tcp_reply(frame)
                if reply is None:
                    continue
                with trio.move_on_after(idle) as sending:
                    await stream.send_all(struct.pack("!H", len(reply)) + reply)
                if sending.cancelled_caught:
                    self.metrics.dropped["tcp_timeout"] += 1
                    break
        except _BadFrame as bad:
            self.metrics.dropped[bad.reason] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.metrics.dropped["tcp_error"] += 1
        except Exception:
            self.metrics.dropped["internal_error"] += 1
            log.exception("dns: TCP connection failed")
        finally:
            self._tcp_active -= 1
            await trio.aclose_forcefully(stream)

    async def _tcp_reply(self, frame: bytes) -> bytes | None:
        try:
            outcome = handle(frame, self.view(), self.networks(), self.rng, tcp=True, policy=self.policy)
        except Exception:
            self.metrics.dropped["internal_error"] += 1
            log.exception("dns: query handling failed")
            return None
        if isinstance(outcome, Ignore):
            self.metrics.dropped[outcome.reason] += 1
            return None
        if isinstance(outcome, Respond):
            self._count(outcome, "tcp")
            return outcome.data
        if self._forwards >= self.config.max_forwards:
            self.metrics.dropped["forward_busy"] += 1
            return servfail(outcome)
        self._forwards += 1
        try:
            return await self._relay(outcome)
        finally:
            self._forwards -= 1


async def _read_frame(stream: trio.SocketStream, buf: bytearray) -> bytes | None:
    """One length-prefixed message (None: the client closed); `buf` keeps what follows."""
    while len(buf) < 2:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        buf += chunk
    size = (buf[0] << 8) | buf[1]
    if size > MAX_QUERY_SIZE:
        raise _BadFrame("tcp_oversized")
    if size < HEADER_SIZE:
        raise _BadFrame("tcp_short")
    while len(buf) < 2 + size:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        buf += chunk
    frame = bytes(buf[2 : 2 + size])
    del buf[: 2 + size]
    return frame


@contextlib.asynccontextmanager
async def open_resolver(
    netns: str,
    view: Callable[[], NamesView],
    networks: Callable[[], Sequence[str]],
    **kwargs: Any,
) -> AsyncIterator[ResolverService]:
    """A running `ResolverService` for the block (stopped and cleaned up after it)."""
    service = ResolverService(netns, view, networks, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        try:
            yield service
        finally:
            await service.aclose()
