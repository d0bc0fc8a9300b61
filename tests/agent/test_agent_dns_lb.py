"""The service load balancer and the embedded DNS as the daemon wires them, in-process with
the in-memory datapath driver: services in the driver's snapshot, `service inspect`'s
backend states and programmed namespaces, the names index and the `dns` command, the
resolver pool's attach / detach (a resolver that cannot start is counted, never fatal),
and the DNS metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio
from agent_harness import cli
from prometheus_client import generate_latest
from test_agent_inprocess import (
    Drivers,
    eventually,
    raw_http,
    run_cli_fail,
    run_cli_json,
    settings_for,
    start,
)

from swimnet.agent.daemon.metrics import registry_for
from swimnet.config import format_address
from swimnet.dns import resolve
from swimnet.overlay.snapshot import ServiceSpec


async def test_services_reach_the_driver_and_names_resolve(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        seed = format_address(a.node.address)
        b = await start(nursery, settings_for(tmp_path, "b", join=(seed,)), drivers)
        da = drivers.by_name["a"]
        await eventually(lambda: len(b.node.members()) == 2 and b.overlay.cluster_synced, "b joined")
        await run_cli_json(a, "network", "create", "dp", "--subnet", "10.1.0.0/24")
        await eventually(lambda: b.overlay.view.network("dp") is not None, "network on b")

        # a resolver that cannot start is counted, the endpoint stays
        pool = drivers.pools["a"]
        pool.fail.add("nons-ctr1")
        e1 = await run_cli_json(
            a, "endpoint", "create", "dp", "c1", "--ip", "10.1.0.2", "--netns", "nons-ctr1"
        )
        assert a.overlay.stats["dns_attach_failures"] == 1 and e1["id"] in da.attached
        e2 = await run_cli_json(b, "endpoint", "create", "dp", "c2", "--ip", "10.1.0.3")
        await eventually(lambda: any(r[1] == e2["id"] for r in da.last.remote), "c2 on a")
        await run_cli_json(
            a, "service", "create", "web", "--network", "dp", "--vip", "10.1.0.100",
            "--port", "tcp:80:8080", "--backend", "c1", "--backend", "c2",
        )  # fmt: skip
        want = ServiceSpec("dp", "web", "10.1.0.100", "vip", [("tcp", 80, 8080)], ["10.1.0.2", "10.1.0.3"])
        await eventually(lambda: da.last.services == (want,), "the service in a's snapshot")

        # inspect: the old fields, plus backend states and the namespaces programmed here
        doc = await run_cli_json(a, "service", "inspect", "web", "--network", "dp")
        assert (doc["vip"], doc["backends"]) == ("10.1.0.100", [e1["id"], e2["id"]])
        assert [(s["id"], s["state"], s["name"], s["ip"], s["owner"]) for s in doc["backend_states"]] == [
            (e1["id"], "visible", "c1", "10.1.0.2", "a"),
            (e2["id"], "visible", "c2", "10.1.0.3", "b"),
        ]
        assert doc["programmed"] == [{"endpoint": e1["id"], "netns": "nons-ctr1", "state": "attached"}]
        await eventually(lambda: b.overlay.view.services("dp"), "service on b")
        doc_b = await run_cli_json(b, "service", "inspect", "web", "--network", "dp")
        assert doc_b["programmed"] == [] and doc_b["backend_states"][1]["state"] == "visible"
        code, out, _ = await trio.to_thread.run_sync(
            lambda: cli("service", "inspect", "web", "--socket", a.socket_path)
        )
        assert code == 0 and "Backends:" in out and "Programmed here:" in out and "nons-ctr1" in out

        # dns: as a container on the network, or as a local endpoint's container
        found = await run_cli_json(a, "dns", "dp", "c2")
        assert (found["rcode"], found["records"], found["networks"], found["from"]) == (
            "NOERROR",
            ["A 10.1.0.3"],
            ["dp"],
            None,
        )
        found = await run_cli_json(a, "dns", "dp", "WEB", "--from", "c1")
        assert (found["records"], found["kind"], found["from"]) == (["A 10.1.0.100"], "vip", e1["id"])
        found = await run_cli_json(a, "dns", "dp", "tasks.web")
        assert sorted(found["records"]) == ["A 10.1.0.2", "A 10.1.0.3"]
        found = await run_cli_json(a, "dns", "dp", "3.0.1.10.in-addr.arpa", "--type", "PTR")
        assert found["rcode"] == "NOERROR" and found["records"] and found["records"][0].startswith("PTR c2")
        assert (await run_cli_json(a, "dns", "dp", "nothing"))["rcode"] == "NXDOMAIN"
        assert (await run_cli_json(a, "dns", "dp", "c2", "--type", "AAAA"))["records"] == []
        assert (await run_cli_json(a, "dns", "dp", "example.com"))["forwarded"] is True
        # a table change is answered at once: b removes c2
        await run_cli_json(b, "endpoint", "rm", e2["id"])
        await eventually(
            lambda: resolve(a.overlay.dns.index.view(), ["dp"], "c2").rcode == "NXDOMAIN", "c2 gone on a"
        )
        assert (await run_cli_json(a, "dns", "dp", "c2"))["rcode"] == "NXDOMAIN"
        code, out, _ = await trio.to_thread.run_sync(
            lambda: cli("dns", "dp", "c1", "--socket", a.socket_path)
        )
        assert code == 0 and "A 10.1.0.2" in out
        # refusals
        assert "no local endpoint" in await run_cli_fail(a, "dns", "dp", "c1", "--from", "nobody")
        assert "not found" in await run_cli_fail(a, "dns", "nonet", "c1")
        status, body = await trio.to_thread.run_sync(
            raw_http,
            a.socket_path,
            b"GET /v1/dns/dp/c1?type=MX HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert status == 400 and body["field"] == "type"

        # the resolver pool follows the endpoints' attach / detach
        pool.calls.clear()
        e3 = await run_cli_json(a, "endpoint", "create", "dp", "c3", "--ip", "10.1.0.4", "--pid", "4242")
        await run_cli_json(a, "endpoint", "create", "dp", "c4", "--ip", "10.1.0.5")  # no container
        await run_cli_json(a, "endpoint", "rm", "c3")
        assert pool.calls == [("attach", "/proc/4242/ns/net", e3["id"], "dp"), ("detach", e3["id"])]

        # metrics
        a.overlay.dns.metrics.queries[("A", "NOERROR")] += 2
        a.overlay.dns.metrics.forwarded["answered"] += 1
        text = generate_latest(registry_for(a.overlay)).decode()
        assert 'swimnet_dns_queries_total{qtype="A",rcode="NOERROR"} 2.0' in text
        assert 'swimnet_dns_forwarded_total{outcome="answered"} 1.0' in text
        assert "swimnet_dns_dropped_total" in text
        nursery.cancel_scope.cancel()


async def test_without_a_datapath_inspect_says_so(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a", datapath=False), drivers)
        await eventually(lambda: a.overlay.started, "a started")
        await run_cli_json(a, "network", "create", "dp", "--subnet", "10.1.0.0/24")
        await run_cli_json(a, "service", "create", "dnsname", "--network", "dp", "--mode", "dnsrr")
        doc: dict[str, Any] = await run_cli_json(a, "service", "inspect", "dnsname", "--network", "dp")
        assert doc["programmed"] is None and doc["backend_states"] == []
        assert a.overlay.dns.resolvers is None
        assert json.dumps(doc)
        nursery.cancel_scope.cancel()


def test_backend_states_and_programmed_namespaces_from_the_driver() -> None:
    """Unit: a failed owner's backend is hidden, a deleted or unseen one unknown; the
    namespaces programmed come from the driver's latest load-balancing pass."""
    from types import SimpleNamespace

    from swimnet.agent.domain.services import Services
    from swimnet.agent.domain.values import ServiceInfo
    from swimnet.datapath.lb.ops import LbResult, NsOutcome
    from swimnet.overlay import EndpointRecord, LocalEndpointSpec, ServiceRecord

    stored = {
        "ep-hidden": SimpleNamespace(deleted=False, owner="h2"),
        "ep-gone": SimpleNamespace(deleted=True, owner="h2"),
    }
    view = SimpleNamespace(
        endpoints=lambda network: [
            ("ep-a", EndpointRecord("a", "10.1.0.2/24", "02:42:0a:01:00:02", "192.0.2.1"), "h1")
        ],
        stored=lambda network, table, key: stored.get(key),
    )
    local = {
        "ep-a": LocalEndpointSpec("ep-a", "dp", "a", "10.1.0.2/24", "02:42:0a:01:00:02", netns="ns-a"),
        "ep-b": LocalEndpointSpec("ep-b", "dp", "b", "10.1.0.5/24", "02:42:0a:01:00:05", pid=77),
        "ep-c": LocalEndpointSpec("ep-c", "dp", "c", "10.1.0.6/24", "02:42:0a:01:00:06"),
        "ep-o": LocalEndpointSpec("ep-o", "other", "o", "10.2.0.6/24", "02:42:0a:02:00:06", netns="ns-o"),
    }
    driver = SimpleNamespace(lb_last=LbResult((NsOutcome("ns-a", commands=3), NsOutcome(77, error="boom"))))
    agent: Any = SimpleNamespace(view=view, local=local, driver=driver)
    services = Services(agent)
    record = ServiceRecord(
        name="web", vip="10.1.0.100", mode="vip", ports=(), backends=("ep-a", "ep-hidden", "ep-gone", "ep-x")
    )
    info = ServiceInfo("dp", record, "h1")
    states = services._backend_states(info)
    assert [(b.endpoint_id, b.state, b.owner) for b in states] == [
        ("ep-a", "visible", "h1"),
        ("ep-hidden", "hidden", "h2"),
        ("ep-gone", "unknown", None),
        ("ep-x", "unknown", None),
    ]
    programmed = services._programmed(info)
    assert programmed is not None
    assert [(p.endpoint_id, p.netns, p.state) for p in programmed] == [
        ("ep-a", "ns-a", "programmed"),
        ("ep-b", "/proc/77/ns/net", "failed"),
    ]
    dnsrr = ServiceInfo("dp", ServiceRecord(name="d", vip=None, mode="dnsrr", ports=(), backends=()), "h1")
    assert services._programmed(dnsrr) == ()
    agent.driver = None
    assert services._programmed(info) is None
