"""The daemon run in-process (trio) with an in-memory datapath driver: how it calls the
driver, and how the control API answers bad requests. Agents bind 127.0.0.1 port 0; the
CLI and raw HTTP run in worker threads against the real control sockets."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from agent_harness import cli
from fake_driver import FakeDriver, FakeResolverPool
from prometheus_client import generate_latest

from swimnet.agent.daemon.metrics import registry_for
from swimnet.agent.daemon.run import AgentRuntime, run_agent
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.config import format_address
from swimnet.logfields import FIELDS_ATTR
from swimnet.overlay import CLUSTER_SCOPE, NETWORKS_TABLE, PEERS_TABLE, EndpointRecord, NetworkRecord

WAIT = 30.0
TUNING: dict[str, Any] = {
    "probe_interval": 0.2,
    "probe_timeout": 0.1,
    "gossip_interval": 0.05,
    "suspicion_mult": 2,
    "push_pull_interval": 2.0,
    "tcp_timeout": 1.0,
    "leave_timeout": 2.0,
    "join_sync_delays": (0.2, 0.5),
}


def settings_for(
    base: Path, name: str, *, join: tuple[str, ...] = (), datapath: bool = True
) -> AgentSettings:
    (base / name).mkdir(parents=True, exist_ok=True)
    return AgentSettings(
        name=name,
        bind="127.0.0.1:0",
        join=join,
        state_dir=str(base / name / "state"),
        socket=str(base / name / "sock"),
        metrics=None,
        profile="local",
        datapath=datapath,
        tuning=TUNING,
    )


class Drivers:
    """The fake drivers (and DNS resolver pools) of the agents a test starts, by node name."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeDriver] = {}
        self.pools: dict[str, FakeResolverPool] = {}

    def pool(self, overlay: Any) -> contextlib.AbstractAsyncContextManager[FakeResolverPool]:
        pool = self.pools.setdefault(overlay.me, FakeResolverPool())
        return pool.open(overlay)

    def __call__(self, **kwargs: Any) -> FakeDriver:
        driver = FakeDriver(**kwargs)
        self.by_name[kwargs["node_tag"]] = driver
        return driver


async def start(nursery: trio.Nursery, settings: AgentSettings, drivers: Drivers) -> AgentRuntime:
    runtime: AgentRuntime = await nursery.start(
        functools.partial(
            run_agent, settings, driver_factory=drivers, resolver_pool=drivers.pool, handle_signals=False
        )
    )
    return runtime


async def run_cli_json(runtime: AgentRuntime, *args: str) -> Any:
    code, out, err = await trio.to_thread.run_sync(
        functools.partial(cli, *args, "--json", "--socket", runtime.socket_path)
    )
    assert code == 0, f"{args}: exit {code}: {err}"
    return json.loads(out)


async def run_cli_fail(runtime: AgentRuntime, *args: str) -> str:
    code, _, err = await trio.to_thread.run_sync(
        functools.partial(cli, *args, "--socket", runtime.socket_path)
    )
    assert code == 1, f"{args}: expected a refusal, got exit {code}"
    return err


async def eventually(condition: Callable[[], Any], what: str) -> Any:
    with trio.fail_after(WAIT):
        while not (result := condition()):
            await trio.sleep(0.05)
    return result


