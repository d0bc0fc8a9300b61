"""A 3-host VXLAN lab in network namespaces, built and torn down by the kernel tests.

Layout (prefix p = dpt<pid>x<random>, so parallel and crashed runs never collide):
  p-ul : bridge br-ul; veth ul-hN <-> eth0 in p-hN (192.0.2.1N/24)      the underlay
  p-hN : a "host" namespace: the agent's own namespace, where VXLAN sockets live
  p-c* : container namespaces
  swn-p-hN-<vni> : sandboxes, made by LinuxDatapath(node_tag=p-hN)
Rules: every name starts with p or swn-p; `teardown` removes them all (and the
/etc/netns/p* directories agents' resolvers wrote) and kills helper processes by pid;
`sweep_stale` removes what runs whose pid is dead left behind (those directories too).
Traffic only flows between sockets created inside these namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from swimnet.datapath import LinuxDatapath
from swimnet.datapath.netns import kernel_support_problem, path_of, socket_in
from swimnet.dns.sandbox import NETNS_ETC

TAG = "dpt"
ETH_P_ALL = 0x0003


def probe() -> str | None:
    """None when the kernel tests can run, else the reason they cannot."""
    return kernel_support_problem(f"{TAG}{os.getpid()}xprobe{secrets.token_hex(2)}")


def _ours(name: str) -> str | None:
    """The pid in a lab namespace name, None for names that are not the lab's."""
    for start in (TAG, f"swn-{TAG}"):
        if name.startswith(start) and "x" in name:
            pid = name[len(start) : name.index("x")]
            if pid.isdigit():
                return pid
    return None


def sweep_stale() -> None:
    for name in pr_netns.listnetns():
        pid = _ours(name)
        if pid is not None and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):
                pr_netns.remove(name)
    with contextlib.suppress(OSError):
        for name in os.listdir(NETNS_ETC):
            pid = _ours(name)
            if pid is not None and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(os.path.join(NETNS_ETC, name), ignore_errors=True)


def run(*argv: str) -> str:
    """Run ip/bridge; raise with its stderr on failure."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    if done.returncode:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


class Lab:
    def __init__(self, hosts: int = 3) -> None:
        self.prefix = f"{TAG}{os.getpid()}x{secrets.token_hex(3)}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hosts = [f"{self.prefix}h{i}" for i in range(1, hosts + 1)]
        self.vteps = [f"192.0.2.{10 + i}" for i in range(1, hosts + 1)]
        self.underlay = f"{self.prefix}ul"

    def ns_names(self) -> list[str]:
        return [n for n in pr_netns.listnetns() if n.startswith((self.prefix, f"swn-{self.prefix}"))]

    def setup(self) -> None:
        pr_netns.create(self.underlay)
        with IPRoute(netns=self.underlay, flags=0) as ul:
            ul.link("add", ifname="br-ul", kind="bridge")
            bridge = ul.link_lookup(ifname="br-ul")[0]
            for i, (host, vtep) in enumerate(zip(self.hosts, self.vteps, strict=True), start=1):
                pr_netns.create(host)
                ul.link("add", ifname=f"ul-h{i}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": host})
                port = ul.link_lookup(ifname=f"ul-h{i}")[0]
                ul.link("set", index=port, master=bridge, state="up")
                with IPRoute(netns=host, flags=0) as h:
                    eth0 = h.link_lookup(ifname="eth0")[0]
                    h.addr("add", index=eth0, address=vtep, prefixlen=24)
                    h.link("set", index=eth0, state="up")
                    h.link("set", index=h.link_lookup(ifname="lo")[0], state="up")
            ul.link("set", index=bridge, state="up")

    def datapath(self, host: int, **kwargs: str) -> LinuxDatapath:
        """The datapath of host 1..N (node tag = its namespace name)."""
        return LinuxDatapath(self.hosts[host - 1], host_netns=self.hosts[host - 1], **kwargs)

    def container(self, name: str) -> str:
        ns = f"{self.prefix}{name}"
        pr_netns.create(ns)
        return ns

    def process_in(self, ns: str) -> int:
        """A process living in `ns` (its pid is a namespace reference); killed at teardown."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
        self.procs.append(proc)
        target = os.stat(path_of(ns))
        for _ in range(200):
            with contextlib.suppress(OSError):
                mine = os.stat(f"/proc/{proc.pid}/ns/net")
                if (mine.st_dev, mine.st_ino) == (target.st_dev, target.st_ino):
                    return proc.pid
            time.sleep(0.01)
        raise AssertionError(f"process {proc.pid} never entered {ns}")

    def teardown(self) -> list[str]:
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=10)
        for name in self.ns_names():
            with contextlib.suppress(OSError):
                pr_netns.remove(name)
        self._remove_netns_etc()
        return self.ns_names()

    def _remove_netns_etc(self) -> None:
        """The resolv.conf directories agents' DNS resolvers wrote for the lab's containers
        (an agent removes them with the last endpoint; a killed one cannot)."""
        with contextlib.suppress(OSError):
            for entry in os.listdir(NETNS_ETC):
                if entry.startswith(self.prefix):
                    shutil.rmtree(os.path.join(NETNS_ETC, entry), ignore_errors=True)


