"""A typed, read-only view of the overlay tables as this node holds them, kept current
incrementally.

Rules:
- only visible entries count (live, owner not failed); a value that does not decode as its
  record type (or a network definition stored under another name) is left out and counted
  in `undecodable` when it is read in (a newer peer's garbage never breaks a listing);
- freshness: with a feed (`follow`: a table-change subscription of the node; the node
  pushes every change into it synchronously, as the change happens, see
  `swimnet.runtime.subscriptions`), every read first applies the buffered changes to the
  networks the view mirrors, so it answers from the tables as they are at that moment; a
  network is mirrored from the tables at its first read; a feed that dropped changes (its
  buffer overflowed) or closed makes the view load again at the next read. Without a feed
  every read loads what it reads: always right, O(network) per read (before the agent's
  watch runs, and in unit tests);
- cost with a feed: a change is O(1) (its value decoded once, cached by value bytes; the
  IP, MAC and name indexes and the key order updated); a lookup by key, IP, MAC or name is
  O(1); a sorted listing is a copy of the ordered rows, the effective VNIs are computed once
  per change of the networks table; nothing scans a table per row or per lookup. `loads` counts the loads
  from the tables (what the agent's complexity tests watch);
- `version(network)` changes whenever what the view shows of a network changes (the
  agent's refresh and datapath feed skip the networks that did not change);
- a network's endpoints and services are known only if this node holds the network's
  scope (like Docker: a host only knows the overlays it participates in); `held()` says
  which; the network definitions (CLUSTER_SCOPE) are held by every agent;
- tuples returned are snapshots; mappings returned are the view's live state: read them at
  once, copy them before an await;
- the stored-entry reads (`stored`, `deleted_keys`, `owns_any`: tombstones and hidden
  entries included) scan the network's entries: call them once per refresh, not per row;
- it reads the node's tables only through a `TableReader` (given at construction; the
  agent's comes from `cluster.Cluster.tables`).
"""

from __future__ import annotations

import bisect
import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, Protocol, TypeVar

from swimnet.errors import DecodeError
from swimnet.overlay import (
    CLUSTER_SCOPE,
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
    NetworkRecord,
    ServiceRecord,
    assign_vnis,
)
from swimnet.tables.changes import ChangeKind, TableChange
from swimnet.tables.entry import Entry

R = TypeVar("R")


class TableReader(Protocol):
    """Read-only queries of the replicated tables this node holds."""

    def networks(self) -> list[str]:
        """The joined networks (CLUSTER_SCOPE included)."""
        ...

    def is_joined(self, network: str) -> bool: ...

    def live_entries(self, network: str) -> Mapping[tuple[str, str], tuple[bytes, str]]:
        """(table, key) -> (value, owner) of the visible entries."""
        ...

    def entries(self, network: str) -> Sequence[Entry]:
        """Every stored version (tombstones and hidden entries included)."""
        ...

    def peers(self, network: str) -> list[str]:
        """Attached (not leaving, not failed) members of the network other than this node."""
        ...


class ChangeFeed(Protocol):
    """A table-change subscription the node pushes into synchronously (`Subscription`)."""

    dropped: int

    @property
    def closed(self) -> bool: ...

    def __len__(self) -> int: ...

    def receive_nowait(self) -> TableChange: ...


@functools.lru_cache(maxsize=4096)
def _network(value: bytes) -> NetworkRecord:
    return NetworkRecord.decode(value)


@functools.lru_cache(maxsize=16384)
def _endpoint(value: bytes) -> EndpointRecord:
    return EndpointRecord.decode(value)


@functools.lru_cache(maxsize=4096)
def _service(value: bytes) -> ServiceRecord:
    return ServiceRecord.decode(value)


def _network_named(key: str, value: bytes) -> NetworkRecord:
    record = _network(value)
    if record.name != key:
        raise DecodeError(f"network: stored under {key!r} but named {record.name!r}")
    return record