async def test_the_daemon_feeds_the_driver_and_attaches_before_publishing(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        seed = format_address(a.node.address)
        b = await start(nursery, settings_for(tmp_path, "b", join=(seed,)), drivers)
        da, db = drivers.by_name["a"], drivers.by_name["b"]
        assert da.running and da.vtep == "127.0.0.1" and da.node_tag == "a" and da.underlay_mtu == 1500
        da.published = a.overlay.published
        await eventually(lambda: len(b.node.members()) == 2 and b.overlay.cluster_synced, "b joined")
        net = await run_cli_json(a, "network", "create", "dp", "--subnet", "10.1.0.0/24", "--vni", "7000")
        await eventually(lambda: b.overlay.view.network("dp") is not None, "network on b")
        ep = await run_cli_json(a, "endpoint", "create", "dp", "c1", "--ip", "10.1.0.2", "--netns", "ctr1")
        assert ("attach", ep["id"]) in da.calls and da.published_at_attach == [False]
        spec = da.attached[ep["id"]]
        assert (spec.netns, spec.pid, spec.ifname, spec.ip) == ("ctr1", None, "eth0", "10.1.0.2/24")
        assert da.last.networks["dp"][1] == net["vni"] == 7000
        # the snapshot listing the new endpoint comes from the (debounced) refresh
        await eventually(lambda: [s.endpoint_id for s in da.last.local] == [ep["id"]], "snapshot with c1")
        assert da.last.remote == ()
        # an endpoint without a container is only recorded: no attach
        eb = await run_cli_json(b, "endpoint", "create", "dp", "c2", "--ip", "10.1.0.3")
        assert not any(kind == "attach" for kind, _ in db.calls)
        remote = await eventually(
            lambda: [r for r in da.last.remote if r[1] == eb["id"]], "b's endpoint fed to a"
        )
        assert remote[0][0] == "dp" and remote[0][2].vtep == "127.0.0.1" and remote[0][2].ip == "10.1.0.3/24"
        await eventually(lambda: [s.endpoint_id for s in db.last.local] == [eb["id"]], "snapshot with c2")
        assert {r[1] for r in db.last.remote} == {ep["id"]}
        fdb = await run_cli_json(a, "fdb", "dp")
        assert fdb == {
            "network": "dp",
            "entries": [{"ip": "10.1.0.3", "mac": "02:42:0a:01:00:03", "vtep": "127.0.0.1"}],
        }
        # removal detaches, and the network leaves the snapshot with the last local endpoint
        await run_cli_json(a, "endpoint", "rm", ep["id"])
        assert da.calls[-2:] == [("detach", ep["id"]), ("update", "")] or ("detach", ep["id"]) in da.calls
        await eventually(
            lambda: da.last.networks == {} and da.last.local == (), "empty snapshot after removal"
        )
        a.stop.set()
        b.stop.set()
    assert da.closed and db.closed


async def test_a_failed_attach_publishes_nothing(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        await run_cli_json(a, "network", "create", "dp", "--subnet", "10.1.0.0/24")
        drivers.by_name["a"].fail_attach = "no such namespace: ctr9"
        err = await run_cli_fail(a, "endpoint", "create", "dp", "c9", "--ip", "10.1.0.9", "--netns", "ctr9")
        assert "datapath: no such namespace: ctr9" in err
        assert a.overlay.local == {} and a.node.tables.networks() == ["_cluster"]
        state = (
            json.loads((tmp_path / "a" / "state" / "endpoints.json").read_text())
            if (tmp_path / "a" / "state" / "endpoints.json").exists()
            else {"endpoints": []}
        )
        assert state["endpoints"] == []
        assert drivers.by_name["a"].last.networks == {}
        a.stop.set()


async def test_a_restarted_agent_feeds_its_networks_first_then_reattaches(tmp_path: Path) -> None:
    drivers = Drivers()
    settings = settings_for(tmp_path, "a")
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings, drivers)
        await run_cli_json(a, "network", "create", "dp", "--subnet", "10.1.0.0/24")
        ep = await run_cli_json(a, "endpoint", "create", "dp", "c1", "--ip", "10.1.0.2", "--pid", "4242")
        a.stop.set()
    first = drivers.by_name.pop("a")
    assert first.closed and ep["id"] in first.attached
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings, drivers)
        again = drivers.by_name["a"]
        await eventually(lambda: a.overlay.started and ep["id"] in again.attached, "restored and re-attached")
        kinds = [kind for kind, _ in again.calls]
        assert kinds.index("update") < kinds.index("attach")  # the network is known before the attach
        assert again.calls[0] == ("update", "dp")
        assert again.attached[ep["id"]].pid == 4242
        assert a.node.local_member.incarnation == 2
        assert a.overlay.view.visible("dp", PEERS_TABLE, ep["id"]) is not None
        a.stop.set()