@contextlib.contextmanager
def lab(hosts: int = 3) -> Iterator[Lab]:
    sweep_stale()
    the_lab = Lab(hosts)
    try:
        the_lab.setup()
        yield the_lab
    finally:
        left = the_lab.teardown()
        assert not left, f"namespaces left behind: {left}"


def udp_exchange(
    src_ns: str, src_ip: str, dst_ns: str, dst_ip: str, *, attempts: int = 6, wait: float = 0.4
) -> bytes | None:
    """Send from a socket in `src_ns` to a server socket in `dst_ns`; the server's reply names
    its namespace. None when nothing came back within the bounded attempts."""
    with (
        socket_in(path_of(dst_ns), socket.AF_INET, socket.SOCK_DGRAM) as server,
        socket_in(path_of(src_ns), socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        server.bind((dst_ip, 7007))
        client.bind((src_ip, 0))
        server.settimeout(wait)
        client.settimeout(wait)
        for attempt in range(attempts):
            client.sendto(b"ping %d" % attempt, (dst_ip, 7007))
            try:
                data, addr = server.recvfrom(2048)
                server.sendto(b"pong from " + dst_ns.encode() + b": " + data, addr)
                return client.recv(2048)
            except TimeoutError:
                continue
    return None


def capture_vxlan(
    ul_ns: str, port: str, send: object, *, seconds: float = 3.0
) -> list[tuple[str, str, int, int, str]]:
    """Call `send()` while capturing on an underlay bridge port; returns the VXLAN frames seen
    as (outer src, outer dst, UDP dport, VNI, inner IPv4 dst)."""
    seen: list[tuple[str, str, int, int, str]] = []
    with socket_in(path_of(ul_ns), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as cap:
        cap.bind((port, ETH_P_ALL))
        cap.settimeout(0.2)
        send()  # type: ignore[operator]
        deadline = time.monotonic() + seconds
        for _ in range(2000):
            if time.monotonic() > deadline:
                break
            try:
                frame = cap.recv(65535)
            except TimeoutError:
                if seen:
                    break
                continue
            parsed = parse_vxlan(frame)
            if parsed is not None:
                seen.append(parsed)
    return seen


def parse_vxlan(frame: bytes) -> tuple[str, str, int, int, str] | None:
    if len(frame) < 14 + 20 + 8 + 8 + 14 + 20 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 17:
        return None
    src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
    udp = 14 + ihl
    (dport,) = struct.unpack("!H", frame[udp + 2 : udp + 4])
    vxlan = udp + 8
    vni = int.from_bytes(frame[vxlan + 4 : vxlan + 7], "big")
    inner = vxlan + 8
    if frame[inner + 12 : inner + 14] != b"\x08\x00":
        return (src, dst, dport, vni, "")
    return (src, dst, dport, vni, socket.inet_ntoa(frame[inner + 14 + 16 : inner + 14 + 20]))
