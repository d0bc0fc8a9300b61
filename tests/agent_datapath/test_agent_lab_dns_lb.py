"""Names and service VIPs with the real agents on the 3-host lab (issues #12 and #13).

DNS (`test_names_across_hosts_scoped_forwarded_and_removed`): containers on three hosts, two
networks; a container on h1 asks its agent's resolver at 127.0.0.11 (from inside its own
namespace) and connects by name through the C library's resolver (`ip netns exec`, which
reads the /etc/netns/NAME/resolv.conf the agent wrote); another network's name is NXDOMAIN
and never leaves for upstream; an outside name goes to a stub upstream resolver this test
runs in h1's host namespace (the agents' `resolv_conf` setting points at it); a removed
endpoint's name is NXDOMAIN in every container's resolver and every agent's `dns`.

Load balancing (`test_the_vip_spreads_then_follows_a_failed_host_and_keeps_connections`):
a vip service with a published port and backends on h2 and h3 (TCP servers in the
container namespaces, each greeting with its name, then echoing); a client container on
h1 makes 300 connections to VIP:80: all succeed and both backends get a share. Then h3's
agent is SIGKILLed: once h1's agent has taken h3's backend out of the kernel's rules (read
back with `nft`), every new connection goes to h2's backend and none fails, and a
connection opened before the change still talks to its backend; after h3's agent restarts,
its backend is back; rules deleted by hand come back; `service rm` takes the rules out of
every container namespace.

Waits poll an observable condition with generous bounds (a shared, loaded machine); no
duration is asserted. Every process, namespace and /etc/netns directory is removed at the
end, also on failure (agent_lab, datapath_lab, the fixtures below).
"""

from __future__ import annotations

import collections
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from agent_lab import FAST, AgentLab, agent_lab
from datapath_lab import probe
from dns_lab import UPSTREAM_ANSWER, StubUpstream
from lb_lab import TCP_PORT, Backend, connect_many, nft, open_connection, read_line
from test_agent_lab import Overlay

from swimnet.datapath.lb.libnft import problem as nft_problem
from swimnet.datapath.netns import path_of, socket_in

_reason = probe() or (None if shutil.which("nft") else "the nft binary is missing") or nft_problem()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

CONVERGE = 60.0
"""Seconds any cluster-wide change may take to show (generous: a shared 2-core machine)."""
VIP = "10.1.0.100"


@contextlib.contextmanager
def three_hosts(config: str = FAST) -> Iterator[AgentLab]:
    workdir = Path(tempfile.mkdtemp(prefix="swn-dnslb-"))  # short: unix socket paths are limited
    try:
        with agent_lab(workdir, config=config) as lab:
            yield lab
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def until(lab: AgentLab, probe: Callable[[], object], what: str) -> None:
    lab.wait_for(probe, what, timeout=CONVERGE)


def ask(ns: str, name: str) -> tuple[str, list[str]]:
    """(rcode, sorted A records) of 127.0.0.11 inside `ns`; ("TIMEOUT", []) without a reply."""
    q = dns.message.make_query(name, dns.rdatatype.A)
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3.0)
        try:
            sock.sendto(q.to_wire(), ("127.0.0.11", 53))
            reply = dns.message.from_wire(sock.recv(4096))
        except OSError:
            return "TIMEOUT", []
    records = sorted(r.to_text() for rrset in reply.answer for r in rrset if rrset.rdtype == dns.rdatatype.A)
    return dns.rcode.to_text(reply.rcode()), records


CONNECT_BY_NAME = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as conn:
    print(conn.getpeername()[0], conn.recv(64).decode().strip())