async def test_a_duplicate_ip_that_slipped_through_is_reported_and_resolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="swimnet.agent")
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a"), drivers)
        b = await start(nursery, settings_for(tmp_path, "b", join=(format_address(a.node.address),)), drivers)
        await eventually(lambda: b.overlay.cluster_synced and len(a.node.members()) == 2, "b joined")
        await run_cli_json(a, "network", "create", "dn", "--subnet", "10.1.0.0/24")
        mine = await run_cli_json(a, "endpoint", "create", "dn", "x", "--ip", "10.1.0.5", "--netns", "n1")
        await eventually(lambda: b.overlay.view.network("dn") is not None, "network on b")
        # what two agents racing for one IP leave behind: b's entry written past the checks
        await run_cli_json(b, "endpoint", "create", "dn", "z", "--ip", "10.1.0.6")
        record = EndpointRecord("y", "10.1.0.5/24", "02:42:0a:01:00:99", "127.0.0.1")
        await b.node.table("dn", PEERS_TABLE).put("0000deadbeef", record.encode())
        inspect = await eventually(
            lambda: a.overlay.conflicts.get("dn"), "conflict detected on a"
        ) and await run_cli_json(a, "network", "inspect", "dn")
        (conflict,) = inspect["conflicts"]
        assert conflict["kind"] == "ip" and conflict["value"] == "10.1.0.5"
        assert conflict["endpoints"] == [
            {"id": "0000deadbeef", "owner": "b"},
            {"id": mine["id"], "owner": "a"},
        ]
        flagged = {e["id"]: e["conflict"] for e in (await run_cli_json(a, "endpoint", "ls"))["endpoints"]}
        assert flagged[mine["id"]] and flagged["0000deadbeef"] and list(flagged.values()).count(False) == 1
        assert any("duplicate ip" in r.getMessage() for r in caplog.records)
        # the datapath of a keeps a's own endpoint and leaves the duplicate out
        await eventually(lambda: drivers.by_name["a"].last.networks.get("dn"), "dn in a's snapshot")
        assert "0000deadbeef" not in {r[1] for r in drivers.by_name["a"].last.remote}
        a.overlay.driver.stats["reconciles"] += 2  # type: ignore[union-attr]
        metrics_text = generate_latest(registry_for(a.overlay)).decode()
        assert "swimnet_endpoint_conflicts 1.0" in metrics_text
        assert 'swimnet_datapath_events_total{name="reconciles"} 2.0' in metrics_text
        # two networks racing for one VNI: the older keeps it, everyone agrees, inspect says so
        await run_cli_json(a, "network", "create", "v1", "--subnet", "10.2.0.0/24", "--vni", "5100")
        late = NetworkRecord("v2", "10.3.0.0/24", vni=5100, created=10**6)
        await b.node.table(CLUSTER_SCOPE, NETWORKS_TABLE).put("v2", late.encode())
        v2 = await eventually(lambda: a.overlay.view.network("v2"), "v2 on a") and await run_cli_json(
            a, "network", "inspect", "v2"
        )
        v1 = await run_cli_json(b, "network", "inspect", "v1")
        assert v1["vni"] == 5100 and not v1["vni_collision"]
        assert v2["vni_collision"] and v2["vni_requested"] == 5100 and v2["vni"] not in (5100, None)
        assert (await run_cli_json(b, "network", "inspect", "v2"))["vni"] == v2["vni"]
        a.stop.set()
        b.stop.set()


def raw_http(path: str, request: bytes) -> tuple[int, dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(path)
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


def post(target: str, body: bytes, method: str = "POST") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_bad_requests_get_clear_errors_and_change_nothing(tmp_path: Path) -> None:
    drivers = Drivers()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a", datapath=False), drivers)
        path = a.socket_path

        async def ask(request: bytes) -> tuple[int, dict[str, Any]]:
            return await trio.to_thread.run_sync(raw_http, path, request)

        cases: list[tuple[bytes, int, str, str | None]] = [
            (post("/v1/networks", b'{"name": "x", "subnet": '), 400, "malformed JSON", None),
            (post("/v1/networks", b"[1, 2]"), 400, "expected a JSON object", None),
            (post("/v1/networks", b'{"name": "x"}'), 400, "subnet: required", "subnet"),
            (post("/v1/networks", b'{"name": "x", "subnet": "10.0.0.0/33"}'), 400, "not a network", "subnet"),
            (post("/v1/networks", b'{"name": "x", "subnet": "10.0.0.1/24"}'), 400, "host bits set", "subnet"),
            (post("/v1/networks", b'{"name": "x", "subnet": "fd00::/64"}'), 400, "only IPv4", "subnet"),
            (post("/v1/networks", b'{"name": 5, "subnet": "10.0.0.0/24"}'), 400, "expected a string", "name"),
            (post("/v1/networks", b'{"name": "_x", "subnet": "10.0.0.0/24"}'), 400, "must be 1..64", "name"),
            (
                post("/v1/networks", b'{"name": "x", "subnet": "10.0.0.0/24", "vni": true}'),
                400,
                "integer",
                "vni",
            ),
            (
                post("/v1/networks", b'{"name": "x", "subnet": "10.0.0.0/24", "color": 1}'),
                400,
                "unknown field",
                "color",
            ),
            (
                post("/v1/networks", b'{"name": "x", "subnet": "10.0.0.0/24", "mtu": 100}'),
                400,
                "576..9000",
                "mtu",
            ),
            (
                post("/v1/networks/x/endpoints", b'{"name": "e", "ip": "10.0.0.2"}'),
                404,
                "not found",
                "network",
            ),
            (post("/v1/nothing", b"{}"), 404, "no such resource", None),
            (post("/v1/members", b"{}", method="PUT"), 405, "not allowed", None),
            (post("/v1/networks", b"x" * (1024 * 1024 + 1)), 413, "larger than", None),
            (b"GARBAGE\r\n\r\n", 400, "bad request", None),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n",
                431,
                "bad request",
                None,
            ),
        ]
        for request, status, text, field in cases:
            got, doc = await ask(request)
            assert got == status and text in doc["error"] and doc["field"] == field, (request[:60], got, doc)
        assert a.overlay.view.networks() == {}
        ok, doc = await ask(post("/v1/networks", b'{"name": "x", "subnet": "10.0.0.0/24", "mtu": 1400}'))
        assert ok == 201 and doc["mtu"] == 1400
        got, doc = await ask(
            post("/v1/networks/x/endpoints", b'{"name": "e", "ip": "10.0.0.2", "netns": "n", "pid": 3}')
        )
        assert got == 400 and doc["field"] == "netns" and "not both" in doc["error"]
        a.stop.set()


