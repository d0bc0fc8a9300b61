"""The names view: a pure, immutable index of the DNS names the overlay tables define.

Input (`NetworkRecords`, one per network, like an `OverlaySnapshot` per network): the
network's subnet, its endpoint rows (endpoint id, `EndpointRecord`, owner alive) and its
service rows (`ServiceRecord`, owner alive). Output (`NamesView`): per network a
`NetworkIndex` of lower-case name -> addresses and address -> PTR targets.

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
  ids without one are skipped;
- a service name shadows an endpoint of the same name (`web` is the service, not a
  container called web); a service's `tasks.` name shadows an endpoint called so;
- a name with no address at all (a dnsrr service with no healthy backend) is still indexed:
  it is the network's (never forwarded) and answers NXDOMAIN;
- answers with more than one address are marked `shuffle` (the answer is built in random
  order); addresses are kept sorted in the index so that building is deterministic;
- building is pure and O(rows); `NamesView` and `NetworkIndex` are never mutated after
  construction (the `NamesIndex` of `swimnet.dns.index` replaces them as tables change).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import attrs

from swimnet.overlay.model import EndpointRecord, ServiceRecord

TASKS_PREFIX = "tasks."


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


@attrs.frozen
class NetworkIndex:
    """The names of one network (keys lower-case, without the trailing dot)."""

    name: str
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    names: Mapping[str, NameEntry]
    ptr: Mapping[str, tuple[str, ...]]
    """Address text -> PTR target names (without the trailing dot), sorted."""

    def __len__(self) -> int:
        return len(self.names)


@attrs.frozen
class NamesView:
    """Every network's index. `by_key` maps lower-case network names to exact ones."""

    networks: Mapping[str, NetworkIndex]
    by_key: Mapping[str, tuple[str, ...]]

    def index(self, network: str) -> NetworkIndex | None:
        return self.networks.get(network)

    def name_count(self) -> int:
        return sum(len(ix) for ix in self.networks.values())


EMPTY_VIEW = NamesView(networks={}, by_key={})


def _split(addresses: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    v4: set[str] = set()
    v6: set[str] = set()
    for text in addresses:
        (v6 if ":" in text else v4).add(text)
    return tuple(sorted(v4, key=_sort_key)), tuple(sorted(v6, key=_sort_key))


def _sort_key(text: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(text)
    return (addr.version, int(addr))


def _subnet(text: str | None) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if text is None:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def build_network(records: NetworkRecords) -> NetworkIndex:
    """The index of one network (pure)."""
    network = records.network
    live_eps = [row for row in records.endpoints if row.live]
    address_of = {row.endpoint_id: row.record.address for row in live_eps}

    by_name: dict[str, set[str]] = {}
    ptr: dict[str, set[str]] = {}
    for row in live_eps:
        key = row.record.name.lower()
        by_name.setdefault(key, set()).add(row.record.address)
        ptr.setdefault(row.record.address, set()).add(f"{row.record.name}.{network}")

    names: dict[str, NameEntry] = {}
    for key, addrs in by_name.items():
        v4, v6 = _split(addrs)
        names[key] = NameEntry("endpoint", v4, v6)

    for srow in sorted((r for r in records.services if r.live), key=lambda r: r.record.name):
        svc = srow.record
        backends = _split(address_of[b] for b in svc.backends if b in address_of)
        key = svc.name.lower()
        if svc.mode == "vip" and svc.vip is not None:
            names[key] = NameEntry("vip", *_split([svc.vip]))
            ptr.setdefault(svc.vip, set()).add(f"{svc.name}.{network}")
        else:
            names[key] = NameEntry("dnsrr", *backends)
        names[TASKS_PREFIX + key] = NameEntry("tasks", *backends)

    return NetworkIndex(
        name=network,
        subnet=_subnet(records.subnet),
        names=names,
        ptr={addr: tuple(sorted(targets)) for addr, targets in ptr.items()},
    )


def assemble(indexes: Iterable[NetworkIndex]) -> NamesView:
    """A view over already built network indexes."""
    networks = {ix.name: ix for ix in indexes}
    by_key: dict[str, list[str]] = {}
    for name in sorted(networks):
        by_key.setdefault(name.lower(), []).append(name)
    return NamesView(networks=networks, by_key={k: tuple(v) for k, v in by_key.items()})


def build_view(networks: Iterable[NetworkRecords]) -> NamesView:
    """The names view of every given network (pure)."""
    return assemble(build_network(records) for records in networks)


def names_of(view: NamesView, networks: Sequence[str]) -> dict[str, NameEntry]:
    """Every name the asking container sees (first network wins), for listings."""
    out: dict[str, NameEntry] = {}
    for network in networks:
        index = view.index(network)
        if index is not None:
            for key, entry in index.names.items():
                out.setdefault(key, entry)
    return out
