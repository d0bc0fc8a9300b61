"""desired_state and the model's validation; naming rules."""

from __future__ import annotations

import pytest

from swimnet.datapath import LocalEndpoint, NetworkSpec, RemoteEndpoint, desired_state, mac_from_ip, names
from swimnet.datapath.model import FLOOD_MAC
from swimnet.errors import ConfigError, LocalProtocolError

NET = NetworkSpec("a", 4097, "10.1.0.0/24", gateway="10.1.0.254")
LOCAL = LocalEndpoint("a", "ep1", "c1", "10.1.0.1/24", mac_from_ip("10.1.0.1"), "c1")


@pytest.mark.parametrize(
    ("ip", "mac"),
    [
        ("10.1.0.2", "02:42:0a:01:00:02"),
        ("10.1.0.2/24", "02:42:0a:01:00:02"),
        ("192.168.255.1", "02:42:c0:a8:ff:01"),
    ],
)
def test_mac_from_ip_is_dockers(ip: str, mac: str) -> None:
    assert mac_from_ip(ip) == mac


def test_sandbox_of_a_network_with_a_local_endpoint() -> None:
    d = desired_state("node-1", "192.0.2.11", 1500, [NET], [LOCAL], [])
    box = d.sandbox("a")
    assert box.netns == "swn-node-1-4097"
    assert (box.vni, box.port, box.local_vtep, box.mtu) == (4097, 4789, "192.0.2.11", 1450)
    assert (box.bridge, box.vxlan, box.host_vxlan) == ("br0", "vxlan0", "swv4097")
    assert box.gateway == "10.1.0.254"
    assert box.bridge_address == "10.1.0.254/24"
    with pytest.raises(LocalProtocolError):
        d.sandbox("missing")


@pytest.mark.parametrize(
    ("underlay", "net_mtu", "expected"),
    [(1500, None, 1450), (9000, None, 8950), (9000, 1400, 1400), (1500, 9000, 1450)],
)
def test_mtu_is_underlay_minus_50_capped_by_the_network(
    underlay: int, net_mtu: int | None, expected: int
) -> None:
    net = NetworkSpec("a", 4097, "10.1.0.0/24", mtu=net_mtu)
    assert desired_state("n", "192.0.2.11", underlay, [net], [LOCAL], []).sandbox("a").mtu == expected


def test_flood_entries_cover_every_remote_vtep_once() -> None:
    net = NetworkSpec("a", 4097, "10.1.0.0/24", flood=True)
    remotes = [
        RemoteEndpoint("a", f"e{i}", f"10.1.0.{i}/24", mac_from_ip(f"10.1.0.{i}"), f"192.0.2.{10 + i % 2}")
        for i in range(2, 8)
    ]
    fdb = desired_state("n", "192.0.2.99", 1500, [net], [LOCAL], remotes).sandboxes["swn-n-4097"].fdb
    assert {v for m, v in fdb if m == FLOOD_MAC} == {"192.0.2.10", "192.0.2.11"}
    assert len(fdb) == 6 + 2


def test_remote_endpoints_of_other_networks_are_ignored() -> None:
    other = RemoteEndpoint("b", "x", "10.9.0.2/24", mac_from_ip("10.9.0.2"), "192.0.2.12")
    d = desired_state("n", "192.0.2.11", 1500, [NET], [LOCAL], [other])
    assert d.entry_count() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: NetworkSpec("a", 0, "10.1.0.0/24"),
        lambda: NetworkSpec("a", 4097, "10.1.0.1/24"),
        lambda: NetworkSpec("a", 4097, "10.1.0.0/24", gateway="10.2.0.1"),
        lambda: NetworkSpec("a", 4097, "10.1.0.0/24", port=0),
        lambda: RemoteEndpoint("a", "e", "10.1.0.2/24", "01:00:5e:00:00:01", "192.0.2.1"),
        lambda: RemoteEndpoint("a", "e", "10.1.0.2/24", "zz:00:00:00:00:01", "192.0.2.1"),
        lambda: RemoteEndpoint("a", "e", "10.1.0.2/24", "02:00:00:00:00:01", "not-an-ip"),
        lambda: RemoteEndpoint("a", "e", "10.1.0.2/33", "02:00:00:00:00:01", "192.0.2.1"),
        lambda: LocalEndpoint("a", "e", "c", "10.1.0.2/24", "02:00:00:00:00:01", "rel/path"),
        lambda: LocalEndpoint("a", "e", "c", "10.1.0.2/24", "02:00:00:00:00:01", 0),
        lambda: LocalEndpoint("a", "e", "c", "10.1.0.2/24", "02:00:00:00:00:01", "c", ifname="x" * 16),
        lambda: desired_state("bad tag", "192.0.2.11", 1500, [NET], [], []),
        lambda: desired_state("n", "192.0.2.11", 1500, [NET, NetworkSpec("b", 4097, "10.2.0.0/24")], [], []),
        lambda: desired_state("n", "192.0.2.11", 1500, [NET, NET], [], []),
        lambda: desired_state("n", "192.0.2.11", 1500, [], [LOCAL], []),
        lambda: desired_state("n", "192.0.2.11", 600, [NET], [LOCAL], []),
    ],
)
def test_bad_values_raise_config_error(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_values_are_normalised() -> None:
    r = RemoteEndpoint("a", "e", "10.1.0.2/24", "02:AA:00:00:00:01", "192.0.2.1")
    assert r.mac == "02:aa:00:00:00:01"
    with pytest.raises(ConfigError, match="six hex pairs separated by ':'"):  # one written form
        RemoteEndpoint("a", "e", "10.1.0.2/24", "02-AA-00-00-00-01", "192.0.2.1")
    assert r.address == "10.1.0.2"
    assert LocalEndpoint("a", "e", "c", "10.1.0.2/255.255.255.0", "02:00:00:00:00:01", 1).ip == "10.1.0.2/24"
    with pytest.raises(ConfigError, match="no prefix length"):  # never a /32 by accident
        LocalEndpoint("a", "e", "c", "10.1.0.2", "02:00:00:00:00:01", 1234)


def test_sandbox_names_never_claim_another_tags_namespaces() -> None:
    assert names.sandbox_vni("a", "swn-a-4097") == 4097
    assert names.sandbox_vni("a", "swn-a-1-4097") is None
    assert names.sandbox_vni("a-1", "swn-a-1-4097") == 4097
    assert names.sandbox_vni("a-1", "swn-a-4097") is None
    assert names.sandbox_vni("a", "swn-ab-4097") is None
    assert names.is_host_vxlan_name("swv4097")
    assert not names.is_host_vxlan_name("swv")
    assert not names.is_host_vxlan_name("vxlan0")
    assert len(names.veth_name("some endpoint id" * 10)) <= 15
