"""The pets demo with real Docker: a dockerd and a swimnet-agent (its network and IPAM
driver) on each of the two lab hosts; `docker network create -d swimnet` on both, db on B,
web on A, and web fetches from db by name across the VXLAN overlay.

Run it with `sudo python3 -m examples.pets --docker` (`nox -s demo` does when dockerd is
installed). The hosts are `examples.pets.docker.DockerHost`s; `main` (examples.pets.demo)
closes them before the lab's own cleanup, on success, failure and Ctrl-C.
"""

from __future__ import annotations

from typing import Protocol

from examples.pets.docker import IMAGE, PORT, DockerHost, wait_for, write_image
from examples.pets.lab import HOSTS, LabError, PetsLab
from swimnet.datapath.netns import path_of

NETWORK = "pets"
SUBNET = "10.0.9.0/24"
STEPS = 6
CONFIG = """\
profile = "local"
metrics = "off"
docker_grace = 10.0
"""


class Say(Protocol):
    def section(self, text: str) -> None: ...

    def say(self, text: str) -> None: ...

    def show(self, command: str, output: str) -> None: ...


def docker_hosts(lab: PetsLab) -> list[DockerHost]:
    """One DockerHost per pets host, under a short directory of the lab's work directory."""
    base = lab.workdir / "d"
    return [
        DockerHost(i, lab.hosts[h], address, path_of(lab.hosts[h]), base)
        for i, (h, address) in enumerate(HOSTS.items(), start=1)
    ]


def run_docker(lab: PetsLab, hosts: list[DockerHost], say: Say) -> None:
    a, b = hosts
    say.section("Building the lab: two hosts on a private underlay, all in network namespaces")
    with lab.interrupts.shield():
        lab.build()
    for host in hosts:
        say.say(f"host h{host.index}  {host.name}: eth0 {host.vtep}/24 on the underlay")

    say.section("On each host: a dockerd and a swimnet-agent serving it as network + IPAM driver")
    image = lab.workdir / "busybox.tar"
    write_image(image)
    config = lab.workdir / "docker-agent.toml"
    config.write_text(CONFIG)
    for host in hosts:
        with lab.interrupts.shield():
            host.hold()
        host.start_dockerd()
        host.docker("import", str(image), IMAGE)
        host.start_agent(config, None if host is a else f"{a.vtep}:{PORT}")
    say.say("dockerd --storage-driver vfs --iptables=false --bridge=none --dns 127.0.0.12 ...")
    say.say("swimnet-agent run ... --docker-plugin   (/run/docker/plugins/swimnet.sock, each host its own)")

    say.section(f"docker network create -d swimnet --ipam-driver swimnet --subnet {SUBNET} {NETWORK}")
    for host in hosts:
        out = host.docker(
            "network", "create", "-d", "swimnet", "--ipam-driver", "swimnet", "--subnet", SUBNET, NETWORK
        )
        say.show(f"docker network create ... {NETWORK}   (on h{host.index})", out.strip()[:12])
    say.show(
        "docker network ls --filter driver=swimnet   (on B)",
        b.docker("network", "ls", "--filter", "driver=swimnet"),
    )
    say.say("Docker tells a driver no names: the agent reads the name once dockerd has stored the network")
    wait_for(lambda: a.cli("network", "inspect", NETWORK, check=False), f"{NETWORK} in swimnet", timeout=30)
    say.show("swimnet-agent network ls   (on A)", a.cli("network", "ls", as_json=False))

    say.section("docker run: db on B (an HTTP server), web on A")
    b.docker("run", "-d", "--name", "db", "--network", NETWORK, IMAGE, "sleep", "100000")
    b.docker("exec", "db", "sh", "-c", "mkdir -p /www && echo 'Tom the cat, Rex the dog' > /www/pets")
    b.docker("exec", "-d", "db", "httpd", "-f", "-p", "8080", "-h", "/www")
    a.docker("run", "-d", "--name", "web", "--network", NETWORK, IMAGE, "sleep", "100000")
    for host, name in ((b, "db"), (a, "web")):
        ip = host.docker("inspect", "-f", f"{{{{.NetworkSettings.Networks.{NETWORK}.IPAddress}}}}", name)
        say.say(f"{name}: {ip.strip()} (from swimnet's IPAM), on h{host.index}")

    say.section("web (on A) fetches http://db:8080/pets: Docker's DNS -> swimnet's resolver -> VXLAN")
    got = ""
    for _ in range(30):
        got = a.docker("exec", "web", "wget", "-q", "-O", "-", "http://db:8080/pets", check=False)
        if "Tom" in got:
            break
    if "Tom" not in got:
        raise LabError(f"web could not fetch from db: {got.strip()}\n{a.tail()}")
    say.show("docker exec web wget -q -O - http://db:8080/pets   (on A)", got)
    say.show("docker exec web nslookup db   (on A)", a.docker("exec", "web", "nslookup", "db", check=False))

    say.section("What swimnet says")
    say.show(f"swimnet-agent endpoint ls {NETWORK}   (on A)", a.cli("endpoint", "ls", NETWORK, as_json=False))
    say.show(f"swimnet-agent fdb {NETWORK}   (on A)", a.cli("fdb", NETWORK, as_json=False))
    db_mac = b.docker(
        "inspect", "-f", f"{{{{.NetworkSettings.Networks.{NETWORK}.MacAddress}}}}", "db"
    ).strip()
    b.docker("rm", "-f", "db")
    say.say("docker rm -f db (on B): its endpoint leaves the cluster, A's FDB forgets it")
    wait_for(lambda: db_mac not in a.cli("fdb", NETWORK, as_json=False), "A's FDB to forget db", timeout=30)
    say.show(f"swimnet-agent fdb {NETWORK}   (on A)", a.cli("fdb", NETWORK, as_json=False))