class _Table(Generic[R]):
    """One table of a mirrored network: key -> (decoded record, owner), and the rows in
    key order (kept sorted as rows come and go: a listing never sorts)."""

    def __init__(self, name: str, decode: Callable[[str, bytes], R], undecodable: Counter[str]) -> None:
        self.name = name
        self._decode = decode
        self._undecodable = undecodable
        self.rows: dict[str, tuple[R, str]] = {}
        self._ordered: list[tuple[str, R, str]] = []
        self._sorted: tuple[tuple[str, R, str], ...] | None = None

    def put(self, key: str, value: bytes, owner: str) -> None:
        self.drop(key)
        try:
            record = self._decode(key, value)
        except DecodeError:
            self._undecodable[self.name] += 1
            return
        self.rows[key] = (record, owner)
        bisect.insort(self._ordered, (key, record, owner), key=_first)
        self._sorted = None
        self._added(key, record)

    def drop(self, key: str) -> None:
        old = self.rows.pop(key, None)
        if old is not None:
            del self._ordered[bisect.bisect_left(self._ordered, key, key=_first)]
            self._sorted = None
            self._removed(key, old[0])

    def sorted(self) -> tuple[tuple[str, R, str], ...]:
        """(key, record, owner) by key."""
        if self._sorted is None:
            self._sorted = tuple(self._ordered)
        return self._sorted

    def _added(self, key: str, record: R) -> None:
        pass

    def _removed(self, key: str, record: R) -> None:
        pass


def _first(row: tuple[str, object, str]) -> str:
    return row[0]


def _index_add(index: dict[str, set[str]], value: str, key: str) -> bool:
    """Add; True if `value` is now used by more than one key."""
    keys = index.setdefault(value, set())
    keys.add(key)
    return len(keys) > 1


def _index_remove(index: dict[str, set[str]], value: str, key: str) -> bool:
    """Remove; True if `value` is still used by more than one key."""
    keys = index.get(value)
    if keys is None:
        return False
    keys.discard(key)
    if not keys:
        del index[value]
    return len(keys) > 1


class _Endpoints(_Table[EndpointRecord]):
    """The overlay_peer table, indexed by address, MAC and name; shared addresses tracked."""

    def __init__(self, undecodable: Counter[str]) -> None:
        super().__init__(PEERS_TABLE, lambda _, value: _endpoint(value), undecodable)
        self.by_address: dict[str, set[str]] = {}
        self.by_mac: dict[str, set[str]] = {}
        self.by_name: dict[str, set[str]] = {}
        self.shared: set[tuple[str, str]] = set()
        """("ip", address) and ("mac", mac) used by more than one endpoint."""

    def _added(self, key: str, record: EndpointRecord) -> None:
        if _index_add(self.by_address, record.address, key):
            self.shared.add(("ip", record.address))
        if _index_add(self.by_mac, record.mac, key):
            self.shared.add(("mac", record.mac))
        _index_add(self.by_name, record.name, key)

    def _removed(self, key: str, record: EndpointRecord) -> None:
        if not _index_remove(self.by_address, record.address, key):
            self.shared.discard(("ip", record.address))
        if not _index_remove(self.by_mac, record.mac, key):
            self.shared.discard(("mac", record.mac))
        _index_remove(self.by_name, record.name, key)

    def rows_of(self, keys: set[str]) -> list[tuple[str, EndpointRecord, str]]:
        return [(key, *self.rows[key]) for key in sorted(keys)]


