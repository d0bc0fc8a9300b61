"""The names view: an index of the DNS names the overlay tables define, per network.

Input (`NetworkRecords`, one per network, like an `OverlaySnapshot` per network): the
network's subnet, its endpoint rows (endpoint id, `EndpointRecord`, owner alive) and its
service rows (`ServiceRecord`, owner alive). Output (`NamesView`): per network a
`NetworkIndex` of lower-case name -> addresses and address -> PTR targets, which `lookup`
reads. A `NetworkIndex` is kept up to date change by change (`set_endpoint`,
`set_service`, `set_subnet`): a change costs O(what it touches), never a rebuild of the
network (rebuilding a 10,000-name network takes a third of a second on this machine kind,
far too long to do on the query path).

Names a network defines (all lower-cased; DNS is case-insensitive, ASCII only):
- an endpoint's name -> its address (several endpoints with one name: all their addresses);
- a service's name -> its VIP (mode vip) or its healthy backends' addresses (mode dnsrr);
- `tasks.SERVICE` -> the service's healthy backends' addresses (either mode);
- PTR: an endpoint's address -> `NAME.NETWORK`, a VIP -> `SERVICE.NETWORK` (Docker's form;
  the qualified name resolves forward again).

Rules:
- a row whose owner is not alive (a hidden entry: failed owner) is not indexed: its name does
  not resolve and its endpoint is no healthy backend;
- a healthy backend is a backend endpoint id with a live endpoint row in the same network;
  ids without one are skipped (and counted in once they appear);
- precedence for one key: a service's own name, then a service's `tasks.` name, then
  endpoints (`web` is the service, not a container called web); two services whose names
  differ only in case: the smaller name wins;
- a name with no address at all (a dnsrr service with no healthy backend) is still indexed:
  it is the network's (never forwarded) and answers NXDOMAIN;
- entries are immutable values with addresses sorted as text (the answer shuffles them); the
  index's state after any sequence of changes equals `build_network` of the final rows
  (the tests check it), so the order of changes never matters;
- no I/O, no clock; not thread-safe (one trio task owns the index; lookups never await).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import attrs

from swimnet.overlay.model import EndpointRecord, ServiceRecord

TASKS_PREFIX = "tasks."

Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class EndpointRow:
    """One overlay_peer entry: endpoint id, record, and whether its owner is alive."""

    endpoint_id: str
    record: EndpointRecord
    live: bool = True


@attrs.frozen
class ServiceRow:
    """One services entry and whether its owner is alive."""

    record: ServiceRecord
    live: bool = True


@attrs.frozen
class NetworkRecords:
    """One network's records, as the tables hold them (hidden entries flagged not live)."""

    network: str
    subnet: str | None = None
    endpoints: tuple[EndpointRow, ...] = ()
    services: tuple[ServiceRow, ...] = ()


@attrs.frozen
class NameEntry:
    """The addresses of one name in one network."""

    kind: str
    """"endpoint", "vip", "dnsrr" or "tasks" (for debugging output)."""
    v4: tuple[str, ...]
    v6: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.v4 and not self.v6


_NO_ADDRESSES: tuple[str, ...] = ()


def _entry(kind: str, addresses: Iterable[str]) -> NameEntry:
    unique = sorted(set(addresses))
    if not any(":" in a for a in unique):
        return NameEntry(kind, tuple(unique), _NO_ADDRESSES)
    return NameEntry(kind, tuple(a for a in unique if ":" not in a), tuple(a for a in unique if ":" in a))


def _subnet(text: str | None) -> Subnet | None:
    if text is None:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


