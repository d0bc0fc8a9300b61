"""`NamesIndex`: the view kept equal to the tables, from table changes or a full load (pure)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from dns_fixtures import FRONT, endpoint
from hypothesis import given
from hypothesis import strategies as st

from swimnet.dns import NamesIndex, resolve
from swimnet.dns.lookup import A, Outcome, lookup
from swimnet.dns.names import NetworkIndex, build_network, snapshot
from swimnet.overlay.model import (
    CLUSTER_SCOPE,
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
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


def test_changes_update_the_network_in_place() -> None:
    index = NamesIndex()
    index.apply(ep(CREATED, "e1", "web1", "10.1.0.2"))
    index.apply(ep(CREATED, "c1", "cache", "10.2.0.5", network="back"))
    view = index.view()
    back = view.networks["back"]
    index.apply(ep(CREATED, "e2", "web2", "10.1.0.3"))
    assert index.view() is view and view.networks["back"] is back
    assert resolve(view, ("front",), "web2").records == ("A 10.1.0.3",)
    # deleting what is not there changes nothing
    index.apply(ep(DELETED, "nope", "x", "10.1.0.99"))
    assert set(index.view().networks) == {"front", "back"}


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


# -- the incremental index equals a fresh build, whatever the order of changes --------------

_NAMES = ["web", "Web", "db", "tasks.web", "api"]
_IDS = [f"e{i}" for i in range(6)]


def _endpoint_op() -> st.SearchStrategy[tuple[str, str, EndpointRecord | None]]:
    record = st.builds(
        lambda name, host: endpoint(name, f"10.1.0.{host}"), st.sampled_from(_NAMES), st.integers(2, 6)
    )
    return st.tuples(st.just("endpoint"), st.sampled_from(_IDS), st.none() | record)


def _service_op() -> st.SearchStrategy[tuple[str, str, ServiceRecord | None]]:
    def make(name: str, vip: int | None, backends: list[str]) -> ServiceRecord:
        if vip is None:
            return ServiceRecord(name, None, "dnsrr", backends=tuple(backends))
        return ServiceRecord(name, f"10.1.0.{vip}", "vip", backends=tuple(backends))

    return st.sampled_from(_NAMES).flatmap(
        lambda name: st.tuples(
            st.just("service"),
            st.just(name),
            st.none()
            | st.builds(make, st.just(name), st.none() | st.integers(2, 8), st.lists(st.sampled_from(_IDS))),
        )
    )


@given(st.lists(_endpoint_op() | _service_op(), max_size=40))
def test_incremental_updates_equal_a_fresh_build(ops: list[tuple[str, str, Any]]) -> None:
    index = NetworkIndex("front", "10.1.0.0/24")
    for kind, key, record in ops:
        if kind == "endpoint":
            index.set_endpoint(key, record)
        else:
            index.set_service(key, record)
    fresh = build_network(index.records())
    assert snapshot(index) == snapshot(fresh)
    # and the rows replayed in reverse order give the same index again
    rows = index.records()
    reverse = NetworkIndex("front", "10.1.0.0/24")
    for srow in reversed(rows.services):
        reverse.set_service(srow.record.name, srow.record)
    for erow in reversed(rows.endpoints):
        reverse.set_endpoint(erow.endpoint_id, erow.record)
    assert snapshot(reverse) == snapshot(fresh)
