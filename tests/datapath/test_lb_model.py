"""The load balancer's pure half: services in a snapshot -> per-namespace Rulesets -> table."""

from __future__ import annotations

from swimnet.datapath.lb import Ruleset, desired_lb, rulesets, table_for
from swimnet.datapath.lb.table import (
    PICK_MIN,
    SERVICES,
    VIPS,
    backend_data,
    backend_map,
    describe_backend,
    describe_frontend,
    element_text,
    frontend_key,
    ip_bytes,
)
from swimnet.overlay import EndpointRecord, NetworkRecord, ServiceRecord, build_snapshot, mac_from_ip
from swimnet.overlay.snapshot import LocalEndpointSpec, ServiceSpec

WEB = ServiceSpec("net", "web", "10.1.0.100", "vip", (("tcp", 80, 8080),), ("10.1.0.3", "10.1.0.2"))


def spec(
    name: str, vip: str | None, backends: tuple[str, ...], *, network: str = "net", **kw: object
) -> ServiceSpec:
    ports = kw.pop("ports", (("tcp", 80, 8080),))
    mode = "vip" if vip is not None else "dnsrr"
    return ServiceSpec(network, name, vip, mode, ports, backends)  # type: ignore[arg-type]


def test_a_vip_service_gives_every_attached_namespace_one_frontend_per_port() -> None:
    web = spec(
        "web",
        "10.1.0.100",
        ("10.1.0.3", "10.1.0.2", "10.1.0.3"),
        ports=(("tcp", 80, 8080), ("udp", 53, 5353)),
    )
    got = rulesets([web], [("net", "c1"), ("net", 4242), ("other", "c3")])
    assert set(got) == {"c1", 4242, "c3"}
    assert got["c1"] == got[4242]
    assert got["c1"].frontends == (
        (("10.1.0.100", "tcp", 80), (("10.1.0.2", 8080), ("10.1.0.3", 8080))),
        (("10.1.0.100", "udp", 53), (("10.1.0.2", 5353), ("10.1.0.3", 5353))),
    )
    assert got["c1"].vips == {"10.1.0.100"}
    assert got["c3"].empty  # attached to a network without services: our table must go


def test_dnsrr_services_install_nothing_and_vips_without_backends_stay() -> None:
    got = rulesets([spec("db", None, ("10.1.0.5",)), spec("idle", "10.1.0.101", ())], [("net", "c1")])
    assert got["c1"].frontends == ((("10.1.0.101", "tcp", 80), ()),)
    assert got["c1"].vips == {"10.1.0.101"}
    assert rulesets([spec("db", None, ("10.1.0.5",))], [("net", "c1")])["c1"].empty


def test_conflicts_and_bad_values_are_skipped_whole_and_deterministically() -> None:
    a = spec("a", "10.1.0.100", ("10.1.0.2",))
    b = spec("b", "10.1.0.100", ("10.1.0.3",))  # same frontend: a wins (name order)
    bad = spec("bad", "10.1.0.102", ("not-an-ip",))
    first = rulesets([b, bad, a], [("net", "c1")])["c1"]
    assert first.frontends == ((("10.1.0.100", "tcp", 80), (("10.1.0.2", 8080),)),)
    assert len(first.skipped) == 2 and any("bad" in s for s in first.skipped)
    assert rulesets([a, bad, b], [("net", "c1")])["c1"] == first


def test_two_networks_of_one_container_merge() -> None:
    other = spec("api", "10.2.0.100", ("10.2.0.7",), network="other")
    got = rulesets([WEB, other], [("net", "c1"), ("other", "c1"), ("other", "c2")])
    assert [f for f, _ in got["c1"].frontends] == [("10.1.0.100", "tcp", 80), ("10.2.0.100", "tcp", 80)]
    assert [f for f, _ in got["c2"].frontends] == [("10.2.0.100", "tcp", 80)]


