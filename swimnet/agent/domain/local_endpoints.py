"""This agent's own endpoints, indexed for the lookups the operations and the refresh make.

Rules:
- a read-only Mapping endpoint id -> LocalEndpointSpec; it changes only through `add` and
  `remove` (the overlay agent's, which persist first);
- indexes kept with every change: by network, by (network, address) and by name, so no
  operation scans every local endpoint to answer about one network or one address;
- each endpoint's table value (its `EndpointRecord` with this host's VTEP, encoded) is
  built once, when it is added: checking that the tables show exactly our record is a
  dict lookup and a bytes comparison, not a record validation;
- `version` grows with every change (the refresh and the datapath feed skip work when it
  did not move).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from swimnet.overlay import EndpointRecord, LocalEndpointSpec

K = TypeVar("K")


def address_of(spec: LocalEndpointSpec) -> str:
    """The endpoint's IP address without the prefix length."""
    return spec.ip.split("/")[0]


def _unindex(index: dict[K, dict[str, LocalEndpointSpec]], key: K, endpoint_id: str) -> None:
    group = index[key]
    del group[endpoint_id]
    if not group:
        del index[key]


class LocalEndpoints(Mapping[str, LocalEndpointSpec]):
    def __init__(self, vtep: str, specs: Iterable[LocalEndpointSpec] = ()) -> None:
        self.vtep = vtep
        self.version = 0
        self._specs: dict[str, LocalEndpointSpec] = {}
        self._values: dict[str, bytes] = {}
        self._by_network: dict[str, dict[str, LocalEndpointSpec]] = {}
        self._by_address: dict[tuple[str, str], dict[str, LocalEndpointSpec]] = {}
        self._by_name: dict[str, dict[str, LocalEndpointSpec]] = {}
        for spec in specs:
            self.add(spec)

    # -- Mapping ----------------------------------------------------------------------------

    def __getitem__(self, endpoint_id: str) -> LocalEndpointSpec:
        return self._specs[endpoint_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    # -- changes ----------------------------------------------------------------------------

    def add(self, spec: LocalEndpointSpec) -> None:
        """Add (or replace) an endpoint; ValueError if its record is invalid (nothing changed)."""
        value = EndpointRecord(spec.name, spec.ip, spec.mac, self.vtep).encode()
        if spec.endpoint_id in self._specs:
            self.remove(spec.endpoint_id)
        self._specs[spec.endpoint_id] = spec
        self._values[spec.endpoint_id] = value
        self._by_network.setdefault(spec.network, {})[spec.endpoint_id] = spec
        self._by_address.setdefault((spec.network, address_of(spec)), {})[spec.endpoint_id] = spec
        self._by_name.setdefault(spec.name, {})[spec.endpoint_id] = spec
        self.version += 1

    def remove(self, endpoint_id: str) -> LocalEndpointSpec:
        """Remove an endpoint (KeyError if unknown)."""
        spec = self._specs.pop(endpoint_id)
        del self._values[endpoint_id]
        _unindex(self._by_network, spec.network, endpoint_id)
        _unindex(self._by_address, (spec.network, address_of(spec)), endpoint_id)
        _unindex(self._by_name, spec.name, endpoint_id)
        self.version += 1
        return spec

    # -- lookups ----------------------------------------------------------------------------

    def value(self, endpoint_id: str) -> bytes:
        """The endpoint's table value (its encoded record)."""
        return self._values[endpoint_id]

    def networks(self) -> list[str]:
        """The networks with a local endpoint, sorted."""
        return sorted(self._by_network)

    def in_network(self, network: str) -> Mapping[str, LocalEndpointSpec]:
        return self._by_network.get(network, {})

    def count(self, network: str) -> int:
        return len(self._by_network.get(network, ()))

    def at_address(self, network: str, address: str) -> list[LocalEndpointSpec]:
        return list(self._by_address.get((network, address), {}).values())

    def named(self, name: str) -> list[LocalEndpointSpec]:
        return list(self._by_name.get(name, {}).values())
