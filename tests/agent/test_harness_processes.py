"""The labs' process helpers (examples.pets.processes): a child that ignores SIGTERM is
killed and reaped, never left behind; a child dies with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from agent_harness import wait_for

from examples.pets import processes

ROOT = Path(__file__).resolve().parents[2]
DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(); time.sleep(300)"


def deaf_child() -> subprocess.Popen[bytes]:
    """A child that ignores SIGTERM (started once it said so)."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", DEAF], stdout=subprocess.PIPE, preexec_fn=processes.child_setup()
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    return proc


def gone(pid: int) -> bool:
    """Whether `pid` ended (reaped, or a zombie its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_a_child_that_ignores_sigterm_is_killed_and_reaped() -> None:
    proc = deaf_child()
    with pytest.warns(UserWarning, match="ignored signal"):
        assert processes.stop(proc, grace=0.5, name="deaf") is None
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)  # reaped: no child of that pid is left


def test_stop_all_together_shares_one_grace_and_reaps_every_child() -> None:
    procs = [(f"deaf{i}", deaf_child()) for i in range(3)]
    with pytest.warns(UserWarning):
        assert processes.stop_all(procs, grace=1.0, together=True) == []
    assert all(p.returncode == -signal.SIGKILL for _, p in procs)


def test_a_child_dies_with_the_process_that_started_it() -> None:
    """The starter is killed before any teardown could run: its child goes too."""
    script = (
        "import subprocess, sys, time\n"
        "from examples.pets import processes\n"
        "child = subprocess.Popen(['sleep', '300'], preexec_fn=processes.child_setup())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    starter = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert starter.stdout is not None
        child = int(starter.stdout.readline())
        assert not gone(child)
        starter.kill()
        starter.wait(timeout=30)
        wait_for(lambda: gone(child), what=f"the orphan {child} gone")
    finally:
        processes.stop(starter, sig=signal.SIGKILL)
