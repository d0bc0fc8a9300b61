"""The names index fed by real replicated tables (`TableState`): remote endpoints and
services arrive by gossip, a failed owner's entries are hidden and come back, and the index
built from changes equals the one loaded from the tables' visible entries."""

from __future__ import annotations

import random

from dns_fixtures import endpoint

from swimnet.dns import NamesIndex, resolve
from swimnet.dns.names import snapshot
from swimnet.overlay.model import PEERS_TABLE, SERVICES_TABLE, ServiceRecord
from swimnet.tables import TableState
from swimnet.tables.view import TablesReader
from swimnet.wire.tables import NetworkEvent, TableEvent


def tables() -> TableState:
    state = TableState("me", rng=random.Random(1))
    state.join_network("front", 0.0)
    state.handle_gossip(NetworkEvent(1, "o1", "front"), 0.0)
    return state


def test_gossip_failure_and_return_reach_the_names() -> None:
    state = tables()
    index = NamesIndex()
    index.apply_all(state.put("front", PEERS_TABLE, "mine", endpoint("client", "10.1.0.9").encode(), 1.0))
    for ltime, (key, name, ip) in enumerate([("r1", "web1", "10.1.0.2"), ("r2", "web2", "10.1.0.3")], 2):
        event = TableEvent(ltime, "o1", "front", PEERS_TABLE, key, endpoint(name, ip).encode())
        index.apply_all(state.handle_gossip(event, 1.0))
    web = ServiceRecord("web", None, "dnsrr", backends=("r1", "r2", "mine"))
    index.apply_all(state.put("front", SERVICES_TABLE, "web", web.encode(), 1.0))
    view = index.view()
    assert sorted(resolve(view, ("front",), "web").records) == ["A 10.1.0.2", "A 10.1.0.3", "A 10.1.0.9"]
    assert resolve(view, ("front",), "web1").records == ("A 10.1.0.2",)

    # o1 fails: its endpoints are hidden, so neither their names nor the backends answer
    index.apply_all(state.member_failed("o1", 5.0))
    assert resolve(view, ("front",), "web1").rcode == "NXDOMAIN"
    assert resolve(view, ("front",), "tasks.web").records == ("A 10.1.0.9",)
    # ... and the index still equals one loaded from what the tables show
    loaded = NamesIndex()
    loaded.load_tables(TablesReader(state))
    assert snapshot(loaded.view().networks["front"]) == snapshot(view.networks["front"])

    # o1 is back: everything answers again
    index.apply_all(state.member_alive("o1", 6.0))
    assert resolve(view, ("front",), "web1").records == ("A 10.1.0.2",)
    assert len(resolve(view, ("front",), "tasks.web").records) == 3
    loaded.load_tables(TablesReader(state))
    assert snapshot(loaded.view().networks["front"]) == snapshot(view.networks["front"])
