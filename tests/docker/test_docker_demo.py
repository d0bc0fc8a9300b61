"""`python -m examples.pets --docker` (what `nox -s demo` runs where dockerd is installed),
end to end and interrupted, with a prefix of its own; nothing of it is left behind."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from datapath_lab import sweep_stale
from pyroute2 import netns as pr_netns
from test_pets_example import run_demo

from examples.pets.docker import docker_problem
from swimnet.overlay import mac_from_ip

_reason = docker_problem()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

ROOT = Path(__file__).resolve().parents[2]


def test_the_docker_pets_demo_runs_end_to_end() -> None:
    prefix = f"dpt{os.getpid()}x{secrets.token_hex(2)}dk"
    out = run_demo(prefix, "--docker", timeout=300)
    found = re.search(r"db: (10\.0\.9\.\d+) \(from swimnet's IPAM\), on h2", out)
    assert found, out
    db = found.group(1)
    fdb_row = f"{mac_from_ip(db)}  192.0.2.12  {db}"  # A's fdb: db on B
    for expected in (
        "[6/6]",
        "Tom the cat, Rex the dog",
        f"Address: {db}",
        fdb_row,
        "cleaned up: processes stopped, namespaces removed",
    ):
        assert expected in out, out
    assert out.count(fdb_row) == 1, out  # not in the last fdb, after docker rm
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert not [line for line in processes.splitlines() if prefix in line]


def test_ctrl_c_in_the_middle_of_the_docker_demo_leaves_nothing() -> None:
    """SIGINT once the dockerds run (Ctrl-C): the demo removes its containers, daemons, mount
    namespaces, namespaces and work directory, and exits 130."""
    sweep_stale()
    holders = _holders()
    prefix = f"dpt{os.getpid()}x{secrets.token_hex(2)}dc"
    argv = [sys.executable, "-m", "examples.pets", "--docker", "--prefix", prefix]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # until the step after the dockerds and agents started
            seen.append(line)
            if line.startswith("[3/6]"):
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        left = [n for n in pr_netns.listnetns() if prefix in n]
        for name in left:
            pr_netns.remove(name)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    assert "cleaned up: processes stopped, namespaces removed" in out, out
    assert not left, left
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    assert not [line for line in processes.splitlines() if prefix in line]
    assert _holders() <= holders  # no mount namespace holder left


def _holders() -> set[int]:
    """The pids of the Docker lab hosts' mount namespace holders (`sleep 100000`)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline == b"sleep\x00100000\x00":
                found.add(int(entry))
    return found
