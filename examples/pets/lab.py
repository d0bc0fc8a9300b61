"""The pets lab: two "hosts" on one private underlay, all network namespaces on this machine.

    <p>-ul   underlay: bridge br-ul, one veth port per host        (no address, no outside link)
    <p>-A    host A: eth0 192.0.2.11/24 on the underlay, runs swimnet-agent "<p>-A"
    <p>-B    host B: eth0 192.0.2.12/24 on the underlay, runs swimnet-agent "<p>-B"
    <p>-web1, <p>-client   container namespaces (plugged in by agent A)
    <p>-web2, <p>-db       container namespaces (plugged in by agent B)
    swn-<p>-A-<vni>, swn-<p>-B-<vni>    the agents' per-network sandboxes (bridge + VXLAN)

Rules:
- nothing outside these namespaces is touched: no address or route of this machine changes,
  and all traffic stays on the private underlay;
- one run per prefix at a time (a lock file); a run that was killed leaves a run file, and
  the next run kills its processes (by pid, after checking their command line) and removes
  its namespaces before starting;
- every process is started here, dies with this process (PR_SET_PDEATHSIG) and is stopped
  by pid in `cleanup()`, which also removes every namespace, the containers' /etc/netns
  directories (their resolv.conf, written by the agents' DNS resolvers) and the work
  directory; it runs on success, failure and Ctrl-C;
- agents enter their host's network namespace only (setns before exec), not a private mount
  namespace as `ip netns exec` would give them, so the sandboxes they create are visible to
  everyone (and outlive a crashed agent, as on a real host).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from pyroute2 import IPRoute
from pyroute2 import netns as pr_netns

from examples.pets import processes
from swimnet.datapath.lb.libnft import problem as nft_problem
from swimnet.datapath.netns import kernel_support_problem
from swimnet.dns.sandbox import NETNS_ETC

ROOT = Path(__file__).resolve().parents[2]
PORT = 7946
HOSTS = {"A": "192.0.2.11", "B": "192.0.2.12"}
CONTAINERS = {"db": "B", "web1": "A", "web2": "B", "client": "A"}
"""Container -> the host whose agent plugs it in."""


class LabError(Exception):
    """The lab cannot run here, or a step failed (the message says which)."""


class Interrupts:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, except inside `shield()` (a pyroute2 call
    interrupted half-way can hang): there they are remembered and raised when it ends.
    Forked helpers (pyroute2 forks to enter namespaces) ignore them and finish their work."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.depth = 0
        self.pending = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handler)

    def ignore(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)

    def restore(self) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _handler(self, signum: int, frame: object) -> None:
        if os.getpid() != self.owner:
            return
        if self.depth:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt


def check_environment() -> str | None:
    """None when the lab can run, else why not (for a clear message)."""
    if not sys.platform.startswith("linux"):
        return "the pets lab needs Linux (network namespaces, VXLAN)"
    if os.geteuid() != 0:
        return "the pets lab needs root (it creates network namespaces): run it with sudo"
    for tool in ("ip", "bridge"):
        if shutil.which(tool) is None:
            return f"the pets lab needs iproute2 ('{tool}' not found): apt-get install iproute2"
    problem = kernel_support_problem(f"pets-probe-{os.getpid()}")
    if problem is not None:
        return f"this kernel cannot run the lab: {problem}"
    problem = nft_problem()
    if problem is not None:
        return f"the service VIP needs nftables ({problem}): apt-get install nftables"
    return None


def child_setup(netns_path: str | None, mnt_path: str | None = None) -> Callable[[], None]:
    """What a child runs between fork and exec: die with us (SIGTERM: an agent leaves the
    cluster), enter a mount namespace (if given) and a network namespace."""
    return processes.child_setup(netns_path, mnt_path, death_signal=signal.SIGTERM)


class PetsLab:
    def __init__(self, prefix: str = "pets", interrupts: Interrupts | None = None) -> None:
        self.prefix = prefix
        self.interrupts = interrupts if interrupts is not None else Interrupts()
        self.underlay = f"{prefix}-ul"
        self.hosts = {h: f"{prefix}-{h}" for h in HOSTS}
        self.lock_path = Path(tempfile.gettempdir()) / f"swimnet-{prefix}.lock"
        self.run_path = Path(tempfile.gettempdir()) / f"swimnet-{prefix}.run"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"swimnet-{prefix}-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PYTHONPATH": path}
        self._lock: IO[str] | None = None

    # -- names --------------------------------------------------------------------------------

    def container(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def socket(self, host: str) -> str:
        return str(self.workdir / f"{host}.sock")

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def ours(self, name: str) -> bool:
        """Whether a namespace name belongs to this lab (its own or its agents' sandboxes)."""
        mine = {self.underlay, *self.hosts.values(), *map(self.container, CONTAINERS)}
        return name in mine or name.startswith(tuple(f"swn-{agent}-" for agent in self.hosts.values()))

    # -- lifecycle ----------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lock; clean up after an earlier run of this prefix that was killed."""
        self._lock = open(self.lock_path, "w")  # noqa: SIM115 - held for the lab's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            held = f"{self.prefix!r} is running ({self.lock_path})"
            raise LabError(f"another pets lab with prefix {held}") from None
        if self.run_path.exists():
            self._sweep_earlier_run()
        self._save_run_file()

    def _sweep_earlier_run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            earlier = json.loads(self.run_path.read_text())
            for pid in earlier.get("pids", []):
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
                    if b"swimnet.agent" in cmdline or b"examples.pets" in cmdline:
                        os.kill(int(pid), signal.SIGKILL)
            shutil.rmtree(str(earlier.get("workdir", "")), ignore_errors=True)
        self._remove_namespaces()

    def _save_run_file(self) -> None:
        pids = [p.pid for p in self.procs.values()]
        self.run_path.write_text(json.dumps({"pids": pids, "workdir": str(self.workdir)}))

    def build(self) -> None:
        pr_netns.create(self.underlay)
        with IPRoute(netns=self.underlay, flags=0) as ul:
            ul.link("add", ifname="br-ul", kind="bridge")
            bridge = ul.link_lookup(ifname="br-ul")[0]
            for host, address in HOSTS.items():
                ns = self.hosts[host]
                pr_netns.create(ns)
                ul.link("add", ifname=f"ul-{host}", kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
                ul.link("set", index=ul.link_lookup(ifname=f"ul-{host}")[0], master=bridge, state="up")
                with IPRoute(netns=ns, flags=0) as ipr:
                    eth0 = ipr.link_lookup(ifname="eth0")[0]
                    ipr.addr("add", index=eth0, address=address, prefixlen=24)
                    ipr.link("set", index=eth0, state="up")
                    ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            ul.link("set", index=bridge, state="up")
        for name in CONTAINERS:
            pr_netns.create(self.container(name))

    def start_agent(self, host: str, join: Sequence[str] = ()) -> None:
        argv = [
            sys.executable, "-m", "swimnet.agent", "run",
            "--name", self.hosts[host],
            "--bind", f"{HOSTS[host]}:{PORT}",
            "--state-dir", str(self.workdir / f"{host}-state"),
            "--socket", self.socket(host),
            "--profile", "local",
            "--metrics", "off",
        ]  # fmt: skip
        for seed in join:
            argv += ["--join", f"{HOSTS[seed]}:{PORT}"]
        self._spawn(f"agent-{host}", argv, pr_netns.NETNS_RUN_DIR + "/" + self.hosts[host])

    def start_in(self, container: str, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Run a program inside a container namespace (`ip netns exec`)."""
        return self._spawn(name, ["ip", "netns", "exec", self.container(container), *argv], None)

    def _spawn(self, name: str, argv: list[str], netns_path: str | None) -> subprocess.Popen[bytes]:
        with open(self.log(name), "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=child_setup(netns_path),
                start_new_session=True,  # Ctrl-C reaches only us; cleanup() stops them in order
            )
        self.procs[name] = proc
        self._save_run_file()
        return proc

    def wait_exit(self, name: str, timeout: float) -> int:
        try:
            return self.procs[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"{name} did not finish within {timeout:.0f} s:\n{self.tail(name)}") from None

    def cli(self, host: str, *args: str, as_json: bool = False, check: bool = True) -> Any:
        """`swimnet-agent --socket <host's socket> ARGS` as a user would type it."""
        argv = processes.client_argv(*args, "--socket", self.socket(host), *(["--json"] if as_json else []))
        wait = processes.CLI_TIMEOUT + processes.CLI_START  # the client gives up first
        done = subprocess.run(argv, capture_output=True, text=True, timeout=wait, env=self.env, check=False)
        if done.returncode:
            if not check:
                return None
            raise LabError(f"swimnet-agent {' '.join(args)} on {host}: {done.stderr.strip() or done.stdout}")
        return json.loads(done.stdout) if as_json else done.stdout.rstrip("\n")

    def alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise LabError(f"{name} exited with code {proc.returncode}:\n{self.tail(name)}")

    def wait_for(self, probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.procs:
                if name.startswith("agent-"):
                    self.alive(name)
            found = probe()
            if found:
                return found
            time.sleep(0.1)
        logs = "\n".join(f"--- {n} ---\n{self.tail(n)}" for n in self.procs if n.startswith("agent-"))
        raise LabError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")

    def tail(self, name: str, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log(name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def cleanup(self) -> list[str]:
        """Stop every process (agents leave gracefully), remove every namespace; what failed."""
        problems: list[str] = []
        # newest first: the containers' programs, then agent B (A is still there to hear it
        # leave, so the leave is quick), then agent A
        problems += processes.stop_all(reversed(list(self.procs.items())), grace=8, kill_grace=5)
        problems += self._remove_namespaces()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if not problems:
            with contextlib.suppress(OSError):
                self.run_path.unlink()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self.lock_path.unlink()  # while still holding it
            self._lock.close()
            self._lock = None
        return problems

    def discard(self) -> None:
        """Drop the work directory of a lab that never ran (its lock was taken)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _remove_namespaces(self) -> list[str]:
        problems = []
        for name in pr_netns.listnetns():
            if self.ours(name):
                try:
                    pr_netns.remove(name)
                except OSError as exc:
                    problems.append(f"namespace {name}: {exc}")
        for name in CONTAINERS:  # an agent removes it with the last endpoint; a killed one cannot
            shutil.rmtree(os.path.join(NETNS_ETC, self.container(name)), ignore_errors=True)
        return problems

    def namespaces(self) -> list[str]:
        return sorted(n for n in pr_netns.listnetns() if self.ours(n))
