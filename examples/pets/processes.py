"""Child processes of the labs (the pets lab, the test harnesses): started so they die
with their starter, stopped by pid in bounded time.

Rules:
- `child_setup` is what a child runs between fork and exec: it asks the kernel to send it
  SIGKILL when its starter dies (PR_SET_PDEATHSIG; a harness killed mid-test leaves no
  orphan behind), then enters a mount namespace and a network namespace if given;
- `stop` asks a child to exit (SIGTERM by default), waits at most `grace` seconds, then
  SIGKILLs it (a warning says the child ignored the signal) and waits at most
  `kill_grace` more; the child is reaped either way unless it cannot die (a process stuck
  in the kernel): that is the problem it returns, never an exception, so a teardown goes
  on with the other children;
- `stop_all` stops several children, each to its bounds, in the order given or all
  together, and returns every problem;
- a `swimnet-agent` client command (`client_argv`) gets `--timeout CLI_TIMEOUT`, and a lab
  waits for its process `CLI_TIMEOUT + CLI_START` seconds: the client always gives up first,
  with its own message, and a lab never waits on a client longer than the client waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1
GRACE = 5.0
"""Seconds a child has to exit after SIGTERM (an agent leaves the cluster in about one)."""
KILL_GRACE = 10.0
"""Seconds to reap a child after SIGKILL."""
CLI_TIMEOUT = 60.0
"""Seconds a client command may wait for the agent's answer (its `--timeout`)."""
CLI_START = 15.0
"""Seconds added to CLI_TIMEOUT for the client process's own start and exit (Python on a
loaded machine): how long a lab waits for a client process before it kills it."""
_libc = ctypes.CDLL(None, use_errno=True)
Process = subprocess.Popen[bytes] | subprocess.Popen[str]


def child_setup(
    netns_path: str | None = None, mnt_path: str | None = None, *, death_signal: int = signal.SIGKILL
) -> Callable[[], None]:
    """The `preexec_fn` of a child: die with us (`death_signal`), enter a mount namespace (if
    given) and a network namespace (if given). The starter must be the main thread: the
    kernel sends the death signal when the thread that forked the child ends."""

    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, int(death_signal))
        for path, kind in ((mnt_path, CLONE_NEWNS), (netns_path, CLONE_NEWNET)):
            if path is None:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                if _libc.setns(fd, kind) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns({path}): {os.strerror(code)}")
            finally:
                os.close(fd)

    return setup


def client_argv(*args: str) -> list[str]:
    """The command line of `swimnet-agent ARGS` as a lab runs it (with `--timeout`)."""
    return [sys.executable, "-m", "swimnet.agent", *args, "--timeout", f"{CLI_TIMEOUT:g}"]


def stop(
    proc: Process,
    *,
    sig: int = signal.SIGTERM,
    grace: float = GRACE,
    kill_grace: float = KILL_GRACE,
    name: str = "",
) -> str | None:
    """Stop `proc` (see the module rules): None once it is reaped, else what went wrong."""
    if proc.poll() is not None:
        return None
    proc.send_signal(sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    return _kill(proc, name, sig, grace, kill_grace)


def stop_all(
    procs: Iterable[tuple[str, Process]],
    *,
    sig: int = signal.SIGTERM,
    grace: float = GRACE,
    kill_grace: float = KILL_GRACE,
    together: bool = False,
) -> list[str]:
    """Stop every (name, process); the problems (see `stop`). One after the other, in the
    order given, or `together`: the signal to all first, then each waited for (the grace
    runs for all at once)."""
    todo = list(procs)
    if not together:
        found = [stop(proc, sig=sig, grace=grace, kill_grace=kill_grace, name=name) for name, proc in todo]
        return [problem for problem in found if problem is not None]
    for _, proc in todo:
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + grace
    for _, proc in todo:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    found = [_kill(proc, name, sig, grace, kill_grace) for name, proc in todo]
    return [problem for problem in found if problem is not None]


def _kill(proc: Process, name: str, sig: int, grace: float, kill_grace: float) -> str | None:
    """SIGKILL `proc` if it still runs after `sig` and `grace`; None once it is reaped."""
    if proc.poll() is not None:
        return None
    label = f"{name or proc.args!r} (pid {proc.pid})"
    proc.kill()
    try:
        proc.wait(timeout=kill_grace)
    except subprocess.TimeoutExpired:
        return f"{label} did not exit {grace:g} s after signal {sig} nor {kill_grace:g} s after SIGKILL"
    if sig != signal.SIGKILL:
        warnings.warn(f"{label} ignored signal {sig} for {grace:g} s: killed", stacklevel=3)
    return None
