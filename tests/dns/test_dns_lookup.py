"""What a container gets for a name: the names view and `lookup`, as case tables (pure)."""

from __future__ import annotations

import random

import pytest
from dns_fixtures import BACK, FRONT, endpoint, two_networks

from swimnet.dns import build_view, resolve
from swimnet.dns.limits import Policy
from swimnet.dns.lookup import AAAA, ANY, PTR, A, Outcome, lookup, reverse_address
from swimnet.dns.names import EndpointRow, NetworkRecords, ServiceRow, names_of
from swimnet.overlay.model import ServiceRecord

VIEW = two_networks()

# (networks, name, type) -> (rcode, sorted records, forwarded)
CASES = [
    # endpoint names, case-insensitively
    (("front",), "web1", "A", "NOERROR", ["A 10.1.0.2"], False),
    (("front",), "WeB1.", "A", "NOERROR", ["A 10.1.0.2"], False),
    # a vip service: its VIP; tasks.: the healthy backends (unknown backend ids skipped)
    (("front",), "web", "A", "NOERROR", ["A 10.1.0.100"], False),
    (("front",), "tasks.web", "A", "NOERROR", ["A 10.1.0.2", "A 10.1.0.3"], False),
    # dnsrr: the healthy backends (db's owner failed: hidden, no backend)
    (("front",), "rr", "A", "NOERROR", ["A 10.1.0.2", "A 10.1.0.3"], False),
    (("front",), "tasks.rr", "A", "NOERROR", ["A 10.1.0.2", "A 10.1.0.3"], False),
    # a dnsrr service without a healthy backend: ours, NXDOMAIN
    (("front",), "empty", "A", "NXDOMAIN", [], False),
    (("front",), "tasks.empty", "A", "NXDOMAIN", [], False),
    # a hidden endpoint is not answered: an unknown single-label name, NXDOMAIN here
    (("front",), "db", "A", "NXDOMAIN", [], False),
    (("front",), "nosuch", "AAAA", "NXDOMAIN", [], False),
    (("front",), "localhost", "A", "FORWARD", [], True),
    # another network's names: NXDOMAIN, bare or qualified; never forwarded
    (("front",), "cache", "A", "NXDOMAIN", [], False),
    (("front",), "api", "A", "NXDOMAIN", [], False),
    (("front",), "tasks.api", "A", "NXDOMAIN", [], False),
    (("front",), "cache.back", "A", "NXDOMAIN", [], False),
    (("back",), "web", "A", "NXDOMAIN", [], False),
    # the qualified form NAME.NETWORK
    (("front",), "web1.front", "A", "NOERROR", ["A 10.1.0.2"], False),
    (("front", "back"), "web1.back", "A", "NOERROR", ["A 10.2.0.2"], False),
    (("front", "back"), "tasks.api.BACK", "A", "NOERROR", ["A 10.2.0.5"], False),
    # the first attached network answers a name several have
    (("front", "back"), "web1", "A", "NOERROR", ["A 10.1.0.2"], False),
    (("back", "front"), "web1", "A", "NOERROR", ["A 10.2.0.2"], False),
    (("front", "back"), "cache", "A", "NOERROR", ["A 10.2.0.5"], False),
    # other types of a known name: NOERROR, no answer
    (("front",), "web1", "AAAA", "NOERROR", [], False),
    (("front",), "web", "MX", "NOERROR", [], False),
    (("front",), "web1", "TXT", "NOERROR", [], False),
    (("front",), "web1", "ANY", "NOERROR", ["A 10.1.0.2"], False),
    # not ours
    (("front",), "example.com", "A", "FORWARD", [], True),
    (("front",), "web1.example.com", "A", "FORWARD", [], True),
    (("front",), "nosuch.front", "A", "FORWARD", [], True),
    (("front",), ".", "A", "FORWARD", [], True),
    ((), "web1", "A", "NXDOMAIN", [], False),
    # PTR: endpoint addresses and VIPs of attached networks, Docker's NAME.NETWORK form
    (("front",), "2.0.1.10.in-addr.arpa", "PTR", "NOERROR", ["PTR web1.front."], False),
    (("front",), "100.0.1.10.in-addr.arpa", "PTR", "NOERROR", ["PTR web.front."], False),
    (("front",), "2.0.1.10.in-addr.arpa", "A", "NOERROR", [], False),
    # the network's other addresses, a hidden one, another network's: NXDOMAIN
    (("front",), "77.0.1.10.in-addr.arpa", "PTR", "NXDOMAIN", [], False),
    (("front",), "4.0.1.10.in-addr.arpa", "PTR", "NXDOMAIN", [], False),
    (("front",), "5.0.2.10.in-addr.arpa", "PTR", "NXDOMAIN", [], False),
    (("front", "back"), "5.0.2.10.in-addr.arpa", "PTR", "NOERROR", ["PTR cache.back."], False),
    # addresses outside every network, partial or bad reverse names: upstream's
    (("front",), "1.1.168.192.in-addr.arpa", "PTR", "FORWARD", [], True),
    (("front",), "0.1.10.in-addr.arpa", "PTR", "FORWARD", [], True),
    (("front",), "300.0.1.10.in-addr.arpa", "PTR", "FORWARD", [], True),
]