def test_snapshot_resolves_backends_to_visible_addresses() -> None:
    net = NetworkRecord(name="net", subnet="10.1.0.0/24")
    me = LocalEndpointSpec("net-web1", "net", "web1", "10.1.0.2/24", mac_from_ip("10.1.0.2"), netns="c1")
    peers = {
        "net": [
            ("net-web2", EndpointRecord("web2", "10.1.0.3/24", mac_from_ip("10.1.0.3"), "192.0.2.12"), "h2"),
        ]
    }
    record = ServiceRecord(
        "web", "10.1.0.100", "vip", (("tcp", 80, 8080),), ("net-web2", "net-gone", "net-web1", "net-web2")
    )
    snap = build_snapshot({"net": net}, [me], peers, "h1", services={"net": [record]})
    assert snap.services == (
        ServiceSpec("net", "web", "10.1.0.100", "vip", (("tcp", 80, 8080),), ("10.1.0.3", "10.1.0.2")),
    )
    assert desired_lb(snap)["c1"].backends("10.1.0.100", "tcp", 80) == (
        ("10.1.0.2", 8080),
        ("10.1.0.3", 8080),
    )
    without = build_snapshot({"net": net}, [me], peers, "h1")
    assert without.services == () and desired_lb(without)["c1"].empty


def test_a_snapshot_built_without_services_compares_as_before() -> None:
    net = NetworkRecord(name="net", subnet="10.1.0.0/24")
    snap = build_snapshot({"net": net}, [], {}, "h1")
    assert snap.services == ()


def test_the_table_layout_of_a_ruleset() -> None:
    ruleset = rulesets([WEB, spec("idle", "10.1.0.101", ())], [("net", "c1")])["c1"]
    table = table_for(ruleset)
    assert table is not None
    assert set(table.sets) == {SERVICES, VIPS} | {backend_map(i) for i in range(PICK_MIN)}
    assert {name for name in table.chains if name.startswith("pick-")} == {
        f"pick-{n}" for n in range(1, PICK_MIN + 1)
    }
    assert {name for name in table.chains if name.startswith("slot-")} == {
        f"slot-{i}" for i in range(PICK_MIN)
    }
    key = frontend_key("10.1.0.100", "tcp", 80)
    assert table.elements[SERVICES] == {key: "pick-2"}  # no element for the VIP without backends
    assert table.elements[backend_map(0)] == {key: backend_data("10.1.0.2", 8080)}
    assert table.elements[backend_map(1)] == {key: backend_data("10.1.0.3", 8080)}
    assert all(not table.elements[backend_map(i)] for i in range(2, PICK_MIN))
    assert set(table.elements[VIPS]) == {ip_bytes("10.1.0.100"), ip_bytes("10.1.0.101")}
    assert table_for(Ruleset()) is None
    wide = spec("wide", "10.1.0.102", tuple(f"10.1.1.{i}" for i in range(1, 21)))
    many = table_for(rulesets([wide], [("net", "c1")])["c1"])
    assert many is not None and "pick-20" in many.chains and "pick-21" not in many.chains
    assert "pick-19" not in many.chains and "pick-8" in many.chains  # above 8: counts in use only
    assert "slot-19" in many.chains and backend_map(19) in many.sets and "slot-20" not in many.chains


def test_element_bytes_are_the_kernels_layout_and_read_back() -> None:
    key = frontend_key("10.1.0.100", "udp", 53)
    assert key == bytes([10, 1, 0, 100, 17, 0, 0, 0, 0, 53, 0, 0])
    assert describe_frontend(key) == ("10.1.0.100", "udp", 53)
    assert describe_backend(backend_data("10.1.0.2", 8080)) == ("10.1.0.2", 8080)
    assert (
        element_text(backend_map(2), key, backend_data("10.1.0.2", 8080))
        == "10.1.0.100 . 17 . 53 : 10.1.0.2 . 8080"
    )
    assert (
        element_text(SERVICES, frontend_key("10.1.0.100", "tcp", 80), "pick-3")
        == "10.1.0.100 . 6 . 80 : goto pick-3"
    )
    assert element_text(VIPS, ip_bytes("10.1.0.100"), None) == "10.1.0.100"
    assert element_text(SERVICES, b"", "pick-1") == "* : goto pick-1"
