"""Three agent processes on 127.0.0.1/.2/.3, driven only through the CLI (--json).

The tests of this module share one cluster (started once) and build on each other's
networks where noted; each uses its own network names so the order does not matter for
correctness, only for speed.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import Agent, Cluster, wait_for

CONFIG_WITH_METRICS = """
profile = "local"
datapath = false
log_format = "json"
[tuning]
probe_interval = 0.2
probe_timeout = 0.1
gossip_interval = 0.05
suspicion_mult = 2
push_pull_interval = 2.0
tcp_timeout = 1.0
leave_timeout = 2.0
join_sync_delays = [0.2, 0.5]
"""


@pytest.fixture(scope="module")
def trio_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Agent, Agent]]:
    cluster = Cluster(Path(tmp_path_factory.mktemp("cl")))
    try:
        a = cluster.add("a", extra=["--metrics", "127.0.0.1:0"], config=CONFIG_WITH_METRICS)
        b = cluster.add("b")
        c = cluster.add("c")
        cluster.converge()
        yield a, b, c
    finally:
        left = cluster.close()
    assert not left, left


def test_members_converge_with_addresses_and_rtt(trio_agents: tuple[Agent, Agent, Agent]) -> None:
    a, b, c = trio_agents
    for agent in (a, b, c):
        members = agent.members()
        assert set(members) == {"a", "b", "c"}
        assert {m["address"] for m in members.values()} == {a.address, b.address, c.address}
        assert all(m["state"] == "alive" and m["incarnation"] >= 1 for m in members.values())
        assert members[agent.name]["local"] and members[agent.name]["rtt_ms"] is None
    wait_for(
        lambda: all(m["rtt_ms"] is not None for n, m in a.members().items() if n != "a"), what="RTT estimates"
    )
    code, out, _ = a.cli("members")
    assert code == 0
    assert out.splitlines()[0].split() == ["Node", "Address", "Status", "Incarnation", "RTT"]
    assert any(line.startswith("b ") and "alive" in line and "ms" in line for line in out.splitlines())


def test_network_created_on_one_agent_is_visible_on_all(trio_agents: tuple[Agent, Agent, Agent]) -> None:
    a, b, c = trio_agents
    created = a.json("network", "create", "blue", "--subnet", "10.10.0.0/24", "--gateway", "10.10.0.1")
    assert created["name"] == "blue" and created["vni"] >= 4096 and created["vni_requested"] is None
    for agent in (b, c):
        found = wait_for(lambda agent=agent: {n["name"]: n for n in agent.json("network", "ls")}.get("blue"))
        assert found["subnet"] == "10.10.0.0/24" and found["gateway"] == "10.10.0.1"
        assert found["vni"] == created["vni"] and found["owner"] == "a"
    # an explicit VNI; the same VNI again is refused, as is the same name
    assert b.json("network", "create", "red", "--subnet", "10.11.0.0/24", "--vni", "5001")["vni"] == 5001
    wait_for(lambda: "red" in {n["name"] for n in c.json("network", "ls")}, what="red on c")
    code, _, err = c.cli("network", "create", "green", "--subnet", "10.12.0.0/24", "--vni", "5001")
    assert code == 1 and "vni: 5001 is used by network 'red'" in err
    code, _, err = c.cli("network", "create", "blue", "--subnet", "10.12.0.0/24")
    assert code == 1 and "already exists" in err and "field: name" in err
    assert a.log_events() and any(
        e.get("event") == "network_created" and e["node"] == "a" for e in a.log_events()
    )


def test_endpoints_on_two_agents_are_listed_with_their_vtep(trio_agents: tuple[Agent, Agent, Agent]) -> None:
    a, b, c = trio_agents
    a.json("network", "create", "ep-net", "--subnet", "10.20.0.0/24")
    wait_for(lambda: "ep-net" in {n["name"] for n in b.json("network", "ls")}, what="ep-net on b")
    ea = a.json("endpoint", "create", "ep-net", "web1", "--ip", "10.20.0.2/24")
    eb = b.json("endpoint", "create", "ep-net", "web2", "--ip", "10.20.0.3")
    assert ea["vtep"] == "127.0.0.1" and eb["vtep"] == "127.0.0.2"
    assert eb["ip"] == "10.20.0.3/24" and eb["mac"] == "02:42:0a:14:00:03"
    for agent in (a, b):
        listed = wait_for(
            lambda agent=agent: len(agent.endpoints("ep-net")) == 2 and agent.endpoints("ep-net")
        )
        assert listed[ea["id"]]["vtep"] == "127.0.0.1" and listed[ea["id"]]["owner"] == "a"
        assert listed[eb["id"]]["vtep"] == "127.0.0.2" and listed[eb["id"]]["owner"] == "b"
        assert listed[ea["id"]]["local"] == (agent is a)
    # c holds no endpoint of ep-net: like Docker, it does not know the network's endpoints
    listing = c.json("endpoint", "ls", "ep-net")
    assert listing == {"endpoints": [], "not_held": ["ep-net"]}
    inspect = c.json("network", "inspect", "ep-net")
    assert inspect["held"] is False and inspect["agents"] == ["a", "b"]
    # ... until it creates one there: then it sees everything
    ec = c.json("endpoint", "create", "ep-net", "web3", "--ip", "10.20.0.4")
    assert set(c.endpoints("ep-net")) >= {ea["id"], eb["id"], ec["id"]}
    wait_for(lambda: ec["id"] in a.endpoints("ep-net"), what="c's endpoint on a")
    assert a.endpoints("ep-net")[ec["id"]]["vtep"] == "127.0.0.3"
    # removal: only the owner can remove it; then it disappears everywhere
    code, _, err = a.cli("endpoint", "rm", ec["id"])
    assert code == 1 and "belongs to agent 'c'" in err
    assert c.json("endpoint", "rm", "web3")["removed"] == ec["id"]
    wait_for(lambda: ec["id"] not in a.endpoints("ep-net"), what="removed endpoint gone from a")
    assert c.json("endpoint", "ls", "ep-net")["not_held"] == ["ep-net"]  # c left the scope


def test_duplicate_ip_and_bad_addresses_are_refused(trio_agents: tuple[Agent, Agent, Agent]) -> None:
    a, b, c = trio_agents
    a.json("network", "create", "dup-net", "--subnet", "10.30.0.0/24", "--gateway", "10.30.0.1")
    wait_for(lambda: "dup-net" in {n["name"] for n in c.json("network", "ls")}, what="dup-net on c")
    first = a.json("endpoint", "create", "dup-net", "x1", "--ip", "10.30.0.5/24")
    # c holds nothing of dup-net yet: it joins the scope and syncs before checking
    code, out, err = c.cli("endpoint", "create", "dup-net", "x2", "--ip", "10.30.0.5/24")
    assert code == 1 and out == ""
    assert (
        "10.30.0.5 is already used in network 'dup-net'" in err
        and first["id"] in err
        and "(field: ip)" in err
    )
    assert c.json("endpoint", "ls", "dup-net")["not_held"] == ["dup-net"]  # nothing half-applied
    for bad, why in (
        ("10.31.0.5/24", "outside the network's subnet"),
        ("10.30.0.5/16", "prefix /16 differs"),
        ("10.30.0.255", "broadcast"),
        ("not-an-ip", "is not an IP address"),
    ):
        code, _, err = b.cli("endpoint", "create", "dup-net", "y", "--ip", bad)
        assert code == 1 and why in err and "(field: ip)" in err, err
    code, _, err = b.cli("endpoint", "create", "dup-net", "y", "--ip", "10.30.0.1")
    assert code == 1 and "is the gateway" in err
    code, _, err = b.cli("endpoint", "create", "no-such-net", "y", "--ip", "10.30.0.9")
    assert code == 1 and "network 'no-such-net' not found" in err
    code, _, err = b.cli("network", "create", "bad", "--subnet", "10.40.0.1/24")
    assert code == 1 and "subnet" in err and "host bits set" in err
    # the network cannot be removed while it has endpoints, from any agent
    code, _, err = c.cli("network", "rm", "dup-net")
    assert code == 1 and "has endpoints: x1 on a" in err
    a.json("endpoint", "rm", first["id"])
    wait_for(lambda: c.cli("network", "rm", "dup-net")[0] == 0, what="network removable once empty")
    wait_for(lambda: "dup-net" not in {n["name"] for n in a.json("network", "ls")}, what="removal seen by a")


def test_services_are_replicated_updated_and_removed(trio_agents: tuple[Agent, Agent, Agent]) -> None:
    a, b, _ = trio_agents
    a.json("network", "create", "svc-net", "--subnet", "10.50.0.0/24")
    wait_for(lambda: "svc-net" in {n["name"] for n in b.json("network", "ls")}, what="svc-net on b")
    e1 = a.json("endpoint", "create", "svc-net", "api-1", "--ip", "10.50.0.11")
    e2 = b.json("endpoint", "create", "svc-net", "api-2", "--ip", "10.50.0.12")
    wait_for(lambda: e1["id"] in b.endpoints("svc-net"), what="api-1 on b")
    svc = b.json(
        "service", "create", "api", "--network", "svc-net", "--vip", "10.50.0.100",
        "--port", "tcp:80:8080", "--backend", "api-1", "--backend", e2["id"],
    )  # fmt: skip
    assert svc["backends"] == [e1["id"], e2["id"]] and svc["ports"] == [
        {"protocol": "tcp", "published": 80, "target": 8080}
    ]
    seen = wait_for(lambda: {s["name"]: s for s in a.json("service", "ls")["services"]}.get("api"))
    assert seen["vip"] == "10.50.0.100" and seen["owner"] == "b"
    code, _, err = a.cli("service", "create", "api2", "--network", "svc-net", "--vip", "10.50.0.11")
    assert code == 1 and "vip: 10.50.0.11 is used by endpoint 'api-1'" in err
    code, _, err = a.cli(
        "service", "create", "api3", "--network", "svc-net", "--vip", "10.50.0.101", "--backend", "nope"
    )
    assert code == 1 and "backends: 'nope' is not an endpoint" in err
    updated = a.json("service", "update", "api", "--network", "svc-net", "--backend", e1["id"])
    assert updated["backends"] == [e1["id"]] and updated["vip"] == "10.50.0.100" and updated["owner"] == "a"
    wait_for(lambda: b.json("service", "inspect", "api")["backends"] == [e1["id"]], what="update on b")
    assert b.json("service", "rm", "api")["removed"] == "api"
    wait_for(
        lambda: a.json("service", "ls", "--network", "svc-net")["services"] == [], what="service gone on a"
    )


def test_tables_dump_status_keys_and_metrics(trio_agents: tuple[Agent, Agent, Agent]) -> None:
    a, b, _ = trio_agents
    a.json("network", "create", "diag", "--subnet", "10.60.0.0/24")
    ep = a.json("endpoint", "create", "diag", "d1", "--ip", "10.60.0.2")
    dump = a.json("tables", "diag")
    assert dump["network"] == "diag" and [x["node"] for x in dump["attachments"]] == ["a"]
    (entry,) = dump["entries"]
    assert entry["table"] == "overlay_peer" and entry["key"] == ep["id"] and entry["owner"] == "a"
    assert entry["value"]["ip"] == "10.60.0.2/24" and not entry["deleted"] and not entry["hidden"]
    cluster_dump = b.json("tables", "_cluster")
    assert any(e["key"] == "diag" and e["value"]["subnet"] == "10.60.0.0/24" for e in cluster_dump["entries"])
    code, _, err = b.cli("tables", "diag")
    assert code == 1 and "does not hold network 'diag'" in err and "agents that do: a" in err
    code, out, _ = a.cli("tables", "diag")
    assert code == 0 and "overlay_peer" in out and "live" in out
    status = a.status()
    assert status["name"] == "a" and status["joined"] and status["ready"] and status["members"]["alive"] == 3
    assert status["stats"]["packets_received"] > 0 and status["health_score"] == 0
    code, _, err = a.cli("keys", "list")
    assert code == 1 and "encryption is off" in err
    code, _, err = a.cli("fdb", "diag")
    assert code == 1 and "datapath disabled" in err
    with urllib.request.urlopen(f"http://{status['metrics']}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert 'swimnet_members{state="alive"} 3.0' in text
    assert 'swimnet_table_entries{network="diag",table="overlay_peer"} 1.0' in text
    assert "swimnet_probe_rtt_seconds_count" in text and 'swimnet_packets_total{direction="in"}' in text
    assert "swimnet_health_score 0.0" in text
    count = next(line for line in text.splitlines() if line.startswith("swimnet_probe_rtt_seconds_count"))
    assert float(count.split()[-1]) > 0
    a.json("endpoint", "rm", ep["id"])
