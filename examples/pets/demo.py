"""The pets demo, narrated: web containers on hosts A and B reach a db container on B by
name, and a client on A reaches them through the service `web`'s VIP, by the service's
name, over a swimnet VXLAN overlay. See examples/pets/__init__.py for what it shows; run it
with `sudo python3 -m examples.pets`.
"""

from __future__ import annotations

import argparse
import functools
import socket
import struct
import subprocess
import sys
import threading
import time

from examples.pets.docker import DockerError, docker_problem
from examples.pets.docker_demo import STEPS as DOCKER_STEPS
from examples.pets.docker_demo import docker_hosts, run_docker
from examples.pets.lab import CONTAINERS, HOSTS, Interrupts, LabError, PetsLab, check_environment

NETWORK = "petsOverlay"
SUBNET = "10.0.9.0/24"
DB_PORT, WEB_PORT = 6379, 8080
ETH_P_ALL = 0x0003
STEPS = 8


class Narrator:
    def __init__(self, steps: int = STEPS) -> None:
        self.t0 = time.monotonic()
        self.step = 0
        self.steps = steps

    def section(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}/{self.steps}] {text}  (t={time.monotonic() - self.t0:.1f}s)", flush=True)

    def say(self, text: str) -> None:
        print(f"      {text}", flush=True)

    def show(self, command: str, output: str) -> None:
        print(f"      $ {command}", flush=True)
        for line in output.splitlines() or ["(nothing)"]:
            print(f"        {line}", flush=True)


def _members_alive(lab: PetsLab, host: str, count: int) -> bool:
    rows = lab.cli(host, "members", as_json=True, check=False) or []
    return sum(1 for m in rows if m.get("state") == "alive") == count


def _knows_network(lab: PetsLab, host: str) -> bool:
    doc = lab.cli(host, "network", "ls", as_json=True, check=False) or []
    rows = doc["networks"] if isinstance(doc, dict) else doc
    return any(n.get("name") == NETWORK for n in rows)


def _fdb_ips(lab: PetsLab, host: str) -> set[str]:
    doc = lab.cli(host, "fdb", NETWORK, as_json=True, check=False) or {}
    rows = doc.get("entries", []) if isinstance(doc, dict) else doc
    return {r.get("ip", "") for r in rows}


