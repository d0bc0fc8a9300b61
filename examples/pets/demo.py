"""The pets demo, narrated: a web container on host A talks to a db container on host B over
a swimnet VXLAN overlay. See examples/pets/__init__.py for what it shows; run it with
`sudo python3 -m examples.pets`.
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
from examples.pets.lab import HOSTS, Interrupts, LabError, PetsLab, check_environment

NETWORK = "petsOverlay"
SUBNET = "10.0.9.0/24"
DB_IP, WEB_IP, DB_PORT = "10.0.9.2", "10.0.9.3", 6379
ETH_P_ALL = 0x0003
STEPS = 7


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


def run(lab: PetsLab, say: Narrator) -> None:
    say.section("Building the lab: two hosts on a private underlay, all in network namespaces")
    with lab.interrupts.shield():
        lab.build()
    say.say(f"underlay   {lab.underlay}: bridge br-ul (nothing leaves it)")
    for host, address in HOSTS.items():
        say.say(f"host {host}     {lab.hosts[host]}: eth0 {address}/24 on the underlay")
    say.say(f"containers {lab.container('web')} (to be on A), {lab.container('db')} (on B): no interface yet")

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

    say.section("Plugging the containers in: db on B, web on A")
    db_ns, web_ns = lab.container("db"), lab.container("web")
    out = lab.cli("B", "endpoint", "create", NETWORK, "db", "--ip", f"{DB_IP}/24", "--netns", db_ns)
    say.show(f"swimnet-agent endpoint create {NETWORK} db --ip {DB_IP}/24 --netns {db_ns}   (on B)", out)
    out = lab.cli("A", "endpoint", "create", NETWORK, "web", "--ip", f"{WEB_IP}/24", "--netns", web_ns)
    say.show(f"swimnet-agent endpoint create {NETWORK} web --ip {WEB_IP}/24 --netns {web_ns}   (on A)", out)
    say.say("each agent made a sandbox for the network (a bridge and a VXLAN device, in its own namespace)")
    say.say("and a veth pair into the container; the endpoint went into the replicated overlay_peer table")
    lab.wait_for(lambda: DB_IP in _fdb_ips(lab, "A"), "A's datapath to know db")
    lab.wait_for(lambda: WEB_IP in _fdb_ips(lab, "B"), "B's datapath to know web")
    say.say("A's kernel now forwards db's MAC to B's VTEP and answers ARP for db; B likewise for web")

    say.section(f"Starting db: a key-value server on {DB_IP}:{DB_PORT} inside {db_ns} (on B)")
    kv = [sys.executable, "-m", "examples.pets.kv"]
    lab.start_in("db", "db", [*kv, "serve", "--bind", f"{DB_IP}:{DB_PORT}", "--lifetime", "120"])
    lab.wait_for(lambda: "listening" in lab.tail("db"), "db to listen", timeout=20)
    say.say(lab.tail("db"))

    say.section(f"web (on A) stores and reads pets at {DB_IP}:{DB_PORT}, through the overlay")
    words = ["set", "cat=Tom", "dog=Rex", "fish=Nemo", "get", "cat", "dog", "list"]
    with lab.interrupts.shield():
        capture = Capture(lab.underlay, "ul-B")
    with capture:
        lab.start_in("web", "web", [*kv, "client", f"{DB_IP}:{DB_PORT}", *words])
        code = lab.wait_exit("web", timeout=60)
        time.sleep(0.3)
    for line in lab.tail("web").splitlines():
        say.say(line)
    if code != 0:
        raise LabError(f"web could not reach db (exit {code})")
    tcp = [f for f in capture.frames if f[5] == 6]
    if not tcp:
        raise LabError("no VXLAN-encapsulated TCP seen on the underlay")
    vnis = sorted({f[2] for f in tcp})
    pairs = sorted({f"{f[0]} -> {f[1]} (inner {f[3]} -> {f[4]})" for f in tcp})
    say.say(f"on the underlay (port ul-B of br-ul): {len(tcp)} VXLAN frames, UDP 4789, VNI {vnis}:")
    for pair in pairs:
        say.say(f"  {pair}")

    say.section("What the agents and the kernel say")
    say.show("swimnet-agent members   (on B)", lab.cli("B", "members"))
    say.show(f"swimnet-agent network inspect {NETWORK}   (on A)", lab.cli("A", "network", "inspect", NETWORK))
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
    print("swimnet pets demo: web on host A talks to db on host B over a VXLAN overlay that two")
    print("swimnet-agents program from their gossip-replicated tables (all inside network namespaces).")
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
