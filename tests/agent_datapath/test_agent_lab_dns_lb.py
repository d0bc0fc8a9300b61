"""The real agents wire service VIPs and the embedded DNS: on the 3-host lab, a container on
host 1 resolves containers of host 2 by name through its agent's resolver at 127.0.0.11
(queried from inside the container's namespace), and reaches a vip service with two
backends on host 2 through the VIP (the agent's nftables rules in the client's namespace).
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest
from agent_lab import AgentLab, agent_lab
from datapath_lab import probe
from lb_lab import TCP_PORT, Backend
from test_agent_lab import Overlay

from swimnet.datapath.netns import path_of, socket_in

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


@pytest.fixture
def lab3() -> Iterator[AgentLab]:
    workdir = Path(tempfile.mkdtemp(prefix="swn-dnslb-"))  # short: unix socket paths are limited
    try:
        with agent_lab(workdir) as lab:
            yield lab
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def query(ns: str, name: str) -> list[str]:
    """The A records 127.0.0.11 answers inside `ns` (empty on no answer)."""
    q = dns.message.make_query(name, dns.rdatatype.A)
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.sendto(q.to_wire(), ("127.0.0.11", 53))
            reply = dns.message.from_wire(sock.recv(4096))
        except OSError:
            return []
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


def via_vip(ns: str, vip: str, port: int) -> str:
    """Connect from `ns` to the VIP; the backend's greeting (its name), "" on failure."""
    with socket_in(path_of(ns), socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(3.0)
        try:
            sock.connect((vip, port))
            return sock.recv(64).decode().strip()
        except OSError:
            return ""


def test_names_resolve_across_hosts_and_the_vip_spreads_over_backends(lab3: AgentLab) -> None:
    ov = Overlay(lab3)
    ov.network("ovnet")
    client = ov.container("client", 1, "ovnet", "10.1.0.2")
    web1 = ov.container("web1", 2, "ovnet", "10.1.0.3")
    web2 = ov.container("web2", 2, "ovnet", "10.1.0.4")
    ov.converged("ovnet")

    # DNS: the container on h1 finds h2's containers by name through its agent's resolver
    lab3.wait_for(lambda: query(client, "web1") == ["10.1.0.3"], "web1 resolved from h1's container")
    assert query(client, "WEB2") == ["10.1.0.4"]
    found = lab3.cli(1, "dns", "ovnet", "web2", "--from", "client")
    assert found["records"] == ["A 10.1.0.4"] and found["networks"] == ["ovnet"]

    # a vip service with two backends on h2, reached from h1's container through the VIP
    lab3.cli(
        2, "service", "create", "web", "--network", "ovnet", "--vip", "10.1.0.100",
        "--port", f"tcp:80:{TCP_PORT}", "--backend", "web1", "--backend", "web2",
    )  # fmt: skip
    lab3.wait_for(lambda: query(client, "web") == ["10.1.0.100"], "the service name resolved")
    backends = [Backend(web1, "10.1.0.3", "web1"), Backend(web2, "10.1.0.4", "web2")]
    try:

        def programmed() -> bool:
            doc = lab3.cli(1, "service", "inspect", "web", "--network", "ovnet")
            states = [b["state"] for b in doc["backend_states"]]
            return states == ["visible", "visible"] and [p["state"] for p in doc["programmed"]] == [
                "programmed"
            ]

        lab3.wait_for(programmed, "the VIP programmed in h1's container")
        seen = {via_vip(client, "10.1.0.100", 80) for _ in range(24)}
        assert seen == {"web1", "web2"}, seen
    finally:
        for b in backends:
            b.stop()
