"""The real agent, end to end: three `swimnet-agent` processes, each in its own host namespace,
program a VXLAN overlay that containers on different hosts talk over.

Everything goes through the CLI (`network create`, `endpoint create/rm`, `fdb`, `status`);
the kernel is checked with `bridge`/`ip` dumps, UDP and TCP exchanges between sockets made
inside the container namespaces, and an AF_PACKET capture on an underlay bridge port. Every
test builds its own lab (see agent_lab) and removes every process and namespace it made,
also on failure.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_lab import AgentLab, agent_lab
from datapath_lab import capture_vxlan, probe, run, udp_exchange
from pyroute2 import netns as pr_netns

from examples.pets import processes
from swimnet.datapath.names import sandbox_name
from swimnet.datapath.netns import path_of, socket_in

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

Row = tuple[str, str, str]  # (mac, vtep, ip)


@pytest.fixture
def agents() -> Iterator[AgentLab]:
    workdir = Path(tempfile.mkdtemp(prefix="swn-agent-"))  # short: unix socket paths are limited
    try:
        with agent_lab(workdir) as lab:
            yield lab
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Overlay:
    """Networks and containers made through the agents' CLI, and what each host should hold."""

    def __init__(self, agents: AgentLab) -> None:
        self.a = agents
        self.vni: dict[str, int] = {}
        self.endpoints: dict[str, tuple[int, str, str, str, str]] = {}
        """container -> (host, network, ip, mac, endpoint id)."""

    def network(self, name: str, subnet: str = "10.1.0.0/24", host: int = 1) -> int:
        doc = self.a.cli(host, "network", "create", name, "--subnet", subnet)
        self.vni[name] = int(doc["vni"])
        for h in (1, 2, 3):
            self.a.wait_for(lambda h=h: self._knows(h, name), f"h{h} knows network {name}")
        return self.vni[name]

    def _knows(self, host: int, name: str) -> bool:
        listing = self.a.cli(host, "network", "ls")
        rows = listing["networks"] if isinstance(listing, dict) else listing
        return any(n["name"] == name for n in rows)

    def container(self, name: str, host: int, network: str, ip: str | None) -> str:
        """A container attached by `host`'s agent; `ip` pinned, or None: from the IPAM."""
        ns = self.a.lab.container(name)
        pin = [] if ip is None else ["--ip", f"{ip}/24"]
        doc = self.a.cli(host, "endpoint", "create", network, name, *pin, "--netns", ns)
        self.endpoints[name] = (host, network, doc["ip"].split("/")[0], doc["mac"], doc["id"])
        return ns

    def remove(self, name: str) -> None:
        host, _, _, _, endpoint_id = self.endpoints.pop(name)
        self.a.cli(host, "endpoint", "rm", endpoint_id)

    def ns(self, name: str) -> str:
        return f"{self.a.lab.prefix}{name}"

    def expected(self, host: int, network: str, gone: tuple[int, ...] = ()) -> set[Row]:
        """Every endpoint of `network` on another host (not on a host in `gone`)."""
        return {
            (mac, self.a.vtep(h), ip)
            for h, net, ip, mac, _ in self.endpoints.values()
            if net == network and h != host and h not in gone
        }

    def hosts_of(self, network: str) -> list[int]:
        return sorted({h for h, net, *_ in self.endpoints.values() if net == network})

    def sandbox(self, host: int, network: str) -> str:
        return sandbox_name(self.a.name(host), self.vni[network])

    def converged(self, network: str, gone: tuple[int, ...] = ()) -> None:
        """Wait until every host with an endpoint in `network` holds exactly the others'."""
        for h in self.hosts_of(network):
            if h in gone:
                continue
            want = self.expected(h, network, gone)
            self.a.wait_for(lambda h=h, want=want: self.a.fdb(h, network) == want, f"h{h} fdb of {network}")

    def reach(self, src: str, dst: str, attempts: int = 6) -> bool:
        s, d = self.endpoints[src], self.endpoints[dst]
        reply = udp_exchange(self.ns(src), s[2], self.ns(dst), d[2], attempts=attempts)
        return reply is not None and reply.startswith(b"pong from " + self.ns(dst).encode())


def kernel_rows(sandbox: str) -> set[Row]:
    """`bridge fdb` self entries joined with `ip neigh` permanent entries on vxlan0."""
    fdb = [
        e
        for e in json.loads(run("bridge", "-n", sandbox, "-j", "fdb", "show", "dev", "vxlan0") or "[]")
        if "self" in e.get("flags", [])
    ]
    neigh = {
        e["lladdr"]: e["dst"]
        for e in json.loads(run("ip", "-n", sandbox, "-j", "-4", "neigh", "show", "dev", "vxlan0") or "[]")
        if "PERMANENT" in e.get("state", [])
    }
    rows = {(e["mac"], e.get("dst", ""), neigh.pop(e["mac"], "")) for e in fdb}
    return rows | {(mac, "", ip) for mac, ip in neigh.items()}


