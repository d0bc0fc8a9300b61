"""Pure pieces of the agent: value checks, conflicts, snapshots, the state directory, output."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import socket
from pathlib import Path

import pytest

from swimnet.agent import checks
from swimnet.agent.cli import render
from swimnet.agent.daemon.run import resolve_identity
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.agent.daemon.state_store import Identity, StateDir
from swimnet.agent.domain.conflicts import find_conflicts, for_datapath
from swimnet.agent.errors import ErrorKind, OperationError, StartupError
from swimnet.agent.logs import event, setup_logging
from swimnet.errors import ConfigError
from swimnet.overlay import EndpointRecord, LocalEndpointSpec, NetworkRecord, build_snapshot

NET = ipaddress.IPv4Network("10.1.0.0/24")


@pytest.mark.parametrize(
    ("value", "result"),
    [("10.1.0.2", "10.1.0.2/24"), ("10.1.0.2/24", "10.1.0.2/24"), ("10.1.0.254", "10.1.0.254/24")],
)
def test_host_addresses_inside_the_subnet(value: str, result: str) -> None:
    assert str(checks.host_in(value, NET, "ip")) == result


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("10.1.1.2", "outside"),
        ("10.1.0.2/16", "prefix /16 differs"),
        ("10.1.0.0", "network or broadcast"),
        ("10.1.0.255/24", "network or broadcast"),
        ("fd00::1", "outside"),
        ("banana", "is not an IP address"),
    ],
)
def test_bad_host_addresses(value: str, why: str) -> None:
    with pytest.raises(OperationError) as caught:
        checks.host_in(value, NET, "ip")
    error = caught.value
    assert error.kind is ErrorKind.INVALID and error.field == "ip" and why in error.message


def test_other_checks() -> None:
    assert checks.mac("02:42:0A:01:00:02") == "02:42:0a:01:00:02"
    for bad in ("01:00:5e:00:00:01", "00:00:00:00:00:00", "02:42:0a:01:00", "zz:42:0a:01:00:02"):
        with pytest.raises(OperationError):
            checks.mac(bad)
    assert checks.subnet("10.2.0.0/16") == ipaddress.IPv4Network("10.2.0.0/16")
    for bad in ("10.2.0.1/16", "10.2.0.0/31", "fd00::/64", "x"):
        with pytest.raises(OperationError):
            checks.subnet(bad)
    assert checks.ifname("eth1") == "eth1"
    for bad in ("", "a" * 16, "a/b", "a b", ".."):
        with pytest.raises(OperationError):
            checks.ifname(bad)
    assert checks.key_id(" ABCDEF01 ") == "abcdef01"
    with pytest.raises(OperationError, match="a key must be 32 bytes"):
        checks.key("AAAA")
    with pytest.raises(OperationError, match=r"ports must be 1\.\.65535"):
        checks.port_mapping("tcp", 0, 80)


def ep(ip: str, mac: str | None = None, vtep: str = "192.0.2.1") -> EndpointRecord:
    return EndpointRecord(
        "e", ip, mac or "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("/")[0].split(".")), vtep
    )


def test_conflicts_are_found_and_resolved_the_same_way_everywhere() -> None:
    rows = [("b2", ep("10.1.0.5/24"), "b"), ("a1", ep("10.1.0.5/24"), "a"), ("c3", ep("10.1.0.6/24"), "c")]
    (ip_conflict, mac_conflict) = find_conflicts("net", rows)
    assert (ip_conflict.kind, ip_conflict.value, ip_conflict.endpoints) == (
        "ip",
        "10.1.0.5",
        (("a1", "a"), ("b2", "b")),
    )
    assert mac_conflict.kind == "mac"
    # on a third host: the smallest id wins; on an owner's host: its own endpoint wins
    assert [r[0] for r in for_datapath(rows, "c")] == ["a1", "c3"]
    assert [r[0] for r in for_datapath(rows, "b")] == ["b2", "c3"]
    assert find_conflicts("net", rows[1:]) == []


def test_snapshot_holds_networks_with_local_endpoints_only() -> None:
    web = NetworkRecord("web", "10.1.0.0/24", vni=5000, created=1)
    db = NetworkRecord("db", "10.2.0.0/24", created=2)
    local = [LocalEndpointSpec("id1", "web", "c1", "10.1.0.2/24", "02:42:0a:01:00:02", netns="ns1")]
    peers = {
        "web": [("id1", ep("10.1.0.2/24"), "me"), ("id2", ep("10.1.0.3/24", vtep="192.0.2.2"), "other")],
        "db": [("id3", ep("10.2.0.3/24"), "other")],
    }
    snap = build_snapshot({"web": web, "db": db}, local, peers, "me")
    assert list(snap.networks) == ["web"] and snap.networks["web"] == (web, 5000)
    assert snap.local == tuple(local)
    assert [(n, i, r.vtep) for n, i, r in snap.remote] == [("web", "id2", "192.0.2.2")]
    with_db = build_snapshot({"web": web, "db": db}, local, peers, "me", extra_networks=["db"])
    assert set(with_db.networks) == {"web", "db"} and with_db.networks["db"][1] >= 4096
    orphan = build_snapshot({"db": db}, local, peers, "me")  # web unknown: nothing of it
    assert orphan.networks == {} and orphan.local == ()


def test_state_directory_round_trip_lock_and_corruption(tmp_path: Path) -> None:
    store = StateDir(str(tmp_path / "st"))
    store.open()
    try:
        assert store.load_identity() is None and store.load_endpoints() == ([], {})
        assert (tmp_path / "st").stat().st_mode & 0o777 == 0o700
        store.save_identity(Identity("a", 7))
        spec = LocalEndpointSpec(
            "id1", "web", "c1", "10.1.0.2/24", "02:42:0a:01:00:02", pid=42, ifname="eth1"
        )
        record = NetworkRecord("web", "10.1.0.0/24", extra={"future": 1})
        store.save_endpoints([spec], {"web": record})
        assert store.load_identity() == Identity("a", 7)
        specs, cache = store.load_endpoints()
        assert specs == [spec] and cache == {"web": record} and cache["web"].extra["future"] == 1
        other = StateDir(str(tmp_path / "st"))
        with pytest.raises(StartupError, match="in use by another agent"):
            other.open()
        (tmp_path / "st" / "node.json").write_text(json.dumps({"version": 1, "name": "", "incarnation": 1}))
        with pytest.raises(ConfigError, match=r"node.json: name: corrupt state file"):
            store.load_identity()
        (tmp_path / "st" / "endpoints.json").write_text("{not json")
        with pytest.raises(ConfigError, match=r"endpoints.json: corrupt state file: not JSON"):
            store.load_endpoints()
    finally:
        store.close()


def test_tables_align_and_members_read_like_consul() -> None:
    text = render.members(
        [
            {
                "name": "a",
                "address": "127.0.0.1:7946",
                "state": "alive",
                "incarnation": 1,
                "rtt_ms": None,
                "local": True,
            },
            {"name": "bb", "address": "127.0.0.2:7946", "state": "dead", "incarnation": 3, "rtt_ms": 0.25},
        ]
    )
    assert text.splitlines() == [
        "Node      Address         Status  Incarnation  RTT",
        "a (self)  127.0.0.1:7946  alive   1            -",
        "bb        127.0.0.2:7946  dead    3            0.25ms",
    ]
    assert render.table(["A", "B"], [[None, ["x", "y"]], [True, ""]]) == "A    B\n-    x,y\nyes  -"
    assert render.block([("Name", "a"), ("Incarnation", 2)]) == "Name:        a\nIncarnation: 2"


def test_listings_show_flags_notes_and_key_results() -> None:
    row = {
        "id": "abc", "name": "c1", "network": "web", "ip": "10.1.0.2/24", "mac": "02:42:0a:01:00:02",
        "vtep": "10.0.0.1", "owner": "a", "local": True, "conflict": True,
    }  # fmt: skip
    text = render.endpoint_listing({"endpoints": [row], "not_held": ["db"]})
    assert "local CONFLICT" in text and text.endswith("(not held by this agent, endpoints unknown here: db)")
    result = {
        "action": "install",
        "key_id": "abcd0123",
        "ok": False,
        "acked": ["b"],
        "failed": {"c": "nope"},
        "missing": ["d"],
    }
    assert render.key_result(result).splitlines() == [
        "install abcd0123: INCOMPLETE",
        "  acknowledged by: b",
        "  refused by c: nope",
        "  no answer from: d",
    ]
    ports = [{"protocol": "tcp", "published": 80, "target": 8080}]
    svc = {
        "name": "api",
        "network": "web",
        "mode": "vip",
        "vip": "10.1.0.9",
        "ports": ports,
        "backends": ["abc"],
        "owner": "a",
    }
    assert "tcp:80:8080" in render.services([svc])


def test_log_lines_carry_the_node_name_in_both_formats() -> None:
    root = logging.getLogger()
    for fmt in ("text", "json"):
        saved, level = list(root.handlers), root.level
        stream = io.StringIO()
        node_filter = setup_logging(fmt, "info", stream)
        node_filter.node = "host-a"
        try:
            event(logging.getLogger("swimnet.agent"), "member b joined", event="member_joined", member="b")
        finally:
            root.handlers[:] = saved
            root.setLevel(level)
        line = stream.getvalue().strip()
        if fmt == "json":
            doc = json.loads(line)
            assert (doc["node"], doc["msg"], doc["event"], doc["member"]) == (
                "host-a",
                "member b joined",
                "member_joined",
                "b",
            )
        else:
            assert line.endswith("INFO host-a: member b joined event=member_joined member=b")


def test_identity_comes_from_flags_then_the_state_directory_then_the_host_name(tmp_path: Path) -> None:
    store = StateDir(str(tmp_path / "st"))
    store.open()
    try:
        try:
            assert resolve_identity(AgentSettings(), store) == Identity(socket.gethostname(), 1)
        except ConfigError as exc:  # a host name that cannot be a node name is refused, clearly
            assert "host name" in str(exc)
        store.save_identity(Identity("a", 4))
        assert resolve_identity(AgentSettings(), store) == Identity("a", 5)
        assert resolve_identity(AgentSettings(name="a"), store) == Identity("a", 5)
        with pytest.raises(ConfigError, match="belongs to node 'a', not 'b'"):
            resolve_identity(AgentSettings(name="b"), store)
    finally:
        store.close()
