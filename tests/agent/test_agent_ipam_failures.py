"""The IPAM with a failed agent (real agent processes on loopback, SIGKILL): its endpoints'
addresses stay reserved while its entries are hidden, a claim that needs its vote gives up
after the bounded wait naming it (503), and once the tables reap it its addresses and
blocks are free again. Waits poll a condition with generous deadlines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import FAST_CONFIG, Cluster, wait_for

REAP = 30.0
CONFIG = FAST_CONFIG.replace("reap_interval = 3.0", f"reap_interval = {REAP}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, config=CONFIG)
    try:
        yield c
    finally:
        left = c.close()
    assert not left, left


def test_a_failed_agents_addresses_stay_reserved_until_reaped_and_claims_wait_for_it(
    cluster: Cluster,
) -> None:
    assert "reap_interval" in CONFIG and f"{REAP}" in CONFIG
    a = cluster.add("a")
    b = cluster.add("b")
    cluster.converge()
    a.json("network", "create", "n", "--subnet", "10.5.0.0/24", "--gateway", "10.5.0.1")
    wait_for(lambda: "n" in {x["name"] for x in b.json("network", "ls")}, what="network on b")
    held = b.json("endpoint", "create", "n", "bep")["ip"].split("/")[0]
    mine = a.json("endpoint", "create", "n", "aep")["ip"].split("/")[0]
    assert held != mine
    b.kill()
    wait_for(lambda: a.states().get("b") not in ("alive", "suspect"), what="b failed on a")
    # its endpoint is hidden, its address reserved: pinning it is a conflict naming the holder
    code, _, err = a.cli("endpoint", "create", "n", "thief", "--ip", held)
    assert code == 1 and "taken" in err and "bep" in err, err
    # a first claim in a new network needs b's vote: bounded wait, then 503 naming b
    a.json("network", "create", "m", "--subnet", "10.6.0.0/24")
    code, _, err = a.cli("endpoint", "create", "m", "first")
    assert code == 1 and "waits for b" in err and "gave up after 10 s" in err, err
    assert a.json("endpoint", "ls", "m")["endpoints"] == []
    # once the tables reap b, its address and its blocks are free, and nobody waits for it
    def reaped() -> bool:
        dump = a.json("tables", "_cluster")
        return all(x["node"] != "b" for x in dump["attachments"])

    wait_for(reaped, timeout=REAP + 60, what="b reaped by a's tables")
    taken = a.json("endpoint", "create", "n", "reuse", "--ip", held)
    assert taken["ip"].split("/")[0] == held
    assert a.json("endpoint", "create", "m", "first")["ip"].startswith("10.6.0.")
