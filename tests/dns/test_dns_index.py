"""`NamesIndex`: the view kept equal to the tables, from table changes or a full load (pure)."""

from __future__ import annotations

import random
from collections.abc import Mapping

from dns_fixtures import FRONT, endpoint

from swimnet.dns import NamesIndex, resolve
from swimnet.dns.lookup import A, Outcome, lookup
from swimnet.overlay.model import (
    CLUSTER_SCOPE,
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    NetworkRecord,
    ServiceRecord,
)
from swimnet.tables.changes import ChangeKind, TableChange

CREATED, UPDATED, DELETED = ChangeKind.CREATED, ChangeKind.UPDATED, ChangeKind.DELETED


def ep(kind: ChangeKind, key: str, name: str, ip: str, network: str = "front") -> TableChange:
    return TableChange(kind, network, PEERS_TABLE, key, endpoint(name, ip).encode(), "node-a")


def svc(kind: ChangeKind, record: ServiceRecord, network: str = "front") -> TableChange:
    return TableChange(kind, network, SERVICES_TABLE, record.name, record.encode(), "node-a")


def net(kind: ChangeKind, name: str, subnet: str) -> TableChange:
    record = NetworkRecord(name=name, subnet=subnet)
    return TableChange(kind, CLUSTER_SCOPE, NETWORKS_TABLE, name, record.encode(), "node-a")


def test_changes_appear_and_disappear_at_once() -> None:
    index = NamesIndex()
    assert resolve(index.view(), ("front",), "web1").rcode == "NXDOMAIN"
    index.apply(ep(CREATED, "e1", "web1", "10.1.0.2"))
    assert resolve(index.view(), ("front",), "web1").records == ("A 10.1.0.2",)
    index.apply(ep(UPDATED, "e1", "web1", "10.1.0.7"))
    assert resolve(index.view(), ("front",), "web1").records == ("A 10.1.0.7",)
    index.apply(svc(CREATED, ServiceRecord("web", None, "dnsrr", backends=("e1", "e2"))))
    index.apply(ep(CREATED, "e2", "web2", "10.1.0.3"))
    assert sorted(resolve(index.view(), ("front",), "tasks.web").records) == ["A 10.1.0.3", "A 10.1.0.7"]
    # a failed owner's entry arrives as DELETED: no longer answered, no longer a backend
    index.apply(ep(DELETED, "e2", "web2", "10.1.0.3"))
    view = index.view()
    assert resolve(view, ("front",), "tasks.web").records == ("A 10.1.0.7",)
    assert resolve(view, ("front",), "web2").rcode == "NXDOMAIN"
    index.apply(svc(DELETED, ServiceRecord("web", None, "dnsrr")))
    index.apply(ep(DELETED, "e1", "web1", "10.1.0.7"))
    assert index.view().networks == {}


def test_subnets_come_from_the_cluster_networks_table() -> None:
    index = NamesIndex()
    index.apply(net(CREATED, "front", "10.1.0.0/24"))
    assert resolve(index.view(), ("front",), "9.0.1.10.in-addr.arpa", "PTR").rcode == "NXDOMAIN"
    index.apply(net(DELETED, "front", "10.1.0.0/24"))
    assert resolve(index.view(), ("front",), "9.0.1.10.in-addr.arpa", "PTR").forwarded
    # other tables and scopes are not names
    index.apply(TableChange(CREATED, "front", "lb", "x", b"junk", "node-a"))
    index.apply(TableChange(CREATED, CLUSTER_SCOPE, "keys", "x", b"junk", "node-a"))
    assert index.view().networks == {}


def test_the_view_is_rebuilt_only_when_and_where_something_changed() -> None:
    index = NamesIndex()
    index.apply(ep(CREATED, "e1", "web1", "10.1.0.2"))
    index.apply(ep(CREATED, "c1", "cache", "10.2.0.5", network="back"))
    first = index.view()
    assert index.view() is first and index.rebuilds == 2
    index.apply(ep(CREATED, "e2", "web2", "10.1.0.3"))
    second = index.view()
    assert second is not first and index.rebuilds == 3
    assert second.networks["back"] is first.networks["back"]
    # deleting what is not there changes nothing
    index.apply(ep(DELETED, "nope", "x", "10.1.0.99"))
    assert index.view() is second


def test_undecodable_values_are_counted_and_skipped() -> None:
    index = NamesIndex()
    index.apply(ep(CREATED, "e1", "web1", "10.1.0.2"))
    index.apply(TableChange(UPDATED, "front", PEERS_TABLE, "e1", b"\x93garbage", "node-a"))
    index.apply(TableChange(CREATED, "front", SERVICES_TABLE, "s", b"", "node-a"))
    wrong_key = ServiceRecord("web", "10.1.0.100")
    index.apply(TableChange(CREATED, "front", SERVICES_TABLE, "not-web", wrong_key.encode(), "node-a"))
    index.apply(TableChange(CREATED, CLUSTER_SCOPE, NETWORKS_TABLE, "front", b"??", "node-a"))
    assert index.undecodable == {PEERS_TABLE: 1, SERVICES_TABLE: 2, NETWORKS_TABLE: 1}
    assert resolve(index.view(), ("front",), "web1").rcode == "NXDOMAIN"  # the bad update replaced it


class FakeTables:
    """The two reads `load_tables` makes, over fixed entries."""

    def __init__(self, entries: Mapping[str, Mapping[tuple[str, str], tuple[bytes, str]]]) -> None:
        self.entries = entries

    def networks(self) -> list[str]:
        return sorted(self.entries)

    def live_entries(self, network: str) -> Mapping[tuple[str, str], tuple[bytes, str]]:
        return self.entries[network]


def test_load_tables_replaces_everything() -> None:
    live = {
        CLUSTER_SCOPE: {(NETWORKS_TABLE, "front"): (NetworkRecord("front", "10.1.0.0/24").encode(), "n1")},
        "front": {
            (PEERS_TABLE, r.endpoint_id): (r.record.encode(), "n1") for r in FRONT.endpoints if r.live
        }
        | {(SERVICES_TABLE, s.record.name): (s.record.encode(), "n1") for s in FRONT.services},
    }
    index = NamesIndex()
    index.apply(ep(CREATED, "old", "stale", "10.9.0.2", network="gone"))
    index.load_tables(FakeTables(live))
    view = index.view()
    assert set(view.networks) == {"front"}
    assert sorted(resolve(view, ("front",), "tasks.rr").records) == ["A 10.1.0.2", "A 10.1.0.3"]
    assert lookup(view, ("front",), "db", A, random.Random(0)).outcome is Outcome.NXDOMAIN  # hidden
    assert index.records("front").subnet == "10.1.0.0/24"
    index.forget("front")
    assert resolve(index.view(), ("front",), "web1").rcode == "NXDOMAIN"
    assert not resolve(index.view(), ("front",), "web1").records