class _Mirror:
    """What the view holds of one network: the visible rows, raw and decoded."""

    def __init__(self, undecodable: Counter[str], version: int) -> None:
        self.version = version
        self.raw: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.networks: _Table[NetworkRecord] = _Table(NETWORKS_TABLE, _network_named, undecodable)
        self.endpoints = _Endpoints(undecodable)
        self.services: _Table[ServiceRecord] = _Table(
            SERVICES_TABLE, lambda _, value: _service(value), undecodable
        )
        self._tables: dict[str, _Table[NetworkRecord] | _Endpoints | _Table[ServiceRecord]] = {
            NETWORKS_TABLE: self.networks,
            PEERS_TABLE: self.endpoints,
            SERVICES_TABLE: self.services,
        }

    def put(self, table: str, key: str, value: bytes, owner: str) -> None:
        self.raw[(table, key)] = (value, owner)
        decoded = self._tables.get(table)
        if decoded is not None:
            decoded.put(key, value, owner)

    def drop(self, table: str, key: str) -> None:
        self.raw.pop((table, key), None)
        decoded = self._tables.get(table)
        if decoded is not None:
            decoded.drop(key)

    def apply(self, change: TableChange, version: int) -> None:
        if change.kind is ChangeKind.DELETED:
            self.drop(change.table, change.key)
        else:
            self.put(change.table, change.key, change.value, change.owner)
        self.version = version


