"""An agent's life seen from the others: graceful leave, crash, restart with its state.

Each test starts its own agent processes (127.0.0.x) and drives them through the CLI.
"""

from __future__ import annotations

import json
import signal

from agent_harness import Cluster, wait_for


def test_sigterm_is_a_graceful_leave_and_exit_0(cluster: Cluster) -> None:
    a = cluster.add("a")
    b = cluster.add("b")
    cluster.converge()
    a.json("network", "create", "t-net", "--subnet", "10.70.0.0/24")
    wait_for(lambda: "t-net" in {n["name"] for n in b.json("network", "ls")}, what="network on b")
    a.json("endpoint", "create", "t-net", "keep", "--ip", "10.70.0.2")
    eb = b.json("endpoint", "create", "t-net", "goes", "--ip", "10.70.0.3")
    wait_for(lambda: eb["id"] in a.endpoints("t-net"), what="b's endpoint on a")
    b.json("service", "create", "web", "--network", "t-net", "--vip", "10.70.0.100", "--backend", "keep")
    wait_for(lambda: a.json("service", "ls")["services"], what="b's service on a")
    b.signal(signal.SIGTERM)
    assert b.wait_exit() == 0
    wait_for(lambda: a.states().get("b") == "left", what="b left, as seen by a")
    assert eb["id"] not in a.endpoints("t-net")  # a leaving member's entries go at once
    # ... but the service it defined belongs to the cluster: a adopts it
    adopted = wait_for(lambda: {s["name"]: s for s in a.json("service", "ls")["services"]}.get("web"))
    assert adopted["owner"] == "a" and adopted["vip"] == "10.70.0.100"
    events = [e for e in b.log_events() if e.get("event") in ("shutdown", "leaving", "left")]
    assert [e["event"] for e in events] == ["shutdown", "leaving", "left"] and events[0][
        "signal"
    ] == "SIGTERM"
    assert not (b.dir / "sock").exists()  # the control socket is removed
    joined = [e for e in a.log_events() if e.get("event") == "member_left"]
    assert joined and joined[0]["member"] == "b" and joined[0]["node"] == "a"


def test_sigkill_dead_then_restart_as_the_same_node(cluster: Cluster) -> None:
    a = cluster.add("a")
    b = cluster.add("b")
    c = cluster.add("c")
    cluster.converge()
    # c creates the network (its definition must outlive c) and an endpoint in it
    c.json("network", "create", "k-net", "--subnet", "10.80.0.0/24", "--vni", "6000")
    wait_for(lambda: "k-net" in {n["name"] for n in a.json("network", "ls")}, what="network on a")
    ea = a.json("endpoint", "create", "k-net", "ka", "--ip", "10.80.0.2")
    ec = c.json("endpoint", "create", "k-net", "kc", "--ip", "10.80.0.3")
    wait_for(lambda: ec["id"] in a.endpoints("k-net"), what="c's endpoint on a")
    incarnation = a.members()["c"]["incarnation"]

    c.kill()  # SIGKILL: no leave
    for other in (a, b):
        wait_for(lambda other=other: other.states().get("c") == "dead", what=f"c dead on {other.name}")
    wait_for(lambda: ec["id"] not in a.endpoints("k-net"), what="c's endpoint hidden on a")
    # hidden first, then reaped (reap_interval = 3 s in the test configuration)
    wait_for(
        lambda: all(e["key"] != ec["id"] for e in a.json("tables", "k-net")["entries"]),
        what="c's entry reaped from a's table",
    )
    # the network c defined was adopted by a survivor, so it is still there
    networks = {n["name"]: n for n in b.json("network", "ls")}
    assert (
        "k-net" in networks and networks["k-net"]["vni"] == 6000 and networks["k-net"]["owner"] in ("a", "b")
    )

    c.start()  # same name, same state directory, same address
    wait_for(lambda: a.states().get("c") == "alive", what="c alive again on a")
    again = a.members()["c"]
    assert again["incarnation"] > incarnation and again["address"] == c.address
    assert c.status()["incarnation"] == again["incarnation"]
    state = json.loads((c.state_dir / "node.json").read_text())
    assert state["name"] == "c" and state["incarnation"] >= again["incarnation"]
    # its endpoint is re-published under the same id, with its VTEP
    seen = wait_for(lambda: a.endpoints("k-net").get(ec["id"]), what="c's endpoint back on a")
    assert seen["name"] == "kc" and seen["vtep"] == "127.0.0.3" and seen["owner"] == "c"
    assert set(c.endpoints("k-net")) == {ea["id"], ec["id"]}
    assert [e["event"] for e in c.log_events() if e.get("event") == "endpoints_restored"] == [
        "endpoints_restored"
    ]


def test_a_lone_agent_restarts_with_its_network_and_endpoints(cluster: Cluster) -> None:
    solo = cluster.add("solo")
    solo.json("network", "create", "s-net", "--subnet", "10.90.0.0/24")
    ep = solo.json("endpoint", "create", "s-net", "s1", "--ip", "10.90.0.7")
    solo.signal(signal.SIGINT)
    assert solo.wait_exit() == 0
    solo.start()
    assert {n["name"] for n in solo.json("network", "ls")} == {"s-net"}  # re-published from its state
    assert solo.endpoints("s-net")[ep["id"]]["ip"] == "10.90.0.7/24"
    assert solo.status()["incarnation"] == 2
