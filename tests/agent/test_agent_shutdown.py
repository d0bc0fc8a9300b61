"""An agent process always exits after SIGTERM, whatever is stuck (swimnet.agent.daemon.shutdown).

Each test runs tests/agent/stuck_agent.py (the daemon's `main_run`, real signals) with
something that blocks a worker thread for good, sends SIGTERM once it is stuck, and expects
the process to end within a bound; the bounds are behavioural timeouts (generous for a
loaded machine), never speed assertions. A process still running at the end is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import wait_for

from examples.pets import processes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXIT_BOUND = 40.0
"""Seconds the test waits for the exit (the daemon's own bounds are far shorter)."""


class StuckAgent:
    def __init__(self, base: Path, what: str, limit: float) -> None:
        self.base = base
        self.log_path = base / "agent.log"
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "stuck_agent.py"), str(base), what, str(limit)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=processes.child_setup(),
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[str]:
        found = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                doc: dict[str, Any] = json.loads(line)
                if "event" in doc:
                    found.append(str(doc["event"]))
        return found

    def wait_stuck(self) -> None:
        def stuck() -> bool:
            assert self.proc.poll() is None, f"the agent exited early:\n{self.log()}"
            return (self.base / "stuck").exists() and "agent_started" in self.events()

        wait_for(stuck, what="the agent running and stuck")

    def exit_code(self) -> int:
        try:
            return self.proc.wait(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            late = f"the agent did not exit {EXIT_BOUND} s after SIGTERM"
            raise AssertionError(f"{late}:\n{self.log()}") from None


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    started: list[StuckAgent] = []

    def start(what: str, limit: float) -> StuckAgent:
        agent = StuckAgent(tmp_path, what, limit)
        started.append(agent)
        return agent

    yield start
    left = processes.stop_all([("stuck agent", a.proc) for a in started], sig=signal.SIGKILL)
    assert not left, left


def test_a_datapath_call_stuck_in_the_kernel_is_abandoned_and_the_agent_leaves(spawn: Any) -> None:
    agent = spawn("datapath", 60.0)  # the watchdog is far away: the driver's own bound acts
    agent.wait_stuck()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.exit_code() == 0, agent.log()
    events = agent.events()
    assert "datapath_call_abandoned" in events, agent.log()
    assert events[-1] == "left", agent.log()  # a graceful leave, after the abandoned call


def test_a_cleanup_that_cannot_be_cancelled_meets_the_watchdog(spawn: Any) -> None:
    agent = spawn("resolvers", 2.0)
    agent.wait_stuck()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.exit_code() == 1, agent.log()
    assert "shutdown_stuck" in agent.events(), agent.log()
    assert "NEVER.wait" in agent.log() or "in wait" in agent.log()  # the stuck thread's stack


def test_a_second_sigterm_during_a_stuck_shutdown_ends_the_agent_at_once(spawn: Any) -> None:
    agent = spawn("resolvers", 600.0)  # only the second signal can end it within the bound
    agent.wait_stuck()
    agent.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "shutdown" in agent.events(), what="the shutdown begun")
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.exit_code() == 1, agent.log()
    assert "shutdown_forced" in agent.events(), agent.log()
