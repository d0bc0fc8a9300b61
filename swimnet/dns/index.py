"""`NamesIndex`: a `NamesView` kept equal to the replicated tables, change by change.

    index = NamesIndex()
    index.load_tables(node.tables)          # the visible entries of every joined network
    for change in watcher: index.apply(change)   # TableChange events, as they come
    view = index.view()                     # current NamesView (cheap when nothing changed)

Rules:
- the index holds the decoded visible rows (overlay_peer and services of every network,
  and network subnets from the cluster-wide networks table); a TableChange's kind says the
  visible state (a failed owner's entries arrive as DELETED, and as CREATED if it returns),
  so the view never answers hidden entries;
- `view()` rebuilds only the networks that changed since the last call, and returns the
  same object while nothing changed: callers may call it for every query;
- a value that does not decode (or whose name disagrees with its key) is skipped and
  counted in `undecodable` by table; its key then has no row;
- no I/O, no clock; not thread-safe (the agent's trio task owns it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Protocol

from swimnet.dns.names import (
    EMPTY_VIEW,
    EndpointRow,
    NamesView,
    NetworkIndex,
    NetworkRecords,
    ServiceRow,
    assemble,
    build_network,
)
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
        self._endpoints: dict[str, dict[str, EndpointRecord]] = {}
        self._services: dict[str, dict[str, ServiceRecord]] = {}
        self._subnets: dict[str, str] = {}
        self._built: dict[str, NetworkIndex] = {}
        self._dirty: set[str] = set()
        self._view: NamesView = EMPTY_VIEW
        self.undecodable: Counter[str] = Counter()
        self.rebuilds = 0
        """Network indexes built so far (for tests and metrics)."""

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
        for network in set(self._endpoints) | set(self._services) | set(self._subnets):
            self._dirty.add(network)
        self._endpoints.clear()
        self._services.clear()
        self._subnets.clear()
        for network in tables.networks():
            for (table, key), (value, _owner) in tables.live_entries(network).items():
                self._put(network, table, key, value)

    def set_network(self, records: NetworkRecords) -> None:
        """Replace one network's rows (and subnet) with `records`' live ones."""
        network = records.network
        self._endpoints[network] = {r.endpoint_id: r.record for r in records.endpoints if r.live}
        self._services[network] = {r.record.name: r.record for r in records.services if r.live}
        if records.subnet is None:
            self._subnets.pop(network, None)
        else:
            self._subnets[network] = records.subnet
        self._dirty.add(network)

    def forget(self, network: str) -> None:
        """Drop a network's rows (this node left it); its subnet stays if still defined."""
        self._endpoints.pop(network, None)
        self._services.pop(network, None)
        self._dirty.add(network)

    def _put(self, network: str, table: str, key: str, value: bytes | None) -> None:
        if network == CLUSTER_SCOPE:
            if table == NETWORKS_TABLE:
                self._put_network(key, value)
            return
        if table == PEERS_TABLE:
            endpoints = self._endpoints.setdefault(network, {})
            record = None if value is None else self._decode_endpoint(value)
            if record is None:
                if endpoints.pop(key, None) is None and value is None:
                    return
            else:
                endpoints[key] = record
        elif table == SERVICES_TABLE:
            services = self._services.setdefault(network, {})
            service = None if value is None else self._decode_service(value, key)
            if service is None:
                if services.pop(key, None) is None and value is None:
                    return
            else:
                services[key] = service
        else:
            return
        self._dirty.add(network)

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
        if self._subnets.get(name) == subnet:
            return
        if subnet is None:
            del self._subnets[name]
        else:
            self._subnets[name] = subnet
        self._dirty.add(name)

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
        return NetworkRecords(
            network=network,
            subnet=self._subnets.get(network),
            endpoints=tuple(
                EndpointRow(eid, rec) for eid, rec in sorted(self._endpoints.get(network, {}).items())
            ),
            services=tuple(ServiceRow(rec) for _, rec in sorted(self._services.get(network, {}).items())),
        )

    def view(self) -> NamesView:
        """The current view (the same object until something changes)."""
        if not self._dirty:
            return self._view
        for network in self._dirty:
            known = network in self._subnets or self._endpoints.get(network) or self._services.get(network)
            if known:
                self._built[network] = build_network(self.records(network))
                self.rebuilds += 1
            else:
                self._built.pop(network, None)
                self._endpoints.pop(network, None)
                self._services.pop(network, None)
        self._dirty.clear()
        self._view = assemble(self._built.values())
        return self._view
