"""A load-balancing lab: a client namespace and backend namespaces on one bridge.

Layout (prefix p = lbt<pid>x<random>, so parallel and crashed runs never collide):
  p-sw : bridge br0 and one veth port per namespace below           the "overlay"
  p-c  : the client, eth0 10.1.0.1/24 (the LB rules under test live here)
  p-b<i>: backends, eth0 10.1.0.<i+1>/24, each running a TCP server on 8080 (answers its
         name, then echoes) and a UDP server on 5353 (answers its name)
No agent is involved: the tests drive swimnet.datapath.lb directly with a desired state.
Rules: every name starts with p; `teardown` stops the servers and removes every namespace,
also on failure; `sweep_stale` removes what runs whose pid is dead left behind. Traffic only
flows between sockets created inside these namespaces.
"""

from __future__ import annotations

import collections
import contextlib
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from swimnet.datapath.netns import path_of, socket_in
from swimnet.datapath.nsthread import run_in

TAG = "lbt"
VIP = "10.1.0.100"
TCP_PORT = 8080
UDP_PORT = 5353
LIFETIME = 120.0
"""Seconds a server connection may live (every loop is bounded)."""


def sweep_stale() -> None:
    for name in pr_netns.listnetns():
        if name.startswith(TAG) and "x" in name:
            pid = name[len(TAG) : name.index("x")]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                with contextlib.suppress(OSError):
                    pr_netns.remove(name)


def nft(ns: str, *args: str, check: bool = True, script: str | None = None) -> str:
    """Run the `nft` binary in a lab namespace (the tests' hand-made changes and checks);
    `script` goes to its stdin (with `-f -`)."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args],
        capture_output=True,
        text=True,
        timeout=20,
        input=script,
    )
    if check and done.returncode:
        raise AssertionError(f"nft {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Backend:
    """The TCP and UDP servers of one backend namespace (threads in this process)."""

    def __init__(self, ns: str, ip: str, name: str) -> None:
        self.name = name
        self.ip = ip
        self.accepted = 0
        self._stop = threading.Event()
        self._tcp = socket_in(path_of(ns), socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind((ip, TCP_PORT))
        self._tcp.listen(512)
        self._tcp.settimeout(0.2)
        self._udp = socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind((ip, UDP_PORT))
        self._udp.settimeout(0.2)
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._answer, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(LIFETIME)
            try:
                conn.sendall(self.name.encode() + b"\n")
                while not self._stop.is_set():
                    data = conn.recv(4096)
                    if not data:
                        return
                    conn.sendall(data)
            except OSError:
                return

    def _answer(self) -> None:
        while not self._stop.is_set():
            try:
                _, peer = self._udp.recvfrom(2048)
                self._udp.sendto(self.name.encode(), peer)
            except TimeoutError:
                continue
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._tcp.close()
        self._udp.close()


class Lab:
    def __init__(self, backends: int = 3) -> None:
        self.prefix = f"{TAG}{os.getpid()}x{secrets.token_hex(3)}"
        self.switch = f"{self.prefix}sw"
        self.client = f"{self.prefix}c"
        self.client_ip = "10.1.0.1"
        self.backend_ns = [f"{self.prefix}b{i}" for i in range(1, backends + 1)]
        self.backend_ips = [f"10.1.0.{i + 1}" for i in range(1, backends + 1)]
        self.servers: list[Backend] = []

    def setup(self) -> None:
        pr_netns.create(self.switch)
        with IPRoute(netns=self.switch, flags=0) as sw:
            sw.link("add", ifname="br0", kind="bridge")
            bridge = sw.link_lookup(ifname="br0")[0]
            members = [(self.client, self.client_ip), *zip(self.backend_ns, self.backend_ips, strict=True)]
            for i, (ns, ip) in enumerate(members):
                pr_netns.create(ns)
                sw.link("add", ifname=f"p{i}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
                sw.link("set", index=sw.link_lookup(ifname=f"p{i}")[0], master=bridge, state="up")
                with IPRoute(netns=ns, flags=0) as inner:
                    eth0 = inner.link_lookup(ifname="eth0")[0]
                    inner.addr("add", index=eth0, address=ip, prefixlen=24)
                    inner.link("set", index=eth0, state="up")
                    inner.link("set", index=inner.link_lookup(ifname="lo")[0], state="up")
            sw.link("set", index=bridge, state="up")
        for i, (ns, ip) in enumerate(zip(self.backend_ns, self.backend_ips, strict=True), start=1):
            self.servers.append(Backend(ns, ip, f"b{i}"))

    def names(self) -> list[str]:
        return [n for n in pr_netns.listnetns() if n.startswith(self.prefix)]

    def teardown(self) -> list[str]:
        for server in self.servers:
            server.stop()
        for name in self.names():
            with contextlib.suppress(OSError):
                pr_netns.remove(name)
        return self.names()

    # -- traffic from the client namespace ----------------------------------------------

    def connect_many(self, count: int, port: int = 80, vip: str = VIP) -> collections.Counter[str]:
        """`count` sequential TCP connections to vip:port from the client; backend name ->
        connections; failures counted under "!<error>"."""

        def inside() -> collections.Counter[str]:
            seen: collections.Counter[str] = collections.Counter()
            for _ in range(count):
                try:
                    with socket.create_connection((vip, port), timeout=3) as s:
                        seen[read_line(s)] += 1
                except OSError as exc:
                    seen[f"!{type(exc).__name__}"] += 1
            return seen

        return run_in(path_of(self.client), inside)

    def open_connection(self, port: int = 80, vip: str = VIP) -> tuple[socket.socket, str]:
        """A TCP connection from the client kept open, and the backend that answered."""
        conn = socket_in(path_of(self.client), socket.AF_INET, socket.SOCK_STREAM)
        conn.settimeout(3)
        conn.connect((vip, port))
        return conn, read_line(conn)

    def udp_many(self, count: int, port: int = 53, vip: str = VIP) -> collections.Counter[str]:
        """`count` UDP queries, each from a new socket (a new conntrack flow)."""

        def inside() -> collections.Counter[str]:
            seen: collections.Counter[str] = collections.Counter()
            for i in range(count):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(2)
                    try:
                        s.sendto(b"q%d" % i, (vip, port))
                        seen[s.recv(64).decode()] += 1
                    except OSError as exc:
                        seen[f"!{type(exc).__name__}"] += 1
            return seen

        return run_in(path_of(self.client), inside)


def read_line(conn: socket.socket) -> str:
    data = b""
    for _ in range(64):
        chunk = conn.recv(64)
        if not chunk:
            break
        data += chunk
        if b"\n" in data:
            break
    return data.split(b"\n")[0].decode()


@contextlib.contextmanager
def lab(backends: int = 3) -> Iterator[Lab]:
    sweep_stale()
    the_lab = Lab(backends)
    try:
        the_lab.setup()
        yield the_lab
    finally:
        left = the_lab.teardown()
        assert not left, f"namespaces left behind: {left}"
