"""A typed, read-only view of the overlay tables as this node holds them.

Rules:
- only visible entries count (live, owner not failed); a value that does not decode as its
  record type is skipped and counted in `undecodable` (a newer peer's garbage never breaks
  a listing);
- decoding is cached by value bytes (records are immutable values);
- a network's endpoints and services are known only if this node holds the network's
  scope (like Docker: a host only knows the overlays it participates in); `held()` says
  which; the network definitions (CLUSTER_SCOPE) are held by every agent;
- it reads the node's tables only through a `TableReader` (given at construction; the
  agent's comes from `cluster.Cluster.tables`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

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
from swimnet.tables.entry import Entry


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


@attrs.frozen
class Owned:
    """A decoded record and the agent that published it."""

    key: str
    owner: str
    network: NetworkRecord | None = None
    endpoint: EndpointRecord | None = None
    service: ServiceRecord | None = None


@functools.lru_cache(maxsize=4096)
def _network(value: bytes) -> NetworkRecord:
    return NetworkRecord.decode(value)


@functools.lru_cache(maxsize=16384)
def _endpoint(value: bytes) -> EndpointRecord:
    return EndpointRecord.decode(value)


@functools.lru_cache(maxsize=4096)
def _service(value: bytes) -> ServiceRecord:
    return ServiceRecord.decode(value)


class TablesView:
    def __init__(self, tables: TableReader) -> None:
        self.tables = tables
        self.undecodable: Counter[str] = Counter()

    def _rows(self, network: str, table: str) -> list[tuple[str, bytes, str]]:
        return sorted(
            (key, value, owner)
            for (t, key), (value, owner) in self.tables.live_entries(network).items()
            if t == table
        )

    # -- networks ---------------------------------------------------------------------------

    def networks(self) -> dict[str, tuple[NetworkRecord, str]]:
        """Network name -> (record, owner)."""
        out: dict[str, tuple[NetworkRecord, str]] = {}
        for key, value, owner in self._rows(CLUSTER_SCOPE, NETWORKS_TABLE):
            try:
                record = _network(value)
            except DecodeError:
                self.undecodable[NETWORKS_TABLE] += 1
                continue
            if record.name == key:
                out[key] = (record, owner)
            else:
                self.undecodable[NETWORKS_TABLE] += 1
        return out

    def network(self, name: str) -> NetworkRecord | None:
        found = self.networks().get(name)
        return found[0] if found is not None else None

    def records(self) -> dict[str, NetworkRecord]:
        return {name: record for name, (record, _) in self.networks().items()}

    def vnis(self) -> tuple[dict[str, int], list[str]]:
        """(name -> effective VNI, names whose requested VNI went to an older network)."""
        return assign_vnis(self.records().values())

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

    def endpoints(self, network: str) -> list[tuple[str, EndpointRecord, str]]:
        """(endpoint id, record, owner) of the network's visible endpoints."""
        out: list[tuple[str, EndpointRecord, str]] = []
        for key, value, owner in self._rows(network, PEERS_TABLE):
            try:
                out.append((key, _endpoint(value), owner))
            except DecodeError:
                self.undecodable[PEERS_TABLE] += 1
        return out

    def services(self, network: str) -> list[tuple[str, ServiceRecord, str]]:
        """(service name, record, owner) of the network's visible services."""
        out: list[tuple[str, ServiceRecord, str]] = []
        for key, value, owner in self._rows(network, SERVICES_TABLE):
            try:
                out.append((key, _service(value), owner))
            except DecodeError:
                self.undecodable[SERVICES_TABLE] += 1
        return out

    # -- raw entries ------------------------------------------------------------------------

    def stored(self, network: str, table: str, key: str) -> Entry | None:
        """The stored version of a key, tombstones and hidden entries included."""
        for e in self.tables.entries(network):
            if e.table == table and e.key == key:
                return e
        return None

    def tombstoned(self, network: str, table: str, key: str) -> bool:
        e = self.stored(network, table, key)
        return e is not None and e.deleted

    def visible(self, network: str, table: str, key: str) -> tuple[bytes, str] | None:
        return self.tables.live_entries(network).get((table, key))

    def owns_any(self, network: str, table: str, me: str) -> bool:
        """Whether `me` owns any stored entry (live or tombstone) of the table."""
        return any(e.table == table and e.owner == me for e in self.tables.entries(network))
