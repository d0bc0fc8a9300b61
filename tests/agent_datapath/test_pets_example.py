"""The README's demo command, `python -m examples.pets`, end to end (with a prefix of its own,
so it never meets a demo someone runs by hand, and the lab sweep removes its leftovers):
names resolved by the agents' DNS, the service VIP spreading the client's connections over
both web containers, the overlay carrying it all."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datapath_lab import probe, sweep_stale
from pyroute2 import netns as pr_netns

from swimnet.dns.sandbox import NETNS_ETC

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

ROOT = Path(__file__).resolve().parents[2]


def run_demo(prefix: str, *args: str, timeout: float = 300) -> str:
    """`python -m examples.pets --prefix PREFIX ARGS`: its output, once it succeeded and left
    no namespace or /etc/netns directory of that prefix (any it left is removed, and fails
    the test)."""
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
        etc = [n for n in os.listdir(NETNS_ETC) if prefix in n] if os.path.isdir(NETNS_ETC) else []
        for name in etc:
            shutil.rmtree(os.path.join(NETNS_ETC, name), ignore_errors=True)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert not left, left
    assert not etc, etc
    return out


def test_the_pets_demo_runs_end_to_end() -> None:
    out = run_demo(f"dpt{os.getpid()}x{secrets.token_hex(2)}pets")
    # the addresses the agents gave (pinned or allocated), as the demo printed them
    ips = dict(re.findall(r"endpoint create petsOverlay (\w+) .*-> ([\d.]+)/\d+", out))
    assert set(ips) == {"db", "web1", "web2", "client"}, out
    found = re.search(r"created service web in petsOverlay \(vip ([\d.]+)\)", out)
    assert found is not None, out
    vip = found.group(1)
    for expected in (
        "[8/8]",
        "db A from ",  # `dns petsOverlay db --from web1`: web1's container resolves db...
        f"A {ips['db']}\n",  # ...to db's address
        "NOERROR (vip in petsOverlay)",  # the service's name is its VIP
        f"A {vip}\n",
        "(inner web1 -> db)",  # web1 (A) reached db (B) by name, across the overlay
        "(inner client -> web2)",  # the client (A) reached web2 (B) through the VIP
        f"  192.0.2.12  {ips['db']}\n",  # A's fdb: db on B
        f"  192.0.2.11  {ips['web1']}\n",  # B's fdb: web1 on A
        f"{vip} . tcp . 80 : ",  # the VIP's map in the client's namespace
        "cleaned up: processes stopped, namespaces removed",
    ):
        assert expected in out, (expected, out)
    # every command answered through the VIP by one of the web containers, by way of db
    for pattern in (
        r"client: GET cat +-> web[12]: VALUE Tom",
        r"client: LIST +-> web[12]: KEYS cat dog fish",
        r"client: 21 connections to web:80, answered by: web1 \d+, web2 \d+\n",
    ):
        assert re.search(pattern, out), (pattern, out)
    assert not re.search(r"-> web[12]: ERROR", out), out