"""


def connect_by_name(ns: str, name: str, port: int) -> str:
    """Connect from inside `ns` as a program in the container would: `ip netns exec` (which
    puts /etc/netns/NS/resolv.conf in place), getaddrinfo, connect; "<peer ip> <greeting>"."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", CONNECT_BY_NAME, name, str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class LabUpstream:
    """`StubUpstream`'s answers (tests/dns/dns_lab.py) served over UDP by a thread from a
    socket inside a lab namespace; `seen` counts the questions it got."""

    def __init__(self, ns: str, address: str) -> None:
        self.stub = StubUpstream()
        self.address = address
        self._stop = threading.Event()
        self._sock = socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, 53))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def seen(self) -> collections.Counter[str]:
        return self.stub.seen

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):  # only our agents send here; never die
                out = self.stub.reply(data, tcp=False)
                if out is not None:
                    self._sock.sendto(out, peer)

    def resolv_conf(self, path: Path) -> Path:
        path.write_text(f"# the lab's stub upstream\nnameserver {self.address}\n")
        return path

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def test_names_across_hosts_scoped_forwarded_and_removed(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# no upstream until the stub runs\n")
    with three_hosts(f'resolv_conf = "{resolv}"\n' + FAST) as lab:
        upstream = LabUpstream(lab.name(1), lab.vtep(1))
        servers: list[Backend] = []
        try:
            upstream.resolv_conf(resolv)
            ov = Overlay(lab)
            ov.network("front", "10.1.0.0/24")
            ov.network("back", "10.2.0.0/24")
            client = ov.container("client", 1, "front", "10.1.0.2")
            db = ov.container("db", 2, "front", "10.1.0.3")
            web1 = ov.container("web1", 2, "front", "10.1.0.4")
            web2 = ov.container("web2", 3, "front", "10.1.0.5")
            secret = ov.container("secret", 3, "back", "10.2.0.2")
            lab.cli(
                1, "service", "create", "web", "--network", "front", "--vip", VIP,
                "--backend", "web1", "--backend", "web2",
            )  # fmt: skip
            ov.converged("front")
            servers.append(Backend(db, "10.1.0.3", "db"))

            # h1's container finds db (on h2) by name, and connects to it by name
            until(lab, lambda: ask(client, "db") == ("NOERROR", ["10.1.0.3"]), "db from h1")
            assert connect_by_name(client, "db", TCP_PORT) == "10.1.0.3 db"
            assert ask(client, "DB") == ("NOERROR", ["10.1.0.3"])  # case-insensitive
            found = lab.cli(1, "dns", "front", "db", "--from", "client")
            assert (found["records"], found["networks"]) == (["A 10.1.0.3"], ["front"])

            # a service: its name is the VIP, tasks.web the backends on h2 and h3
            lab.wait_for(
                lambda: ask(client, "tasks.web") == ("NOERROR", ["10.1.0.4", "10.1.0.5"]),
                "tasks.web from h1",
                timeout=CONVERGE,
            )
            assert ask(client, "web") == ("NOERROR", [VIP])

            # scoping: secret (network back, h3) is NXDOMAIN for front's containers, and the
            # other way round; neither name ever reaches the upstream
            lab.wait_for(lambda: ask(secret, "secret") == ("NOERROR", ["10.2.0.2"]), "secret on back")
            assert ask(client, "secret") == ("NXDOMAIN", [])
            assert ask(web2, "secret") == ("NXDOMAIN", [])  # same host as secret, other network
            assert ask(secret, "db") == ("NXDOMAIN", [])

            # an outside name goes from h1's agent to the stub upstream in h1's namespace
            assert ask(client, "upstream.example") == ("NOERROR", [UPSTREAM_ANSWER])
            assert ask(client, "nowhere.example") == ("NXDOMAIN", [])
            assert upstream.seen["udp upstream.example."] >= 1
            assert upstream.seen["udp nowhere.example."] >= 1
            leaked = [q for q in upstream.seen if not q.endswith(".example.")]
            assert leaked == [], leaked

            # db removed on h2: its name is gone in every container's resolver and every agent
            ov.remove("db")
            for ns in (client, web1, web2):
                lab.wait_for(
                    lambda ns=ns: ask(ns, "db") == ("NXDOMAIN", []), f"db gone for {ns}", timeout=CONVERGE
                )
            for host in (1, 2, 3):
                lab.wait_for(
                    lambda host=host: lab.cli(host, "dns", "front", "db")["rcode"] == "NXDOMAIN",
                    f"db gone on h{host}",
                    timeout=CONVERGE,
                )
            assert ask(client, "web1") == ("NOERROR", ["10.1.0.4"])  # the rest still answers
        finally:
            for server in servers:
                server.stop()
            upstream.stop()


def kernel_backends(ns: str) -> set[str]:
    """The backend addresses the load balancer's maps hold in `ns` (read back with nft)."""
    text = nft(ns, "list", "table", "ip", "swimnet", check=False)
    return set(re.findall(rf": (\d+\.\d+\.\d+\.\d+) \. {TCP_PORT}\b", text))


def backend_states_on_h1(lab: AgentLab) -> list[str]:
    doc = lab.cli(1, "service", "inspect", "web", "--network", "front")
    return [b["state"] for b in doc["backend_states"]]


def test_the_vip_spreads_then_follows_a_failed_host_and_keeps_connections() -> None:
    with three_hosts("reconcile_interval = 2.0\n" + FAST) as lab:
        ov = Overlay(lab)
        ov.network("front", "10.1.0.0/24")
        client = ov.container("client", 1, "front", "10.1.0.2")
        web1 = ov.container("web1", 2, "front", "10.1.0.3")
        web2 = ov.container("web2", 3, "front", "10.1.0.4")
        ov.converged("front")
        servers = [Backend(web1, "10.1.0.3", "web1"), Backend(web2, "10.1.0.4", "web2")]
        kept: list[socket.socket] = []
        try:
            lab.cli(
                1, "service", "create", "web", "--network", "front", "--vip", VIP,
                "--port", f"tcp:80:{TCP_PORT}", "--backend", "web1", "--backend", "web2",
            )  # fmt: skip
            both = {"10.1.0.3", "10.1.0.4"}
            until(lab, lambda: kernel_backends(client) == both, "both backends in h1's rules")
            assert backend_states_on_h1(lab) == ["visible", "visible"]

            # 300 connections to VIP:80 from h1's container: all succeed, both backends share
            seen = connect_many(client, 300, 80, VIP, timeout=10)
            assert sum(seen.values()) == 300 and set(seen) == {"web1", "web2"}, seen
            assert min(seen.values()) >= 60, seen  # each >= 20% (random spread, p = 1/2)

            # a connection to h2's backend, kept open across the rules update below
            for _ in range(50):
                conn, name = open_connection(client, 80, VIP, timeout=10)
                kept.append(conn)
                if name == "web1":
                    break
            assert name == "web1"
            held = kept[-1]

            # h3's agent dies: once h1 has taken web2 out of the rules, web1 gets everything
            lab.kill(3, signal.SIGKILL)
            until(lab, lambda: _state(lab, 1, lab.name(3)) == "dead", "h1 to see h3 dead")
            until(lab, lambda: kernel_backends(client) == {"10.1.0.3"}, "web2 out of h1's rules")
            assert backend_states_on_h1(lab) == ["visible", "hidden"]
            seen = connect_many(client, 300, 80, VIP, timeout=10)
            assert seen == {"web1": 300}, seen

            # the connection made before the update still talks to web1 (its conntrack entry
            # keeps its DNAT; moved to another backend it would be reset, not echoed)
            held.sendall(b"still web1?\n")
            assert read_line(held) == "still web1?"

            # h3's agent comes back: so does its backend
            lab.start(3)
            until(lab, lambda: kernel_backends(client) == both, "web2 back in h1's rules")
            seen = connect_many(client, 100, 80, VIP, timeout=10)
            assert sum(seen.values()) == 100 and set(seen) == {"web1", "web2"}, seen

            # rules deleted by hand come back (the periodic reconcile)
            nft(client, "delete", "table", "ip", "swimnet")
            until(lab, lambda: kernel_backends(client) == both, "h1 to repair the client's rules")

            # service rm: the rules leave every container, on every host
            lab.cli(1, "service", "rm", "web", "--network", "front")
            for ns in (client, web1, web2):
                until(lab, lambda ns=ns: not kernel_backends(ns), f"the VIP's rules gone from {ns}")
            seen = connect_many(client, 1, 80, VIP, timeout=5)
            assert all(answer.startswith("!") for answer in seen), seen  # nothing serves the VIP
        finally:
            for conn in kept:
                conn.close()
            for server in servers:
                server.stop()


def _state(lab: AgentLab, host: int, member: str) -> str:
    rows = lab.cli(host, "members", check=False) or []
    return next((m["state"] for m in rows if m["name"] == member), "")

