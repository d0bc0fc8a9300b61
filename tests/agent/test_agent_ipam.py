"""Addresses from the cluster-wide IPAM, with real agents run in-process (trio, fake
datapath drivers, loopback): endpoints and VIPs without an address given, pinned ones,
a full network, reuse after removal, services joined at endpoint creation and backends
added and removed, a graceful restart. Waits poll a condition; nothing asserts a duration."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import trio
from test_agent_inprocess import Drivers, eventually, run_cli_fail, run_cli_json, settings_for, start

from swimnet.agent.daemon.run import AgentRuntime
from swimnet.agent.domain.endpoints import Endpoints
from swimnet.agent.errors import ErrorKind, OperationError
from swimnet.config import format_address
from swimnet.ipam import IPAM_TABLE, record_key
from swimnet.overlay import CLUSTER_SCOPE
from swimnet.wire.messages import State


async def _pair(nursery: trio.Nursery, tmp_path: Path, drivers: Drivers) -> tuple[AgentRuntime, AgentRuntime]:
    a = await start(nursery, settings_for(tmp_path, "a"), drivers)
    b = await start(nursery, settings_for(tmp_path, "b", join=(format_address(a.node.address),)), drivers)
    await eventually(lambda: len(b.node.members()) == 2 and b.overlay.cluster_synced, "b joined")
    return a, b


async def _network(a: AgentRuntime, b: AgentRuntime, subnet: str) -> None:
    await run_cli_json(
        a, "network", "create", "n", "--subnet", subnet, "--gateway", str(ipaddress.IPv4Network(subnet)[1])
    )
    await eventually(lambda: b.overlay.view.network("n") is not None, "network on b")


async def test_two_agents_fill_a_network_with_unique_addresses_then_reuse_a_freed_one(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a, b = await _pair(nursery, tmp_path, drivers)
        await _network(a, b, "10.2.0.0/27")  # 32 addresses: 29 usable (network, gateway, broadcast)
        got: dict[str, list[str]] = {"a": [], "b": []}
        refusals: list[OperationError] = []

        async def fill(runtime: AgentRuntime, name: str) -> None:
            endpoints = Endpoints(runtime.overlay)
            while True:
                try:
                    info = await endpoints.create("n", f"{name}{len(got[name])}")
                except OperationError as exc:
                    refusals.append(exc)
                    return
                got[name].append(info.spec.ip.split("/")[0])

        async with trio.open_nursery() as both:  # the two agents allocate at the same time
            both.start_soon(fill, a, "a")
            both.start_soon(fill, b, "b")
        addresses = got["a"] + got["b"]
        assert len(addresses) == len(set(addresses)) == 29, got
        assert {"10.2.0.0", "10.2.0.1", "10.2.0.31"}.isdisjoint(addresses)
        assert got["a"] and got["b"]
        for exc in refusals:  # the full network: a clean 409 naming the field
            assert (exc.kind, exc.field, exc.message) == (
                ErrorKind.CONFLICT,
                "ip",
                "ip: network n has no free address",
            )
        # refused requests changed nothing: no endpoint, no reservation
        err = await run_cli_fail(b, "endpoint", "create", "n", "extra")
        assert "network n has no free address" in err
        assert len(b.overlay.local) == len(got["b"]) and b.overlay.ipam.reserved("n") == ()
        # every agent's tables show each address once
        await eventually(lambda: a.overlay.view.endpoint_count("n") == 29, "all endpoints on a")
        shown = [r.ip for _, r, _ in a.overlay.view.endpoints("n")]
        assert len(set(shown)) == 29
        # b too, before the removal: else b's count of 28 below may be a's last endpoint not
        # yet seen rather than the removal seen (b then rightly finds the network full)
        await eventually(lambda: b.overlay.view.endpoint_count("n") == 29, "all endpoints on b")
        # endpoint rm frees the address: the other agent gets it (a single claim in a's block)
        freed = got["a"][0]
        await run_cli_json(a, "endpoint", "rm", "a0")
        await eventually(lambda: b.overlay.view.endpoint_count("n") == 28, "the removal seen by b")
        # b may see the endpoint gone a gossip round before a's record releases the address:
        # it waits for that release (within the allocation's bounded wait), never "full"
        again = await run_cli_json(b, "endpoint", "create", "n", "late")
        assert again["ip"].split("/")[0] == freed
        a.stop.set()
        b.stop.set()


async def test_pins_services_and_backends(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a, b = await _pair(nursery, tmp_path, drivers)
        await _network(a, b, "10.3.0.0/24")
        pinned = await run_cli_json(a, "endpoint", "create", "n", "web1", "--ip", "10.3.0.50")
        assert pinned["ip"] == "10.3.0.50/24"
        # a pinned address taken elsewhere, the gateway, the network address: refused
        for ip, why in (("10.3.0.50", "is already used"), ("10.3.0.1", "gateway"), ("10.3.0.0", "ip")):
            err = await run_cli_fail(b, "endpoint", "create", "n", "x", "--ip", ip)
            assert why in err, err
        assert b.overlay.local == {}
        # a service without --vip gets one from the IPAM; a pinned VIP that is taken is a 409
        svc = await run_cli_json(b, "service", "create", "web", "--network", "n", "--port", "tcp:80:8080")
        vip = svc["vip"]
        assert vip is not None and ipaddress.IPv4Address(vip) in ipaddress.IPv4Network("10.3.0.0/24")
        assert vip not in ("10.3.0.0", "10.3.0.1", "10.3.0.255", "10.3.0.50")
        err = await run_cli_fail(a, "service", "create", "other", "--network", "n", "--vip", "10.3.0.50")
        assert "vip: 10.3.0.50" in err
        # endpoint create --service: an unknown service is a 404 and creates nothing
        err = await run_cli_fail(a, "endpoint", "create", "n", "web2", "--service", "nope")
        assert "service" in err and "nope" in err
        assert {s.name for s in a.overlay.local.values()} == {"web1"} and a.overlay.ipam.reserved("n") == ()
        await eventually(lambda: a.overlay.view.service("n", "web") is not None, "web on a")
        web2 = await run_cli_json(a, "endpoint", "create", "n", "web2", "--service", "web")
        assert a.overlay.view.service("n", "web")[0].backends == (web2["id"],)  # type: ignore[index]
        # update (here on b, which holds the network again for it): all changes or none;
        # unknown endpoints name the field
        err = await run_cli_fail(
            b, "service", "update", "web", "--network", "n", "--add-backend", "ghost", "--rm-backend", "web2"
        )
        assert "add_backends" in err
        err = await run_cli_fail(b, "service", "update", "web", "--network", "n", "--rm-backend", "web1")
        assert "rm_backends" in err and "not a backend" in err
        assert a.overlay.view.service("n", "web")[0].backends == (web2["id"],)  # type: ignore[index]

        def b_current() -> bool:  # b either left the scope (it syncs again) or sees a's change
            found = b.overlay.view.service("n", "web")
            return not b.overlay.view.is_joined("n") or (
                found is not None and found[0].backends == (web2["id"],)
            )

        await eventually(b_current, "a's change seen by b")
        updated = await run_cli_json(
            b, "service", "update", "web", "--network", "n", "--add-backend", "web1", "--rm-backend", "web2"
        )
        assert updated["backends"] == [pinned["id"]] and updated["vip"] == vip
        await eventually(
            lambda: a.overlay.view.service("n", "web")[0].backends == (pinned["id"],),  # type: ignore[index]
            "update on a",
        )
        shown = await run_cli_json(a, "service", "inspect", "web")
        assert shown["vip"] == vip and shown["ports"] == [
            {"protocol": "tcp", "published": 80, "target": 8080}
        ]
        assert [(s["id"], s["state"]) for s in shown["backend_states"]] == [(pinned["id"], "visible")]
        # service rm gives the VIP back: it can be pinned by an endpoint
        await run_cli_json(b, "service", "rm", "web")
        await eventually(lambda: a.overlay.view.service("n", "web") is None, "web gone on a")
        reuse = await run_cli_json(a, "endpoint", "create", "n", "onvip", "--ip", vip)
        assert reuse["ip"].split("/")[0] == vip
        a.stop.set()
        b.stop.set()


async def test_records_are_saved_and_restored_across_a_graceful_restart(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a, b = await _pair(nursery, tmp_path, drivers)
        await _network(a, b, "10.4.0.0/26")
        first = [(await run_cli_json(b, "endpoint", "create", "n", f"b{i}"))["ip"] for i in range(3)]
        saved = json.loads((tmp_path / "b" / "state" / "ipam.json").read_text())
        assert saved["left"] is False and saved["networks"]["n"]["record"]
        key = record_key("n", "b")
        assert b.node.tables.get(CLUSTER_SCOPE, IPAM_TABLE, key) is not None
        b.stop.set()  # a graceful leave: the others drop b's claims
        await eventually(
            lambda: any(m.name == "b" and m.state == State.LEFT for m in a.node.members()), "b left"
        )
        assert json.loads((tmp_path / "b" / "state" / "ipam.json").read_text())["left"] is True
        # meanwhile a takes addresses (maybe in b's former blocks)
        during = [(await run_cli_json(a, "endpoint", "create", "n", f"a{i}"))["ip"] for i in range(10)]
        b = await start(nursery, settings_for(tmp_path, "b", join=(format_address(a.node.address),)), drivers)
        await eventually(
            lambda: b.overlay.cluster_synced and a.overlay.view.endpoint_count("n") == 13, "b back"
        )
        # b claims its endpoints' addresses again (adopted), then allocates without duplicates
        await eventually(lambda: not b.overlay.ipam.adopting, "b's addresses adopted")
        after = [(await run_cli_json(b, "endpoint", "create", "n", f"c{i}"))["ip"] for i in range(5)]
        everything = first + during + after
        assert len(set(everything)) == len(everything), everything
        assert json.loads((tmp_path / "b" / "state" / "ipam.json").read_text())["left"] is False
        a.stop.set()
        b.stop.set()


async def test_allocate_address_reserves_durably_until_an_endpoint_takes_it_or_it_is_released(
    tmp_path: Path,
) -> None:
    """The API the Docker plugin calls: allocate first, create the endpoint later."""
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        await run_cli_json(a, "network", "create", "n", "--subnet", "10.9.0.0/29", "--gateway", "10.9.0.1")
        ipam = a.overlay.ipam
        first = await ipam.allocate_address("n")
        second = await ipam.allocate_address("n", field="ip")
        assert first != second and {first, second} <= {f"10.9.0.{i}" for i in range(2, 7)}
        saved = json.loads((tmp_path / "a" / "state" / "ipam.json").read_text())
        assert saved["networks"]["n"]["reserved"] == [first, second]
        # a reserved address is not handed out again, and pinning it elsewhere is refused...
        others = [(await run_cli_json(a, "endpoint", "create", "n", f"e{i}"))["ip"] for i in range(3)]
        assert not {first, second} & {ip.split("/")[0] for ip in others}
        err = await run_cli_fail(a, "endpoint", "create", "n", "full")
        assert "network n has no free address" in err
        # ...except by the create that consumes the reservation
        taken = await run_cli_json(a, "endpoint", "create", "n", "plugged", "--ip", first)
        assert taken["ip"] == f"{first}/29" and ipam.reserved("n") == (second,)
        await ipam.release_address("n", second)
        assert ipam.reserved("n") == ()
        assert (
            json.loads((tmp_path / "a" / "state" / "ipam.json").read_text())["networks"]["n"]["reserved"]
            == []
        )
        last = await run_cli_json(a, "endpoint", "create", "n", "last")
        assert last["ip"] == f"{second}/29"
        a.stop.set()


async def test_a_removed_network_loses_the_agents_ipam_record(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        await run_cli_json(a, "network", "create", "n", "--subnet", "10.7.0.0/24")
        ep = await run_cli_json(a, "endpoint", "create", "n", "e")
        key = record_key("n", "a")
        assert a.node.tables.get(CLUSTER_SCOPE, IPAM_TABLE, key) is not None
        await run_cli_json(a, "endpoint", "rm", ep["id"])
        await run_cli_json(a, "network", "rm", "n")

        def forgotten() -> bool:
            saved = json.loads((tmp_path / "a" / "state" / "ipam.json").read_text())
            return "n" not in saved["networks"] and a.node.tables.get(CLUSTER_SCOPE, IPAM_TABLE, key) is None

        await eventually(forgotten, "the record deleted and forgotten")
        a.stop.set()