class NetworkIndex:
    """The names of one network, and the rows they come from."""

    def __init__(self, name: str, subnet: str | None = None) -> None:
        self.name = name
        self.subnet_text = subnet
        self.subnet: Subnet | None = _subnet(subnet)
        self.names: dict[str, NameEntry] = {}
        """Lower-case name (no trailing dot) -> entry: what `lookup` reads."""
        self.ptr: dict[str, tuple[str, ...]] = {}
        """Address text -> PTR target names (no trailing dot), sorted."""
        self._endpoints: dict[str, EndpointRecord] = {}
        self._address: dict[str, str] = {}
        """Endpoint id -> its address (one string object shared by every map)."""
        self._services: dict[str, ServiceRecord] = {}
        # reverse maps: tuples, not sets (one id per name or address is the common case, and a
        # tuple of one is a quarter of an empty set's size)
        self._ids_by_name: dict[str, tuple[str, ...]] = {}
        self._ids_by_address: dict[str, tuple[str, ...]] = {}
        self._services_by_key: dict[str, tuple[str, ...]] = {}
        self._services_by_vip: dict[str, tuple[str, ...]] = {}
        self._services_of_backend: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.names)

    @property
    def empty(self) -> bool:
        """Nothing to answer or to claim (no rows, no subnet)."""
        return not self._endpoints and not self._services and self.subnet is None

    # -- changes ------------------------------------------------------------------------

    def set_subnet(self, subnet: str | None) -> None:
        self.subnet_text = subnet
        self.subnet = _subnet(subnet)

    def set_endpoint(self, endpoint_id: str, record: EndpointRecord | None) -> None:
        """Add, replace (record) or remove (None) one live endpoint row."""
        old = self._endpoints.get(endpoint_id)
        if old == record:
            return
        keys: set[str] = set()
        addresses: set[str] = set()
        if old is not None:
            address = self._address.pop(endpoint_id)
            key = old.name.lower()
            del self._endpoints[endpoint_id]
            _unlink(self._ids_by_name, key, endpoint_id)
            _unlink(self._ids_by_address, address, endpoint_id)
            keys.add(key)
            addresses.add(address)
        if record is not None:
            address = record.address
            key = record.name.lower()
            self._endpoints[endpoint_id] = record
            self._address[endpoint_id] = address
            _link(self._ids_by_name, key, endpoint_id)
            _link(self._ids_by_address, address, endpoint_id)
            keys.add(key)
            addresses.add(address)
        for service in self._services_of_backend.get(endpoint_id, ()):
            key = service.lower()
            keys.update((key, TASKS_PREFIX + key))
        for key in keys:
            self._refresh_name(key)
        for address in addresses:
            self._refresh_ptr(address)

    def set_service(self, name: str, record: ServiceRecord | None) -> None:
        """Add, replace (record) or remove (None) the live row of service `name`."""
        old = self._services.get(name)
        if old == record:
            return
        key = name.lower()
        addresses: set[str] = set()
        if old is not None:
            del self._services[name]
            _unlink(self._services_by_key, key, name)
            for backend in set(old.backends):
                _unlink(self._services_of_backend, backend, name)
            if old.vip is not None:
                _unlink(self._services_by_vip, old.vip, name)
                addresses.add(old.vip)
        if record is not None:
            self._services[name] = record
            _link(self._services_by_key, key, name)
            for backend in set(record.backends):
                _link(self._services_of_backend, backend, name)
            if record.mode == "vip" and record.vip is not None:
                _link(self._services_by_vip, record.vip, name)
                addresses.add(record.vip)
        self._refresh_name(key)
        self._refresh_name(TASKS_PREFIX + key)
        for address in addresses:
            self._refresh_ptr(address)

    # -- derived state ------------------------------------------------------------------

    def _service_entry(self, name: str, tasks: bool) -> NameEntry:
        record = self._services[name]
        if not tasks and record.mode == "vip" and record.vip is not None:
            return _entry("vip", [record.vip])
        addresses = (self._address.get(b) for b in record.backends)
        return _entry("tasks" if tasks else "dnsrr", (a for a in addresses if a is not None))

    def _refresh_name(self, key: str) -> None:
        services = self._services_by_key.get(key)
        if services:
            self.names[key] = self._service_entry(min(services), tasks=False)
            return
        if key.startswith(TASKS_PREFIX):
            services = self._services_by_key.get(key[len(TASKS_PREFIX) :])
            if services:
                self.names[key] = self._service_entry(min(services), tasks=True)
                return
        ids = self._ids_by_name.get(key)
        if ids:
            self.names[key] = _entry("endpoint", (self._address[i] for i in ids))
        else:
            self.names.pop(key, None)

    def _refresh_ptr(self, address: str) -> None:
        targets = {f"{self._endpoints[i].name}.{self.name}" for i in self._ids_by_address.get(address, ())}
        targets.update(f"{s}.{self.name}" for s in self._services_by_vip.get(address, ()))
        if targets:
            self.ptr[address] = tuple(sorted(targets))
        else:
            self.ptr.pop(address, None)

    # -- rows ---------------------------------------------------------------------------

    def records(self) -> NetworkRecords:
        """The rows the index holds (all live)."""
        return NetworkRecords(
            network=self.name,
            subnet=self.subnet_text,
            endpoints=tuple(EndpointRow(i, r) for i, r in sorted(self._endpoints.items())),
            services=tuple(ServiceRow(r) for _, r in sorted(self._services.items())),
        )