class TablesView:
    def __init__(self, tables: TableReader) -> None:
        self.tables = tables
        self.undecodable: Counter[str] = Counter()
        self.loads = 0
        """Networks read in from the tables (a full pass over the network's entries)."""
        self._feed: ChangeFeed | None = None
        self._dropped = 0
        self._mirrors: dict[str, _Mirror] = {}
        self._seq = 0
        self._vnis: tuple[int, dict[str, int], frozenset[str]] | None = None
        self._records: tuple[int, dict[str, NetworkRecord]] | None = None

    # -- following the node's changes ---------------------------------------------------

    def follow(self, feed: ChangeFeed | None) -> None:
        """Keep current from `feed` (an entered table-change subscription); None: stop."""
        self._feed = feed
        self._dropped = feed.dropped if feed is not None else 0
        self._mirrors.clear()

    @property
    def following(self) -> bool:
        return self._feed is not None

    def _catch_up(self) -> None:
        feed = self._feed
        if feed is None:
            self._mirrors.clear()
            return
        mirrors = self._mirrors
        while len(feed):
            change = feed.receive_nowait()
            mirror = mirrors.get(change.network)
            if mirror is not None:
                self._seq += 1
                mirror.apply(change, self._seq)
        if feed.dropped != self._dropped or feed.closed:
            self._dropped = feed.dropped
            mirrors.clear()
            if feed.closed:
                self._feed = None

    def _mirror(self, network: str) -> _Mirror:
        self._catch_up()
        mirror = self._mirrors.get(network)
        if mirror is None:
            self._seq += 1
            self.loads += 1
            mirror = _Mirror(self.undecodable, self._seq)
            for (table, key), (value, owner) in self.tables.live_entries(network).items():
                mirror.put(table, key, value, owner)
            if self._feed is not None:
                self._mirrors[network] = mirror
        return mirror

    def version(self, network: str) -> int:
        """Changes whenever what the view shows of `network` changes."""
        return self._mirror(network).version

    # -- networks ---------------------------------------------------------------------------

    def networks(self) -> Mapping[str, tuple[NetworkRecord, str]]:
        """Network name -> (record, owner) (live: copy before an await)."""
        return self._mirror(CLUSTER_SCOPE).networks.rows

    def network(self, name: str) -> NetworkRecord | None:
        found = self.networks().get(name)
        return found[0] if found is not None else None

    def records(self) -> dict[str, NetworkRecord]:
        """Network name -> record (computed once per change of the networks table: do not change it)."""
        mirror = self._mirror(CLUSTER_SCOPE)
        if self._records is None or self._records[0] != mirror.version:
            self._records = (mirror.version, {name: r for name, (r, _) in mirror.networks.rows.items()})
        return self._records[1]

    def vnis(self) -> tuple[Mapping[str, int], frozenset[str]]:
        """(name -> effective VNI, names whose requested VNI went to an older network),
        computed once per change of the networks table."""
        mirror = self._mirror(CLUSTER_SCOPE)
        if self._vnis is None or self._vnis[0] != mirror.version:
            effective, collisions = assign_vnis(self.records().values())
            self._vnis = (mirror.version, effective, frozenset(collisions))
        return self._vnis[1], self._vnis[2]

    # -- per-network tables -----------------------------------------------------------------

    def held(self) -> list[str]:
        """Networks whose endpoint and service tables this node holds."""
        return [n for n in self.tables.networks() if n != CLUSTER_SCOPE]

    def is_held(self, network: str) -> bool:
        return network != CLUSTER_SCOPE and self.tables.is_joined(network)

    def is_joined(self, network: str) -> bool:
        """Whether this node holds the scope (CLUSTER_SCOPE included)."""
        return self.tables.is_joined(network)

    def peers(self, network: str) -> list[str]:
        """The other agents attached to the scope (not leaving, not failed)."""
        return self.tables.peers(network)

    def endpoints(self, network: str) -> Sequence[tuple[str, EndpointRecord, str]]:
        """(endpoint id, record, owner) of the network's visible endpoints, by id."""
        return self._mirror(network).endpoints.sorted()

    def endpoint_count(self, network: str) -> int:
        return len(self._mirror(network).endpoints.rows)

    def endpoint(self, network: str, endpoint_id: str) -> tuple[EndpointRecord, str] | None:
        """(record, owner) of one visible endpoint."""
        return self._mirror(network).endpoints.rows.get(endpoint_id)

    def endpoints_using(
        self, network: str, *, address: str | None = None, mac: str | None = None, name: str | None = None
    ) -> list[tuple[str, EndpointRecord, str]]:
        """The visible endpoints with this IP address, MAC or name (the one given), by id."""
        table = self._mirror(network).endpoints
        if address is not None:
            keys = table.by_address.get(address, set())
        elif mac is not None:
            keys = table.by_mac.get(mac, set())
        elif name is not None:
            keys = table.by_name.get(name, set())
        else:
            raise TypeError("endpoints_using: give address, mac or name")
        return table.rows_of(keys)

    def sharing_endpoints(self, network: str) -> list[tuple[str, EndpointRecord, str]]:
        """The visible endpoints whose IP or MAC another endpoint of the network also uses,
        by id (O(those endpoints): what `conflicts.find_conflicts` needs)."""
        table = self._mirror(network).endpoints
        keys: set[str] = set()
        for kind, value in table.shared:
            keys |= (table.by_address if kind == "ip" else table.by_mac)[value]
        return table.rows_of(keys)

    def services(self, network: str) -> Sequence[tuple[str, ServiceRecord, str]]:
        """(service name, record, owner) of the network's visible services, by name."""
        return self._mirror(network).services.sorted()

    def service(self, network: str, name: str) -> tuple[ServiceRecord, str] | None:
        return self._mirror(network).services.rows.get(name)

    def visible(self, network: str, table: str, key: str) -> tuple[bytes, str] | None:
        """(value, owner) of a visible entry of any table."""
        return self._mirror(network).raw.get((table, key))

    # -- stored entries (tombstones and hidden ones included): each call scans ----------------

    def stored(self, network: str, table: str, key: str) -> Entry | None:
        """The stored version of a key, tombstones and hidden entries included."""
        for e in self.tables.entries(network):
            if e.table == table and e.key == key:
                return e
        return None

    def tombstoned(self, network: str, table: str, key: str) -> bool:
        e = self.stored(network, table, key)
        return e is not None and e.deleted

    def deleted_keys(self, network: str) -> set[tuple[str, str]]:
        """(table, key) of the network's tombstones."""
        return {(e.table, e.key) for e in self.tables.entries(network) if e.deleted}

    def owns_any(self, network: str, table: str, me: str) -> bool:
        """Whether `me` owns any stored entry (live or tombstone) of the table."""
        return any(e.table == table and e.owner == me for e in self.tables.entries(network))
