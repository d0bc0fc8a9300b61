"""Duplicate IP and MAC addresses inside one network, and what the datapath gets instead.

Two agents that create an endpoint with the same IP at the same moment both pass their
local check (neither has seen the other's entry yet): the tables keep both entries (they
have different keys). Rules:
- `find_conflicts` reports every IP or MAC used by more than one endpoint of a network
  (deterministic order: by kind, value, endpoint id); the agent logs each new conflict
  once, flags it in `network inspect` and `endpoint ls`, and counts it in the metrics;
- `for_datapath` resolves a conflict the same way on every host: a host's own endpoint
  wins on that host (its container holds the address), and among other hosts' endpoints
  the smallest endpoint id wins; the losers are left out of the datapath snapshot only.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from swimnet.overlay import EndpointRecord

Row = tuple[str, EndpointRecord, str]
"""(endpoint id, record, owner)."""


@attrs.frozen
class Conflict:
    network: str
    kind: str
    """"ip" or "mac"."""
    value: str
    endpoints: tuple[tuple[str, str], ...]
    """(endpoint id, owner), by id."""


def find_conflicts(network: str, rows: Iterable[Row]) -> list[Conflict]:
    by: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for endpoint_id, record, owner in rows:
        by.setdefault(("ip", record.address), []).append((endpoint_id, owner))
        by.setdefault(("mac", record.mac), []).append((endpoint_id, owner))
    return [
        Conflict(network, kind, value, tuple(sorted(users)))
        for (kind, value), users in sorted(by.items())
        if len(users) > 1
    ]


def for_datapath(rows: Iterable[Row], me: str) -> list[Row]:
    """The rows with conflicts resolved (see the module rules)."""
    ordered = sorted(rows, key=lambda r: (r[2] != me, r[0]))  # own first, then by id
    taken_ip: set[str] = set()
    taken_mac: set[str] = set()
    out: list[Row] = []
    for row in ordered:
        record = row[1]
        if record.address in taken_ip or record.mac in taken_mac:
            continue
        taken_ip.add(record.address)
        taken_mac.add(record.mac)
        out.append(row)
    return sorted(out, key=lambda r: r[0])
