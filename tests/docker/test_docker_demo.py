"""`python -m examples.pets --docker` (what `nox -s demo` runs where dockerd is installed),
end to end, with a prefix of its own; nothing of it is left behind."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import pytest
from test_pets_example import run_demo

from examples.pets.docker import docker_problem
from swimnet.overlay import mac_from_ip

_reason = docker_problem()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


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
