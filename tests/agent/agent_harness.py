"""Agent processes for black-box tests, and the CLI as the only way to talk to them.

Rules: every agent is `python -m swimnet.agent run` in its own process, bound to a
127.0.0.x loopback address (Linux routes all of 127/8 to lo), with fast protocol timings
from a TOML file (`FAST_CONFIG`: the profile "local" plus [tuning] and [tables]
overrides), `--no-datapath`, its state directory and control socket in the test's
temporary directory; every process dies with the test process (PR_SET_PDEATHSIG) and is
stopped and reaped by `Cluster.close()` (SIGTERM, a bounded wait, SIGKILL: call it in a
`finally` or use the fixture). The CLI runs in-process through `run_cli` (same code as
the console script, without a Python start per call); `run_cli_process` runs the real
`python -m swimnet.agent` when exit codes of the process itself matter. Waits poll a
condition with a generous deadline; nothing asserts a duration.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from examples.pets import processes
from swimnet.agent.cli.main import run_cli

WAIT = 30.0
POLL = 0.1

FAST_CONFIG = """
profile = "local"
datapath = false
metrics = "off"
log_format = "json"

[tuning]
probe_interval = 0.2
probe_timeout = 0.1
gossip_interval = 0.05
suspicion_mult = 2
push_pull_interval = 2.0
tcp_timeout = 1.0
leave_timeout = 2.0
rejoin_interval = 2.0
join_sync_delays = [0.2, 0.5]

[tables]
reap_interval = 3.0
"""


def wait_for(condition: Callable[[], Any], *, timeout: float = WAIT, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy (returns it); AssertionError naming `what` if never."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = condition()
        except AssertionError:
            last = None
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host` (the agent binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_cli(list(args), out, err)
    return code, out.getvalue(), err.getvalue()


def run_cli_process(
    *args: str, timeout: float = 60.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swimnet.agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


class Agent:
    """One agent process (start, signals, its CLI)."""

    def __init__(
        self,
        base: Path,
        name: str,
        host: str,
        *,
        join: Sequence[str] = (),
        config: str = FAST_CONFIG,
        extra: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.host = host
        self.port = free_port(host)
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.dir / "state"
        self.socket = str(self.dir / "sock")
        self.config_path = self.dir / "agent.toml"
        self.config_path.write_text(config)
        self.join = list(join)
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "agent.log"
        self.starts = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def args(self) -> list[str]:
        out = [
            sys.executable, "-m", "swimnet.agent", "run",
            "--config", str(self.config_path),
            "--name", self.name,
            "--bind", self.address,
            "--state-dir", str(self.state_dir),
            "--socket", self.socket,
            "--no-datapath",
        ]  # fmt: skip
        for seed in self.join:
            out += ["--join", seed]
        return out + self.extra

    def start(self, *, wait: bool = True) -> Agent:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.process = subprocess.Popen(
                self.args(),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                preexec_fn=processes.child_setup(),  # dies with the test process
            )
        finally:
            log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"agent {self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            code, out, _ = cli("status", "--json", "--socket", self.socket)
            return code == 0 and json.loads(out)["ready"]

        try:
            wait_for(ready, what=f"agent {self.name} ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log of {self.name} ---\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    # -- the CLI ---------------------------------------------------------------------------------

    def cli(self, *args: str) -> tuple[int, str, str]:
        return cli(*args, "--socket", self.socket)

    def json(self, *args: str) -> Any:
        """Run a client command with --json; its answer (AssertionError if it failed)."""
        code, out, err = cli(*args, "--json", "--socket", self.socket)
        assert code == 0, f"{self.name}: {' '.join(args)} -> exit {code}: {err}"
        return json.loads(out)

    def members(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self.json("members")}

    def states(self) -> dict[str, str]:
        return {name: m["state"] for name, m in self.members().items()}

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.json("status")
        return result

    def endpoints(self, network: str | None = None) -> dict[str, dict[str, Any]]:
        args = ["endpoint", "ls", *([network] if network else [])]
        return {e["id"]: e for e in self.json(*args)["endpoints"]}

    # -- process control ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = WAIT) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=WAIT)


class Cluster:
    """Agents on 127.0.0.1, .2, .3 ...; the first is everyone's seed."""

    def __init__(self, base: Path, config: str = FAST_CONFIG) -> None:
        self.base = base
        self.config = config
        self.agents: list[Agent] = []

    def add(
        self, name: str, *, join: Sequence[str] | None = None, start: bool = True, **kwargs: Any
    ) -> Agent:
        host = f"127.0.0.{len(self.agents) + 1}"
        seeds = list(join) if join is not None else ([self.agents[0].address] if self.agents else [])
        agent = Agent(self.base, name, host, join=seeds, config=kwargs.pop("config", self.config), **kwargs)
        self.agents.append(agent)
        if start:
            agent.start()
        return agent

    def converge(self, agents: Sequence[Agent] | None = None) -> None:
        group = list(agents if agents is not None else self.agents)
        names = {a.name for a in group}

        def converged() -> bool:
            return all({n for n, s in a.states().items() if s == "alive"} >= names for a in group)

        wait_for(converged, what=f"members {sorted(names)} alive everywhere")

    def close(self) -> list[str]:
        """Stop every agent still running (SIGTERM to all, SIGKILL after `processes.GRACE`
        s), each reaped; the agents that could not be (none, normally)."""
        running = [(a.name, a.process) for a in self.agents if a.process is not None]
        return processes.stop_all(running, together=True)
