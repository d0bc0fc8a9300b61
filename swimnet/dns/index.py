"""`NamesIndex`: a `NamesView` kept equal to the replicated tables, change by change.

    index = NamesIndex()
    index.load_tables(node.tables)          # the visible entries of every joined network
    for change in watcher: index.apply(change)   # TableChange events, as they come
    view = index.view()                     # the current NamesView (O(1): call it per query)

Rules:
- the index holds the decoded visible rows (overlay_peer and services of every network,
  and network subnets from the cluster-wide networks table); a TableChange's kind says the
  visible state (a failed owner's entries arrive as DELETED, and as CREATED if it returns),
  so the view never answers hidden entries;
- a change updates its network's index in place at once, in O(what it touches) (see
  `names`); the view answers it from the next query on; `load_tables` builds a new view;
- a network with no rows and no subnet leaves the view;
- a value that does not decode (or whose name disagrees with its key) is skipped and
  counted in `undecodable` by table; its key then has no row;
- no I/O, no clock; not thread-safe (the agent's trio task owns it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Protocol

from swimnet.dns.names import NamesView, NetworkIndex, NetworkRecords, build_network
from swimnet.errors import DecodeError
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


class LiveEntries(Protocol):
    """What `load_tables` reads (a `swimnet.tables.view.TablesReader` provides it)."""

    def networks(self) -> list[str]: ...

    def live_entries(self, network: str) -> Mapping[tuple[str, str], tuple[bytes, str]]: ...


class NamesIndex:
    def __init__(self) -> None:
        self._view = NamesView()
        self.undecodable: Counter[str] = Counter()

    # -- input --------------------------------------------------------------------------

    def apply(self, change: TableChange) -> None:
        """One state-derived change of a visible entry."""
        present = change.kind is not ChangeKind.DELETED
        self._put(change.network, change.table, change.key, change.value if present else None)

    def apply_all(self, changes: Iterable[TableChange]) -> None:
        for change in changes:
            self.apply(change)

    def load_tables(self, tables: LiveEntries) -> None:
        """Replace everything with the visible entries of every network `tables` holds."""
        self._view = NamesView()
        for network in tables.networks():
            for (table, key), (value, _owner) in tables.live_entries(network).items():
                self._put(network, table, key, value)

    def set_network(self, records: NetworkRecords) -> None:
        """Replace one network's rows (and subnet) with `records`' live ones."""
        index = build_network(records)
        if index.empty:
            self._view.drop(records.network)
        else:
            self._view.put(index)

    def forget(self, network: str) -> None:
        """Drop a network's rows (this node left it); its subnet stays if still defined."""
        old = self._view.index(network)
        if old is None:
            return
        self.set_network(NetworkRecords(network, old.subnet_text))

    def _index(self, network: str) -> NetworkIndex:
        index = self._view.index(network)
        if index is None:
            index = NetworkIndex(network)
            self._view.put(index)
        return index

    def _settle(self, index: NetworkIndex) -> None:
        if index.empty:
            self._view.drop(index.name)

    def _put(self, network: str, table: str, key: str, value: bytes | None) -> None:
        if network == CLUSTER_SCOPE:
            if table == NETWORKS_TABLE:
                self._put_network(key, value)
            return
        if table == PEERS_TABLE:
            index = self._index(network)
            index.set_endpoint(key, None if value is None else self._decode_endpoint(value))
        elif table == SERVICES_TABLE:
            index = self._index(network)
            index.set_service(key, None if value is None else self._decode_service(value, key))
        else:
            return
        self._settle(index)

    def _put_network(self, name: str, value: bytes | None) -> None:
        subnet: str | None = None
        if value is not None:
            try:
                record = NetworkRecord.decode(value)
            except DecodeError:
                self.undecodable[NETWORKS_TABLE] += 1
                record = None
            if record is not None and record.name == name:
                subnet = record.subnet
            elif record is not None:
                self.undecodable[NETWORKS_TABLE] += 1
        index = self._index(name)
        index.set_subnet(subnet)
        self._settle(index)

    def _decode_endpoint(self, value: bytes) -> EndpointRecord | None:
        try:
            return EndpointRecord.decode(value)
        except DecodeError:
            self.undecodable[PEERS_TABLE] += 1
            return None

    def _decode_service(self, value: bytes, key: str) -> ServiceRecord | None:
        try:
            record = ServiceRecord.decode(value)
        except DecodeError:
            self.undecodable[SERVICES_TABLE] += 1
            return None
        if record.name != key:
            self.undecodable[SERVICES_TABLE] += 1
            return None
        return record

    # -- output -------------------------------------------------------------------------

    def records(self, network: str) -> NetworkRecords:
        """The rows the index holds for one network (all live)."""
        index = self._view.index(network)
        return index.records() if index is not None else NetworkRecords(network)

    def view(self) -> NamesView:
        """The current view (always up to date; the same object until `load_tables`)."""
        return self._view