class Capture:
    """VXLAN frames seen on one underlay bridge port while the client runs (AF_PACKET)."""

    def __init__(self, underlay: str, port: str) -> None:
        from swimnet.datapath.netns import path_of, socket_in

        self.sock = socket_in(path_of(underlay), socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((port, ETH_P_ALL))
        self.sock.settimeout(0.2)
        self.frames: list[tuple[str, str, int, str, str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Capture:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.frames) < 10_000:
            try:
                frame = self.sock.recv(65535)
            except OSError:
                continue
            parsed = _vxlan(frame)
            if parsed is not None:
                self.frames.append(parsed)


def _vxlan(frame: bytes) -> tuple[str, str, int, str, str, int] | None:
    """(outer src, outer dst, VNI, inner src, inner dst, inner IP protocol) of a VXLAN frame."""
    if len(frame) < 14 + 20 + 8 + 8 + 14 + 20 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    udp = 14 + (frame[14] & 0x0F) * 4
    (dport,) = struct.unpack("!H", frame[udp + 2 : udp + 4])
    if dport != 4789:
        return None
    vni = int.from_bytes(frame[udp + 12 : udp + 15], "big")
    inner = udp + 16 + 14
    if frame[inner - 2 : inner] != b"\x08\x00":
        return None
    return (
        socket.inet_ntoa(frame[26:30]),
        socket.inet_ntoa(frame[30:34]),
        vni,
        socket.inet_ntoa(frame[inner + 12 : inner + 16]),
        socket.inet_ntoa(frame[inner + 16 : inner + 20]),
        frame[inner + 9],
    )


def _plug(lab: PetsLab, say: Narrator, container: str) -> str:
    """`endpoint create` for a container on its host; its address (without the prefix)."""
    host, ns = CONTAINERS[container], lab.container(container)
    args = ["endpoint", "create", NETWORK, container, "--netns", ns]
    doc = lab.cli(host, *args, as_json=True)
    say.say(f"$ swimnet-agent {' '.join(args)}   (on {host})  -> {doc['ip']}")
    return str(doc["ip"]).split("/")[0]


def _programmed(lab: PetsLab, host: str, netns: str) -> bool:
    doc = lab.cli(host, "service", "inspect", "web", "--network", NETWORK, as_json=True, check=False) or {}
    states = [b.get("state") for b in doc.get("backend_states", [])]
    done = [
        p for p in doc.get("programmed") or [] if p.get("netns") == netns and p.get("state") == "programmed"
    ]
    return states == ["visible", "visible"] and bool(done)


def _resolves(lab: PetsLab, host: str, name: str, source: str, want: str) -> bool:
    doc = lab.cli(host, "dns", NETWORK, name, "--from", source, as_json=True, check=False) or {}
    return f"A {want}" in doc.get("records", [])


def run(lab: PetsLab, say: Narrator) -> None:
    say.section("Building the lab: two hosts on a private underlay, all in network namespaces")
    with lab.interrupts.shield():
        lab.build()
    say.say(f"underlay   {lab.underlay}: bridge br-ul (nothing leaves it)")
    for host, address in HOSTS.items():
        mine = ", ".join(lab.container(c) for c, h in CONTAINERS.items() if h == host)
        say.say(f"host {host}     {lab.hosts[host]}: eth0 {address}/24 on the underlay; containers {mine}")

    say.section("Starting swimnet-agent on each host: B joins A, the SWIM cluster forms")
    lab.start_agent("A")
    lab.wait_for(lambda: lab.cli("A", "status", as_json=True, check=False), "agent A to answer")
    lab.start_agent("B", join=["A"])
    for host in HOSTS:
        lab.wait_for(functools.partial(_members_alive, lab, host, 2), f"agent {host} to see 2 members alive")
    say.say("each: python -m swimnet.agent run --name ... --bind <eth0>:7946 --socket ... --profile local")
    say.say(f"the CLI talks to an agent over its control socket: '(on A)' = --socket {lab.socket('A')}")
    say.show("swimnet-agent members   (on A)", lab.cli("A", "members"))

    say.section(f"Creating the overlay network {NETWORK} on A; B learns it by gossip")
    out = lab.cli("A", "network", "create", NETWORK, "--subnet", SUBNET)
    say.show(f"swimnet-agent network create {NETWORK} --subnet {SUBNET}   (on A)", out)
    lab.wait_for(lambda: _knows_network(lab, "B"), f"agent B to learn {NETWORK}")
    say.show("swimnet-agent network ls   (on B)", lab.cli("B", "network", "ls"))

    say.section("Plugging the containers in: db and web2 on B, web1 and client on A")
    ips = {c: _plug(lab, say, c) for c in CONTAINERS}
    say.say("each agent made a sandbox for the network (a bridge and a VXLAN device, in its own namespace),")
    say.say("a veth pair into each container and a DNS resolver at 127.0.0.11 inside it; the endpoints")
    say.say("went into the replicated overlay_peer table")
    lab.wait_for(
        lambda: {ips["db"], ips["web2"]} <= _fdb_ips(lab, "A"), "A's datapath to know B's containers"
    )
    lab.wait_for(
        lambda: {ips["web1"], ips["client"]} <= _fdb_ips(lab, "B"), "B's datapath to know A's containers"
    )

    say.section("A service: web = web1 + web2 behind a virtual IP, port 80 -> 8080")
    args = [
        "service", "create", "web", "--network", NETWORK,
        "--port", f"tcp:80:{WEB_PORT}", "--backend", "web1", "--backend", "web2",
    ]  # fmt: skip
    say.show(f"swimnet-agent {' '.join(args)}   (on A)", lab.cli("A", *args))
    vip = lab.cli("A", "service", "inspect", "web", "--network", NETWORK, as_json=True)["vip"]
    say.say(f"the network's IPAM gave the service its VIP, {vip}, as it gave each container its address")
    client_ns = lab.container("client")
    lab.wait_for(lambda: _programmed(lab, "A", client_ns), "the VIP's rules in the client's namespace")
    lab.wait_for(lambda: _resolves(lab, "B", "db", "web2", ips["db"]), "db's name on B")
    lab.wait_for(lambda: _resolves(lab, "A", "db", "web1", ips["db"]), "db's name on A")
    lab.wait_for(lambda: _resolves(lab, "A", "web", "client", vip), "web's name on A")
    say.say("every container attached to the network got nftables rules: VIP:80 -> a random backend:8080")
    say.show(
        "swimnet-agent dns petsOverlay web --from client   (on A)",
        lab.cli("A", "dns", NETWORK, "web", "--from", "client"),
    )
    say.show(
        "swimnet-agent dns petsOverlay db --from web1   (on A)",
        lab.cli("A", "dns", NETWORK, "db", "--from", "web1"),
    )

    say.section(
        f"Starting db (on B) on :{DB_PORT}, and web1 (A), web2 (B) on :{WEB_PORT}, which find db by name"
    )
    kv = [sys.executable, "-m", "examples.pets.kv"]
    lab.start_in("db", "db", [*kv, "serve", "--bind", f"{ips['db']}:{DB_PORT}", "--lifetime", "120"])
    for web in ("web1", "web2"):
        argv = ["web", "--bind", f"{ips[web]}:{WEB_PORT}", "--name", web, "--db", f"db:{DB_PORT}"]
        lab.start_in(web, web, [*kv, *argv, "--lifetime", "120"])
    for name in ("db", "web1", "web2"):

        def listening(name: str = name) -> bool:
            return "listening" in lab.tail(name)

        lab.wait_for(listening, f"{name} to listen", timeout=30)
        say.say(lab.tail(name))
    say.say(f"web1 and web2 run `kv web --db db:{DB_PORT}`: the name, not an address")

    say.section("The client (on A) stores and reads pets at web:80, by the service's name")
    words = ["set", "cat=Tom", "dog=Rex", "fish=Nemo", "get", "cat", "dog", "fish", "list"]
    with lab.interrupts.shield():
        capture = Capture(lab.underlay, "ul-B")
    with capture:
        lab.start_in("client", "client", [*kv, "client", "web:80", "--each", "--repeat", "3", *words])
        code = lab.wait_exit("client", timeout=90)
        time.sleep(0.3)
    lines = lab.tail("client", lines=200).splitlines()
    for line in lines[: len(words) - 2] + lines[-1:]:
        say.say(line)
    if code != 0:
        raise LabError(f"the client could not reach web (exit {code})")
    summary = lines[-1] if lines else ""
    if "web1" not in summary or "web2" not in summary:
        raise LabError(f"the VIP did not spread the connections over both backends: {summary}")
    tcp = [f for f in capture.frames if f[5] == 6]
    if not tcp:
        raise LabError("no VXLAN-encapsulated TCP seen on the underlay")
    vnis = sorted({f[2] for f in tcp})
    who = {ip: name for name, ip in ips.items()}
    pairs = sorted({f"{f[0]} -> {f[1]} (inner {who.get(f[3], f[3])} -> {who.get(f[4], f[4])})" for f in tcp})
    say.say(f"on the underlay (port ul-B of br-ul): {len(tcp)} VXLAN frames, UDP 4789, VNI {vnis}:")
    for pair in pairs:
        say.say(f"  {pair}")

    say.section("What the agents and the kernel say")
    say.show("swimnet-agent members   (on B)", lab.cli("B", "members"))
    say.show(f"swimnet-agent network inspect {NETWORK}   (on A)", lab.cli("A", "network", "inspect", NETWORK))
    say.show("swimnet-agent service inspect web   (on A)", lab.cli("A", "service", "inspect", "web"))
    for host in HOSTS:
        say.show(f"swimnet-agent fdb {NETWORK}   (on {host})", lab.cli(host, "fdb", NETWORK))
    vni = lab.cli("A", "network", "inspect", NETWORK, as_json=True)["vni"]
    sandbox = f"swn-{lab.hosts['A']}-{vni}"
    fdb = _tool("bridge", "-n", sandbox, "fdb", "show", "dev", "vxlan0")
    say.show(
        f"bridge -n {sandbox} fdb show dev vxlan0 | grep self",
        "\n".join(line for line in fdb.splitlines() if " self" in line),
    )
    say.show(
        f"ip -n {sandbox} neigh show dev vxlan0", _tool("ip", "-n", sandbox, "neigh", "show", "dev", "vxlan0")
    )
    maps = [
        line.strip()
        for i in range(2)
        for line in _tool(
            "ip", "netns", "exec", client_ns, "nft", "list", "map", "ip", "swimnet", f"backend-{i}"
        ).splitlines()
        if "elements" in line
    ]
    say.show(
        f"ip netns exec {client_ns} nft list map ip swimnet backend-0 (and -1) | grep elements",
        "\n".join(maps),
    )


def _tool(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.pets", description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", default="pets", help="prefix of every namespace name (default: pets)")
    parser.add_argument("--docker", action="store_true", help="real dockerds with swimnet as their driver")
    args = parser.parse_args(argv)
    interrupts = Interrupts()
    interrupts.install()
    try:
        with interrupts.shield():
            problem = check_environment() or (docker_problem() if args.docker else None)
    except KeyboardInterrupt:
        return 130
    if problem is not None:
        print(f"pets: {problem}", file=sys.stderr)
        return 1
    print("swimnet pets demo: a client reaches the service web (two containers behind a VIP), which")
    print("reaches db by name, over a VXLAN overlay, VIP rules and DNS resolvers that two swimnet-agents")
    print("program from their gossip-replicated tables (all inside network namespaces).")
    if args.docker:
        print("Docker mode: each host runs a dockerd whose network and IPAM driver is swimnet.")
    say = Narrator(DOCKER_STEPS if args.docker else STEPS)
    lab = PetsLab(args.prefix, interrupts)
    hosts = docker_hosts(lab) if args.docker else []
    acquired = False
    code = 1
    try:
        with interrupts.shield():
            lab.acquire()
        acquired = True
        if args.docker:
            run_docker(lab, hosts, say)
        else:
            run(lab, say)
        code = 0
    except KeyboardInterrupt:
        print("\npets: interrupted", file=sys.stderr)
        code = 130
    except (LabError, DockerError) as exc:
        print(f"\npets: failed: {exc}", file=sys.stderr)
    finally:
        interrupts.ignore()  # nothing stops the cleanup
        if acquired:
            problems = [p for host in hosts for p in host.close()]  # before the namespaces go
            problems += lab.cleanup()
            left = lab.namespaces()
            if problems or left:
                print(f"\npets: cleanup incomplete: {problems} {left}", file=sys.stderr)
                code = code or 1
            else:
                took = time.monotonic() - say.t0
                print(f"\ncleaned up: processes stopped, namespaces removed (t={took:.1f}s)")
        else:
            lab.discard()
        interrupts.restore()
    return code
