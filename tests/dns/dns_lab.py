"""Kernel test helpers: container namespaces, clients inside them, a stub upstream resolver.

Rules:
- every namespace is named `dnst<pid>x<hex>...` and removed by `namespaces()` also on
  failure; `sweep_stale` removes those of dead test runs;
- clients query from INSIDE a namespace with sockets made there (`socket_in`), run in a
  worker thread so the trio server keeps serving;
- the stub upstream is this test's own dnspython server on a 127.x loopback address of the
  host namespace (never a real resolver): `upstream.example` answers 192.0.2.99, `big.example`
  60 addresses (more than 512 bytes: TC over UDP, whole over TCP), `silent.example` nothing,
  `fail.example` SERVFAIL; the stub counts its UDP and TCP queries.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import trio
from pyroute2 import netns as pr_netns

from swimnet.datapath.netns import path_of, socket_in

TAG = "dnst"
DNS = "127.0.0.11"
UPSTREAM_ANSWER = "192.0.2.99"
BIG_COUNT = 60


def probe() -> str | None:
    """None when the kernel tests can run, else the reason they cannot."""
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces)"
    name = f"{TAG}{os.getpid()}xprobe{secrets.token_hex(2)}"
    try:
        pr_netns.create(name)
        pr_netns.remove(name)
    except Exception as exc:
        return f"network namespaces unavailable: {exc!r}"
    return None


def sweep_stale() -> None:
    for name in pr_netns.listnetns():
        if name.startswith(TAG) and "x" in name:
            pid = name[len(TAG) : name.index("x")]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                with contextlib.suppress(OSError):
                    pr_netns.remove(name)


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[str]]:
    """`count` fresh named namespaces, removed afterwards (also on failure)."""
    sweep_stale()
    prefix = f"{TAG}{os.getpid()}x{secrets.token_hex(3)}"
    names = [f"{prefix}c{i}" for i in range(count)]
    try:
        for name in names:
            pr_netns.create(name)
        yield names
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                pr_netns.remove(name)
        left = [n for n in pr_netns.listnetns() if n.startswith(prefix)]
        assert not left, f"namespaces left behind: {left}"


def query_udp(ns: str, q: dns.message.Message, timeout: float = 3.0) -> dns.message.Message:
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        return dns.query.udp(q, DNS, timeout=timeout, sock=sock)


def query_tcp(ns: str, q: dns.message.Message, timeout: float = 3.0) -> dns.message.Message:
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((DNS, 53))
        sock.setblocking(False)
        return dns.query.tcp(q, DNS, timeout=timeout, sock=sock)


def query_with_fallback(
    ns: str, q: dns.message.Message, timeout: float = 3.0
) -> tuple[dns.message.Message, bool]:
    """UDP, then TCP if the reply is truncated (what a stub resolver does)."""
    with (
        socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket_in(path_of(ns), socket.AF_INET, socket.SOCK_STREAM) as tcp,
    ):
        udp.setblocking(False)
        tcp.settimeout(timeout)
        tcp.connect((DNS, 53))
        tcp.setblocking(False)
        return dns.query.udp_with_fallback(q, DNS, timeout=timeout, udp_sock=udp, tcp_sock=tcp)


def send_raw(ns: str, data: bytes, wait: float = 0.5) -> bytes | None:
    """Send one datagram to the resolver; its reply, or None if none came within `wait`."""
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(data, (DNS, 53))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def tcp_raw(ns: str, data: bytes, wait: float = 1.0) -> bytes:
    """Send bytes on a fresh TCP connection; whatever comes back until close or `wait`."""
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait)
        sock.connect((DNS, 53))
        sock.sendall(data)
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65535):
                out += chunk
        return out


def in_thread(fn: Any, *args: Any) -> Any:
    return trio.to_thread.run_sync(lambda: fn(*args))


class StubUpstream:
    """A tiny authoritative-ish server on `address`:53 (see the module rules)."""

    def __init__(self, port: int = 53) -> None:
        a, b, c = secrets.randbelow(200) + 20, secrets.randbelow(250) + 1, secrets.randbelow(250) + 2
        self.address = f"127.{a}.{b}.{c}"
        self.port = port
        """53 (what resolv.conf implies), or 0: a free port, known after `serve` started."""
        self.seen: Counter[str] = Counter()

    def reply(self, data: bytes, tcp: bool) -> bytes | None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text().lower()
        self.seen[f"{'tcp' if tcp else 'udp'} {name}"] += 1
        if name == "silent.example.":
            return None
        response = dns.message.make_response(query, recursion_available=True)
        if name == "upstream.example.":
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", UPSTREAM_ANSWER))
        elif name == "big.example.":
            addrs = [f"198.51.100.{i}" for i in range(1, BIG_COUNT + 1)]
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", *addrs))
        elif name == "fail.example.":
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with udp, tcp:
            await udp.bind((self.address, self.port))
            self.port = udp.getsockname()[1]
            await tcp.bind((self.address, self.port))
            tcp.listen(16)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._udp, udp)
                nursery.start_soon(trio.serve_listeners, self._tcp, [trio.SocketListener(tcp)])
                task_status.started()

    async def _udp(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, addr = await sock.recvfrom(65535)
            out = self.reply(data, tcp=False)
            if out is not None:
                await sock.sendto(out, addr)

    async def _tcp(self, stream: trio.SocketStream) -> None:
        async with stream:
            buf = b""
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while True:
                    chunk = await stream.receive_some(65535)
                    if not chunk:
                        return
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                        size = struct.unpack("!H", buf[:2])[0]
                        data, buf = buf[2 : 2 + size], buf[2 + size :]
                        out = self.reply(data, tcp=True)
                        if out is not None:
                            await stream.send_all(struct.pack("!H", len(out)) + out)

    def resolv_conf(self, path: str) -> str:
        with open(path, "w") as f:
            f.write(f"# test upstream\nnameserver {self.address}\noptions edns0\n")
        return path


def a_records(message: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in message.answer for rdata in rrset if rrset.rdtype == 1]


def truncated(message: dns.message.Message) -> bool:
    return bool(message.flags & dns.flags.TC)
