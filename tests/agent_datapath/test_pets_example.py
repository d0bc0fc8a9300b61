"""The README's demo command, `python -m examples.pets`, end to end (with a prefix of its own,
so it never meets a demo someone runs by hand, and the lab sweep removes its leftovers)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from datapath_lab import probe, sweep_stale
from pyroute2 import netns as pr_netns

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

ROOT = Path(__file__).resolve().parents[2]


def run_demo(prefix: str, *args: str, timeout: float = 180) -> str:
    """`python -m examples.pets --prefix PREFIX ARGS`: its output, once it succeeded and left
    no namespace of that prefix (any it left is removed, and fails the test)."""
    sweep_stale()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "examples.pets", "--prefix", prefix, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        left = [n for n in pr_netns.listnetns() if prefix in n]
        for name in left:
            pr_netns.remove(name)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert not left, left
    return out


def test_the_pets_demo_runs_end_to_end() -> None:
    out = run_demo(f"dpt{os.getpid()}x{secrets.token_hex(2)}pets")
    for expected in (
        "[7/7]",
        "web: GET cat                  -> VALUE Tom",
        "web: LIST                     -> KEYS cat dog fish",
        "192.0.2.11 -> 192.0.2.12 (inner 10.0.9.3 -> 10.0.9.2)",
        "02:42:0a:00:09:02  192.0.2.12  10.0.9.2",  # A's fdb: db on B
        "02:42:0a:00:09:03  192.0.2.11  10.0.9.3",  # B's fdb: web on A
        "cleaned up: processes stopped, namespaces removed",
    ):
        assert expected in out, out
