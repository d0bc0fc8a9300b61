"""Real `swimnet-agent` processes on the datapath tests' 3-host namespace lab.

Layout: the lab of tests/datapath/datapath_lab.py (underlay bridge, hosts p-h1..p-h3 at
192.0.2.11-13); in each host namespace one agent process, named like its host namespace
(so its sandboxes are `swn-<p-hN>-<vni>` and the lab's teardown and sweep remove them),
with its state directory and control socket under a per-test directory; the CLI reaches an
agent through its socket. Fast protocol timings come from a TOML config (`[tuning]`).

Rules: every process is started through `AgentLab`, dies with the test process
(PR_SET_PDEATHSIG: a harness killed mid-test leaves no agent behind) and is stopped by pid in
`close()` (SIGTERM, a bounded wait, SIGKILL, reaped: `examples.pets.processes`; one that
cannot be reaped fails the test), then the lab removes the namespaces; every wait is
bounded (`wait_for`) and a failure shows the agents' last log lines; traffic only flows
inside the lab's namespaces.

An agent enters its host's network namespace only (setns before exec), NOT through
`ip netns exec`: that also gives the process a private mount namespace, so the sandbox
namespaces the agent creates (bind mounts under /run/netns) would be invisible to everyone
else and would die with the agent. A real agent runs in the host's mount namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from datapath_lab import Lab, lab

from examples.pets import processes
from swimnet.datapath.netns import path_of

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
PORT = 7946
FAST = """\
[tuning]
probe_interval = 0.2
probe_timeout = 0.1
gossip_interval = 0.05
suspicion_mult = 2
suspicion_max_timeout_mult = 2
push_pull_interval = 1.0
gossip_to_the_dead_time = 10.0
rejoin_interval = 1.0
join_sync_delays = [0.2, 0.6]
leave_timeout = 1.0
tcp_timeout = 1.0
"""


class CliError(AssertionError):
    def __init__(self, argv: list[str], code: int, out: str, err: str) -> None:
        super().__init__(f"swimnet-agent {' '.join(argv)} -> exit {code}: {err.strip() or out.strip()}")
        self.code = code
        self.err = err


class AgentLab:
    def __init__(self, the_lab: Lab, workdir: Path, *, config: str = FAST) -> None:
        self.lab = the_lab
        self.dir = workdir
        self.config = workdir / "agent.toml"
        self.config.write_text(config)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }

    # -- names ------------------------------------------------------------------------------

    def name(self, host: int) -> str:
        return self.lab.hosts[host - 1]

    def socket(self, host: int) -> str:
        return str(self.dir / f"h{host}.sock")

    def state_dir(self, host: int) -> Path:
        return self.dir / f"h{host}-state"

    def log(self, host: int) -> Path:
        return self.dir / f"h{host}.log"

    def vtep(self, host: int) -> str:
        return self.lab.vteps[host - 1]

    # -- processes --------------------------------------------------------------------------

    def start(self, host: int, join: tuple[int, ...] = (1,)) -> None:
        argv = [
            sys.executable, "-m", "swimnet.agent", "run",
            "--config", str(self.config),
            "--name", self.name(host),
            "--bind", f"{self.vtep(host)}:{PORT}",
            "--state-dir", str(self.state_dir(host)),
            "--socket", self.socket(host),
            "--profile", "local",
            "--metrics", "off",
        ]  # fmt: skip
        for seed in join:
            if seed != host:
                argv += ["--join", f"{self.vtep(seed)}:{PORT}"]
        with open(self.log(host), "ab") as out:
            self.procs[host] = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=processes.child_setup(path_of(self.name(host))),  # dies with us
            )
        self.wait_for(lambda: self.status(host).get("ready"), f"agent h{host} ready", host=host)

    def kill(self, host: int, sig: int = signal.SIGKILL) -> None:
        """Stop host's agent with `sig` (SIGKILL after 20 s); AssertionError if it is not reaped."""
        problem = processes.stop(self.procs.pop(host), sig=sig, grace=20, name=f"agent h{host}")
        assert problem is None, problem

    def close(self) -> list[str]:
        """Stop every agent (SIGTERM, SIGKILL after `processes.GRACE` s), each reaped; the
        agents that could not be (none, normally)."""
        procs = [(f"agent h{host}", self.procs.pop(host)) for host in list(self.procs)]
        return processes.stop_all(procs)

    # -- the CLI ----------------------------------------------------------------------------

    def cli(self, host: int, *args: str, check: bool = True) -> Any:
        """Run `swimnet-agent --json ... --socket S` against host's agent; the parsed JSON."""
        argv = [*args, "--socket", self.socket(host), "--json"]
        done = subprocess.run(
            processes.client_argv(*argv),
            capture_output=True,
            text=True,
            timeout=processes.CLI_TIMEOUT + processes.CLI_START,  # the client gives up first
            env=self.env,
            check=False,
        )
        if done.returncode:
            if check:
                error = CliError(argv, done.returncode, done.stdout, done.stderr)
                error.add_note(f"--- h{host} log ---\n{self.tail(host)}")
                raise error
            return None
        return json.loads(done.stdout) if done.stdout.strip() else None

    def status(self, host: int) -> dict[str, Any]:
        proc = self.procs.get(host)
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"agent h{host} exited with {proc.returncode}:\n{self.tail(host)}")
        found = self.cli(host, "status", check=False)
        return found if isinstance(found, dict) else {}

    def fdb(self, host: int, network: str) -> set[tuple[str, str, str]]:
        doc = self.cli(host, "fdb", network)
        rows = doc["entries"] if isinstance(doc, dict) else doc
        return {(r["mac"], r["vtep"], r["ip"]) for r in rows}

    # -- waiting ----------------------------------------------------------------------------

    def tail(self, host: int, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log(host).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_for(
        self, probe: Callable[[], T], what: str, *, timeout: float = 30.0, host: int | None = None
    ) -> T:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(0.1)
        logs = "\n".join(
            f"--- h{h} log ---\n{self.tail(h)}" for h in ([host] if host else sorted(self.procs))
        )
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs}")


@contextlib.contextmanager
def agent_lab(workdir: Path, hosts: int = 3, *, config: str = FAST) -> Iterator[AgentLab]:
    """A namespace lab with agents on every host (h1 first, the others joining it), all
    started with the TOML `config`."""
    with lab(hosts) as the_lab:
        agents = AgentLab(the_lab, workdir, config=config)
        try:
            for host in range(1, hosts + 1):
                agents.start(host)
            yield agents
        except BaseException:
            agents.close()  # the failure is what to report
            raise
        left = agents.close()
        assert not left, left