def _link(index: dict[str, tuple[str, ...]], key: str, member: str) -> None:
    members = index.get(key, ())
    if member not in members:
        index[key] = (*members, member)


def _unlink(index: dict[str, tuple[str, ...]], key: str, member: str) -> None:
    members = index.get(key)
    if members is not None and member in members:
        rest = tuple(m for m in members if m != member)
        if rest:
            index[key] = rest
        else:
            del index[key]


def build_network(records: NetworkRecords) -> NetworkIndex:
    """The index of one network's live rows."""
    index = NetworkIndex(records.network, records.subnet)
    for row in records.endpoints:
        if row.live:
            index.set_endpoint(row.endpoint_id, row.record)
    for srow in records.services:
        if srow.live:
            index.set_service(srow.record.name, srow.record)
    return index


class NamesView:
    """Every network's index, by name; `by_key` maps lower-case network names to exact ones."""

    def __init__(self, indexes: Iterable[NetworkIndex] = ()) -> None:
        self.networks: dict[str, NetworkIndex] = {}
        self.by_key: dict[str, tuple[str, ...]] = {}
        for index in indexes:
            self.networks[index.name] = index
        self._rekey()

    def _rekey(self) -> None:
        by_key: dict[str, list[str]] = {}
        for name in sorted(self.networks):
            by_key.setdefault(name.lower(), []).append(name)
        self.by_key = {k: tuple(v) for k, v in by_key.items()}

    def put(self, index: NetworkIndex) -> None:
        self.networks[index.name] = index
        self._rekey()

    def drop(self, network: str) -> None:
        if self.networks.pop(network, None) is not None:
            self._rekey()

    def index(self, network: str) -> NetworkIndex | None:
        return self.networks.get(network)

    def name_count(self) -> int:
        return sum(len(ix) for ix in self.networks.values())


def build_view(networks: Iterable[NetworkRecords]) -> NamesView:
    """The names view of every given network."""
    return NamesView(build_network(records) for records in networks)


def names_of(view: NamesView, networks: Sequence[str]) -> dict[str, NameEntry]:
    """Every name the asking container sees (first network wins), for listings."""
    out: dict[str, NameEntry] = {}
    for network in networks:
        index = view.index(network)
        if index is not None:
            for key, entry in index.names.items():
                out.setdefault(key, entry)
    return out


def snapshot(index: NetworkIndex) -> tuple[Mapping[str, NameEntry], Mapping[str, tuple[str, ...]]]:
    """Copies of an index's names and PTRs (to compare indexes in tests)."""
    return dict(index.names), dict(index.ptr)