def tcp_echo(src_ns: str, dst_ns: str, dst_ip: str, payload: bytes, port: int = 7070) -> bytes:
    """Connect from a socket in `src_ns` to an echo server socket in `dst_ns` (bounded)."""
    with socket_in(path_of(dst_ns), socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((dst_ip, port))
        server.listen(1)
        server.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                conn.sendall(b"echo: " + conn.recv(4096))

        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        try:
            with socket_in(path_of(src_ns), socket.AF_INET, socket.SOCK_STREAM) as client:
                client.settimeout(10)
                client.connect((dst_ip, port))
                client.sendall(payload)
                return client.recv(4096)
        finally:
            worker.join(timeout=15)


def test_containers_talk_across_hosts_over_vxlan(agents: AgentLab) -> None:
    ov = Overlay(agents)
    vni = ov.network("ovnet")
    for h in (1, 2, 3):
        ov.container(f"web{h}", h, "ovnet", f"10.1.0.{h + 1}")
    ov.converged("ovnet")

    # the driver's view (`fdb`) and the kernel's (`bridge fdb` + `ip neigh`) agree, exactly
    for h in (1, 2, 3):
        assert kernel_rows(ov.sandbox(h, "ovnet")) == ov.expected(h, "ovnet")

    names = ["web1", "web2", "web3"]
    for src in names:
        for dst in names:
            if src != dst:
                assert ov.reach(src, dst), (src, dst)
    assert tcp_echo(ov.ns("web3"), ov.ns("web1"), "10.1.0.2", b"hello over tcp") == b"echo: hello over tcp"

    seen = capture_vxlan(agents.lab.underlay, "ul-h2", lambda: ov.reach("web1", "web2"))
    frames = [f for f in seen if f[2] == 4789]  # the rest is the agents' gossip (UDP 7946)
    assert ("192.0.2.11", "192.0.2.12", 4789, vni, "10.1.0.3") in frames, frames
    assert ("192.0.2.12", "192.0.2.11", 4789, vni, "10.1.0.2") in frames, frames
    assert {f[3] for f in frames} == {vni}, frames

    # removing an endpoint removes its entries everywhere, and its host's sandbox
    ov.remove("web3")
    ov.converged("ovnet")
    for h in (1, 2):
        assert kernel_rows(ov.sandbox(h, "ovnet")) == ov.expected(h, "ovnet")
    agents.wait_for(
        lambda: ov.sandbox(3, "ovnet") not in agents.lab.ns_names(), "h3's sandbox removed", host=3
    )
    assert "eth0" not in run("ip", "-n", ov.ns("web3"), "link", "show")
    assert ov.reach("web1", "web2")
    for h in (1, 2, 3):
        assert agents.status(h)["datapath_stats"]["errors"] == 0


def test_a_crashed_agent_is_forgotten_and_comes_back(agents: AgentLab) -> None:
    ov = Overlay(agents)
    ov.network("ovnet")
    for h in (1, 2, 3):
        ov.container(f"web{h}", h, "ovnet", f"10.1.0.{h + 1}")
    ov.converged("ovnet")
    assert ov.reach("web1", "web3")

    agents.kill(3, signal.SIGKILL)
    ov.converged("ovnet", gone=(3,))  # failure detected: h3's endpoints left h1 and h2
    for h in (1, 2):
        assert kernel_rows(ov.sandbox(h, "ovnet")) == ov.expected(h, "ovnet", gone=(3,))
    assert not ov.reach("web1", "web3", attempts=2)

    # meanwhile the overlay changes, and someone leaves junk in h3's (unattended) kernel
    ov.remove("web2")
    # with h3 down, an address pinned outside h2's own IPAM blocks would wait for h3's vote
    # (uniqueness first: the agent answers 503 after 10 s); one from the IPAM comes at once
    ov.container("web4", 2, "ovnet", None)
    junk = ov.sandbox(3, "ovnet")
    run("bridge", "-n", junk, "fdb", "add", "02:42:0a:01:00:63", "dev", "vxlan0", "dst", "192.0.2.99", "self")
    run("ip", "-n", junk, "neigh", "add", "10.1.0.99", "lladdr", "02:42:0a:01:00:63", "dev", "vxlan0")
    ov.converged("ovnet", gone=(3,))

    agents.start(3)  # the same state directory: same name, its endpoint re-published
    ov.converged("ovnet")
    for h in (1, 2, 3):
        assert kernel_rows(ov.sandbox(h, "ovnet")) == ov.expected(h, "ovnet")  # no stale rows left
    assert ov.reach("web1", "web3") and ov.reach("web3", "web4") and ov.reach("web4", "web1")


def test_entries_changed_by_hand_are_repaired(agents: AgentLab) -> None:
    ov = Overlay(agents)
    ov.network("ovnet")
    for h in (1, 2, 3):
        ov.container(f"web{h}", h, "ovnet", f"10.1.0.{h + 1}")
    ov.converged("ovnet")
    sb = ov.sandbox(1, "ovnet")
    _, _, _, mac2, _ = ov.endpoints["web2"]
    run("bridge", "-n", sb, "fdb", "del", mac2, "dev", "vxlan0", "self")
    run("ip", "-n", sb, "neigh", "del", "10.1.0.3", "dev", "vxlan0")
    run("bridge", "-n", sb, "fdb", "add", "02:42:0a:01:00:63", "dev", "vxlan0", "dst", "192.0.2.99", "self")
    assert kernel_rows(sb) != ov.expected(1, "ovnet")
    assert not ov.reach("web1", "web2", attempts=2)

    # the agent exposes no reconcile interval (the driver's default is 30 s), so: any change
    # to the overlay makes the driver reconcile, and a reconcile compares with the kernel
    ov.container("web5", 3, "ovnet", "10.1.0.6")
    ov.converged("ovnet")
    assert kernel_rows(sb) == ov.expected(1, "ovnet")
    assert ov.reach("web1", "web2")

    # and a restarted agent repairs on start
    run("ip", "-n", sb, "neigh", "replace", "10.1.0.3", "lladdr", "02:00:00:00:00:33", "dev", "vxlan0")
    run("ip", "-n", sb, "link", "set", "dev", "vxlan0", "nomaster")
    agents.kill(1, signal.SIGTERM)
    agents.start(1)
    agents.wait_for(lambda: kernel_rows(sb) == ov.expected(1, "ovnet"), "h1 repaired after restart", host=1)
    ov.converged("ovnet")
    assert ov.reach("web1", "web2") and ov.reach("web3", "web1")


def test_networks_with_the_same_subnet_stay_isolated(agents: AgentLab) -> None:
    ov = Overlay(agents)
    vni_a = ov.network("neta", "10.1.0.0/24")
    vni_b = ov.network("netb", "10.1.0.0/24", host=2)
    assert vni_a != vni_b
    ov.container("a1", 1, "neta", "10.1.0.2")
    ov.container("a2", 2, "neta", "10.1.0.3")
    ov.container("b1", 1, "netb", "10.1.0.2")
    ov.container("b2", 2, "netb", "10.1.0.3")
    ov.container("b3", 3, "netb", "10.1.0.4")
    ov.converged("neta")
    ov.converged("netb")
    assert ov.sandbox(3, "neta") not in agents.lab.ns_names()  # h3 has nothing in neta

    frames = capture_vxlan(agents.lab.underlay, "ul-h2", lambda: (ov.reach("a1", "a2"), ov.reach("b1", "b2")))
    assert ("192.0.2.11", "192.0.2.12", 4789, vni_a, "10.1.0.3") in frames
    assert ("192.0.2.11", "192.0.2.12", 4789, vni_b, "10.1.0.3") in frames
    assert ov.reach("a1", "a2") and ov.reach("b1", "b2") and ov.reach("b1", "b3")
    # 10.1.0.4 exists only in netb: a container of neta must not reach it
    assert udp_exchange(ov.ns("a1"), "10.1.0.2", ov.ns("b3"), "10.1.0.4", attempts=3, wait=0.3) is None


def test_an_agent_whose_namespaces_are_gone_exits_at_sigterm() -> None:
    """The lab's namespaces (the agent's host, its sandbox, its container) removed under a
    running agent, as a failed run's teardown would: SIGTERM still ends it, with exit 0,
    within a bound (a behavioural timeout for a loaded machine, not a speed figure)."""
    workdir = Path(tempfile.mkdtemp(prefix="swn-agent-"))
    try:
        with agent_lab(workdir, hosts=1) as agents:
            agents.cli(1, "network", "create", "ovnet", "--subnet", "10.1.0.0/24")
            ns = agents.lab.container("web1")
            agents.cli(1, "endpoint", "create", "ovnet", "web1", "--netns", ns)
            for name in agents.lab.ns_names():
                pr_netns.remove(name)
            proc = agents.procs.pop(1)
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the agent ignored SIGTERM:\n{agents.tail(1)}") from None
            finally:
                processes.stop(proc, sig=signal.SIGKILL)
            assert code == 0, agents.tail(1)
            assert '"left"' in agents.tail(1) or "left the cluster" in agents.tail(1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