async def test_oversized_definitions_and_deep_nesting_are_bad_requests(tmp_path: Path) -> None:
    """Issue 16 item 12: both were answered 500 (ValueError, RecursionError)."""
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a", datapath=False), Drivers())
        path = a.socket_path

        async def ask(request: bytes) -> tuple[int, dict[str, Any]]:
            return await trio.to_thread.run_sync(raw_http, path, request)

        options = {f"key{i}": "v" * 100 for i in range(100)}  # ~10 KiB: more than a table value holds
        body = json.dumps({"name": "x", "subnet": "10.0.0.0/24", "options": options}).encode()
        got, doc = await ask(post("/v1/networks", body))
        assert got == 400 and doc["field"] == "options" and "too large" in doc["error"], doc
        head = b'{"name": "x", "subnet": "10.0.0.0/24", "options": '
        deep_array = head + b"[" * 100_000 + b"]" * 100_000 + b"}"
        deep_object = b'{"a": ' * 50_000 + b"1" + b"}" * 50_000
        for request in (post("/v1/networks", deep_array), post("/v1/networks/x/services", deep_object)):
            got, doc = await ask(request)
            assert got == 400 and doc["field"] is None and "nested too deeply" in doc["error"], doc
        assert a.overlay.view.networks() == {}
        ok, doc = await ask(post("/v1/networks", head + b'{"a": "b"}}'))
        assert ok == 201 and doc["options"] == {"a": "b"}
        a.stop.set()


async def test_a_start_removes_crash_leftovers_and_warns_of_a_lost_endpoints_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16 item 12: a `.tmp` file was never cleaned, a deleted endpoints file started
    empty in silence."""
    caplog.set_level(logging.INFO, logger="swimnet.agent")
    settings = settings_for(tmp_path, "a", datapath=False)
    state = Path(settings.state_dir)
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings, Drivers())
        await run_cli_json(a, "network", "create", "n", "--subnet", "10.1.0.0/24")
        await run_cli_json(a, "endpoint", "create", "n", "c1", "--ip", "10.1.0.2")
        a.stop.set()
    leftover = state / ".endpoints.json-k2j4h.tmp"  # what a crash during a write leaves
    leftover.write_text('{"version": 1, "endp')
    (state / "endpoints.json").unlink()
    (state / "endpoints.journal").unlink(missing_ok=True)
    caplog.clear()
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings, Drivers())
        assert not leftover.exists() and a.overlay.local == {}
        logged = [(r.levelno, r.getMessage(), getattr(r, FIELDS_ATTR, {})) for r in caplog.records]
        assert any("temporary file" in text and f.get("file") == str(leftover) for _, text, f in logged)
        assert any(
            level == logging.WARNING and fields.get("file") == str(state / "endpoints.json")
            for level, _, fields in logged
        ), logged
        assert (state / "endpoints.json").exists()  # written again: its absence always means a loss
        a.stop.set()