@pytest.mark.parametrize(("networks", "name", "qtype", "rcode", "records", "forwarded"), CASES)
def test_case_table(
    networks: tuple[str, ...], name: str, qtype: str, rcode: str, records: list[str], forwarded: bool
) -> None:
    got = resolve(VIEW, networks, name, qtype)
    assert (got.rcode, sorted(got.records), got.forwarded) == (rcode, records, forwarded)


def test_single_label_names_can_be_left_to_upstream_as_docker_does() -> None:
    docker = Policy(forward_single_label=True)
    assert resolve(VIEW, ("front",), "db", "A", policy=docker).forwarded
    assert resolve(VIEW, ("front",), "cache", "A", policy=docker).rcode == "NXDOMAIN"
    assert resolve(VIEW, ("front",), "web1", "A", policy=docker).records == ("A 10.1.0.2",)
    found = lookup(VIEW, ("front",), "nosuch", A, random.Random(0), forward_single_label=True)
    assert found.outcome is Outcome.FORWARD


def test_resolve_reports_the_network_and_kind() -> None:
    got = resolve(VIEW, ("front", "back"), "tasks.api", "A")
    assert (got.network, got.kind) == ("back", "tasks")
    with pytest.raises(ValueError):
        resolve(VIEW, ("front",), "a" * 300, "A")
    with pytest.raises(ValueError):
        resolve(VIEW, ("front",), "web", "NOSUCHTYPE")


def test_answers_with_several_addresses_come_in_random_order() -> None:
    eps = tuple(EndpointRow(f"id{i}", endpoint(f"t{i}", f"10.3.0.{i + 2}")) for i in range(8))
    svc = ServiceRow(ServiceRecord("s", None, "dnsrr", backends=tuple(e.endpoint_id for e in eps)))
    view = build_view([NetworkRecords("n", "10.3.0.0/24", eps, (svc,))])
    orders = set()
    for seed in range(20):
        found = lookup(view, ("n",), "s", A, random.Random(seed))
        assert sorted(found.records) == sorted((A, f"10.3.0.{i + 2}") for i in range(8))
        orders.add(found.records)
    assert len(orders) > 10
    # the same seed gives the same order: the rng is the only randomness
    assert lookup(view, ("n",), "tasks.s", A, random.Random(3)) == lookup(
        view, ("n",), "tasks.s", A, random.Random(3)
    )


def test_a_service_shadows_an_endpoint_of_the_same_name() -> None:
    records = NetworkRecords(
        "n",
        "10.3.0.0/24",
        (EndpointRow("e1", endpoint("web", "10.3.0.2")), EndpointRow("e2", endpoint("web", "10.3.0.3"))),
        (ServiceRow(ServiceRecord("web", "10.3.0.200", "vip", backends=("e1",))),),
    )
    view = build_view([records])
    assert lookup(view, ("n",), "web", A, random.Random(0)).records == ((A, "10.3.0.200"),)
    # two endpoints with one name: both addresses
    plain = build_view([NetworkRecords("n", None, records.endpoints)])
    assert sorted(lookup(plain, ("n",), "web", A, random.Random(0)).records) == [
        (A, "10.3.0.2"),
        (A, "10.3.0.3"),
    ]


def test_hidden_service_rows_are_not_answered() -> None:
    services = tuple(ServiceRow(s.record, live=False) for s in FRONT.services)
    hidden = NetworkRecords("front", FRONT.subnet, FRONT.endpoints, services)
    view = build_view([hidden, BACK])
    assert lookup(view, ("front",), "web", A, random.Random(0)).outcome is Outcome.NXDOMAIN
    assert lookup(view, ("front",), "tasks.web", A, random.Random(0)).outcome is Outcome.FORWARD
    # the VIP's PTR went with it, but the address is still the network's
    assert lookup(view, ("front",), "100.0.1.10.in-addr.arpa", PTR, random.Random(0)).outcome is (
        Outcome.NXDOMAIN
    )


def test_reverse_names() -> None:
    assert str(reverse_address("4.3.2.1.in-addr.arpa")) == "1.2.3.4"
    assert reverse_address("4.3.2.in-addr.arpa") is None
    assert reverse_address("x.3.2.1.in-addr.arpa") is None
    v6 = ".".join(reversed("20010db8000000000000000000000001")) + ".ip6.arpa"
    assert str(reverse_address(v6)) == "2001:db8::1"
    assert reverse_address("1.ip6.arpa") is None


def test_any_and_aaaa_with_ipv6_addresses() -> None:
    from swimnet.dns.names import NameEntry, NamesView, NetworkIndex

    index = NetworkIndex("six")
    index.names["h"] = NameEntry("endpoint", ("10.0.0.1",), ("fd00::1",))  # the model is IPv4 only
    view = NamesView([index])
    assert lookup(view, ("six",), "h", AAAA, random.Random(0)).records == ((AAAA, "fd00::1"),)
    assert sorted(lookup(view, ("six",), "h", ANY, random.Random(0)).records) == [
        (A, "10.0.0.1"),
        (AAAA, "fd00::1"),
    ]


def test_names_of_lists_what_a_container_sees() -> None:
    seen = names_of(VIEW, ("front",))
    assert {"web1", "web2", "client", "web", "tasks.web", "rr", "tasks.rr", "empty"} <= set(seen)
    assert "db" not in seen and "cache" not in seen
    assert VIEW.name_count() == len(VIEW.networks["front"]) + len(VIEW.networks["back"])
