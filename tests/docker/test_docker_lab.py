"""Two real dockerds with swimnet as their network and IPAM driver (tests/docker/docker_lab.py):
containers on two hosts reach each other across the kernel overlay; the network is created on
one host and adopted on the other, a conflicting subnet refused; `docker rm` removes the
endpoint cluster-wide; agent and dockerd restarts leave nothing stale."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from docker_lab import DockerLab, docker_lab

from examples.pets.docker import IMAGE, DockerHost, docker_problem, wait_for

_reason = docker_problem()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

SUBNET = "10.42.0.0/24"


@pytest.fixture
def dlab() -> Iterator[DockerLab]:
    with docker_lab(2) as the_lab:
        yield the_lab


def create(host: DockerHost, name: str = "pets", subnet: str = SUBNET) -> str:
    return host.docker(
        "network", "create", "-d", "swimnet", "--ipam-driver", "swimnet", "--subnet", subnet, name
    ).strip()


def run(host: DockerHost, name: str, network: str = "pets", *extra: str) -> str:
    host.docker("run", "-d", "--name", name, "--network", network, *extra, IMAGE, "sleep", "100000")
    return host.docker(
        "inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}", name
    ).strip()


def pings(host: DockerHost, container: str, target: str) -> bool:
    out = host.docker("exec", container, "ping", "-c", "1", "-W", "2", target, check=False)
    return " 0% packet loss" in out


def fetch(host: DockerHost, container: str, url: str) -> str:
    return host.docker("exec", container, "wget", "-q", "-O", "-", url, check=False)


def resolves(host: DockerHost, container: str, name: str) -> str | None:
    """The address `nslookup` in the container gets for `name` (None: not found)."""
    out = host.docker("exec", container, "nslookup", "-type=a", name, check=False)
    answers = out.split(f"Name:\t{name}")[1:] if f"Name:\t{name}" in out else out.split(f"Name: {name}")[1:]
    for part in answers:
        for line in part.splitlines():
            if line.strip().startswith("Address"):
                return line.split()[-1]
    return None


def endpoint_names(host: DockerHost, network: str = "pets") -> set[str]:
    listing = host.cli("endpoint", "ls", network)
    rows = listing["endpoints"] if isinstance(listing, dict) else listing
    return {row["name"] for row in rows}


def test_containers_on_two_dockerds_reach_each_other_over_swimnet(dlab: DockerLab) -> None:
    a, b = dlab.hosts
    create(a)  # the swimnet network exists cluster-wide at once (dockerd's events)
    wait_for(lambda: b.cli("network", "inspect", "pets", check=False), "pets on b", on_fail=a.tail)
    web_ip = run(a, "web")
    create(b)  # the same command on B adopts the network
    db_ip = run(b, "db")
    assert web_ip != db_ip and {web_ip, db_ip} <= {f"10.42.0.{i}" for i in range(2, 255)}
    assert len([n for n in a.cli("network", "ls") if n["name"] == "pets"]) == 1
    wait_for(lambda: pings(a, "web", db_ip), "web pings db across hosts", on_fail=a.tail)
    assert pings(b, "db", web_ip)
    # MACs follow the network's rule
    mac = a.docker("inspect", "-f", "{{.NetworkSettings.Networks.pets.MacAddress}}", "web").strip()
    assert mac == "02:42:" + ":".join(f"{int(x):02x}" for x in web_ip.split("."))
    # names resolve across hosts (Docker's DNS forwards them to swimnet's resolver)
    wait_for(lambda: resolves(a, "web", "db") == db_ip, "db's name from web", on_fail=a.tail)
    assert resolves(b, "db", "web") == web_ip
    assert resolves(b, "db", "db") == db_ip  # a local name: Docker's own answer
    assert resolves(a, "web", "nosuchname") is None

    # a service VIP balances to Docker containers too (rules in the client's sandbox)
    b.docker("exec", "db", "sh", "-c", "mkdir -p /www && echo served-by-db > /www/index")
    b.docker("exec", "-d", "db", "httpd", "-f", "-p", "8080", "-h", "/www")
    # pins stay clear of what the IPAM drew for the containers (it draws at random)
    vip, pin = [ip for ip in (f"10.42.0.{i}" for i in range(100, 104)) if ip not in {web_ip, db_ip}][:2]
    a.cli("service", "create", "api", "--network", "pets", "--vip", vip,
          "--port", "tcp:80:8080", "--backend", "db")  # fmt: skip
    wait_for(lambda: "served-by-db" in fetch(a, "web", f"http://{vip}/index"), "the VIP", on_fail=a.tail)
    wait_for(lambda: resolves(a, "web", "api") == vip, "the service name")
    a.cli("service", "rm", "api", "--network", "pets")

    # a conflicting subnet for the same name is refused when the network is used
    create(b, "pets2", subnet="10.43.0.0/24")
    wait_for(lambda: a.cli("network", "inspect", "pets2", check=False), "pets2 on a", on_fail=b.tail)
    create(a, "pets2", subnet="10.44.0.0/24")
    refused = a.docker("run", "-d", "--name", "ya", "--network", "pets2", IMAGE, "sleep", "1", check=False)
    assert "10.43.0.0/24" in refused and "10.44.0.0/24" in refused, refused

    # --ip pins an address (from the cluster's IPAM: one another host holds is refused)
    assert run(b, "pinned", "pets", "--ip", pin) == pin
    taken = b.docker(
        "run", "-d", "--name", "dup", "--network", "pets", "--ip", web_ip, IMAGE, "sleep", "1", check=False
    )
    assert web_ip in taken, taken

    # docker stop / rm: the endpoint goes cluster-wide (and comes back with docker start)
    b.docker("stop", "-t", "1", "db")
    wait_for(lambda: "db" not in endpoint_names(a), "db gone on a after stop")
    b.docker("start", "db")
    wait_for(lambda: pings(a, "web", db_ip), "db back after start")
    b.docker("rm", "-f", "db")
    wait_for(lambda: "db" not in endpoint_names(a), "db gone on a")
    assert not pings(a, "web", db_ip)


def fdb_macs(host: DockerHost, network: str = "pets") -> set[str]:
    doc = host.cli("fdb", network)
    rows = doc["entries"] if isinstance(doc, dict) else doc
    return {row["mac"] for row in rows}


def mac_of(host: DockerHost, container: str, network: str = "pets") -> str:
    return host.docker(
        "inspect", "-f", f"{{{{.NetworkSettings.Networks.{network}.MacAddress}}}}", container
    ).strip()


def test_restarts_of_the_agent_and_of_dockerd_leave_nothing_stale(dlab: DockerLab) -> None:
    a, b = dlab.hosts
    create(a)
    web_ip = run(a, "web")
    wait_for(lambda: b.cli("network", "inspect", "pets", check=False), "pets on b")
    create(b)
    db_ip = run(b, "db")
    wait_for(lambda: pings(a, "web", db_ip), "web pings db", on_fail=a.tail)

    # the agent killed: the containers keep their overlay; restarted, it knows them again
    a.kill_agent()
    assert pings(a, "web", db_ip)
    a.start_agent(dlab.config, dlab.seed(1))
    assert pings(a, "web", db_ip) and pings(b, "db", web_ip)
    wait_for(lambda: resolves(a, "web", "db") == db_ip, "names after the restart", on_fail=a.tail)
    assert sorted(n for n in endpoint_names(a) if n == "web") == ["web"]

    # a container removed while the agent is down: gone cluster-wide once it is back
    web_mac = mac_of(a, "web")
    a.kill_agent()
    a.docker("rm", "-f", "web", check=False, timeout=180)
    a.start_agent(dlab.config, dlab.seed(1))
    wait_for(lambda: "web" not in endpoint_names(b), "web gone on b", on_fail=a.tail)
    wait_for(lambda: web_mac not in fdb_macs(b), "web's FDB entry gone on b", on_fail=b.tail)
    assert "web" not in endpoint_names(a)
    # ... and its address is free again
    assert run(a, "web2") == web_ip
    wait_for(lambda: pings(a, "web2", db_ip), "web2 pings db", on_fail=a.tail)

    # dockerd restarted: its stopped container leaves, and comes back when started
    db_mac = mac_of(b, "db")
    b.stop_dockerd()
    wait_for(lambda: "db" not in endpoint_names(a), "db gone on a", on_fail=b.tail)
    wait_for(lambda: db_mac not in fdb_macs(a), "db's FDB entry gone on a", on_fail=a.tail)
    b.start_dockerd()
    b.docker("start", "db")
    wait_for(lambda: pings(a, "web2", db_ip), "web2 pings the restarted db", on_fail=b.tail)
    assert resolves(a, "web2", "db") == db_ip
