"""What one allocation decision reads: `IpamView`, built from the replicated tables.

Rules:
- the IPAM records of every network live in one table (`IPAM_TABLE`) of one scope that
  every member which may allocate has joined (the agent: CLUSTER_SCOPE, see the package
  docstring for why), one entry per (network, member), key `record_key(network, member)`,
  written only by that member; an entry whose owner is not the member its key names is
  ignored (nobody else may speak for a member);
- a record is read whether visible or hidden (its owner failed): a failed member's claims
  stay reserved and its votes stay cast until the tables reap it; tombstones are absent;
- `voters` are the members attached to the scope (failed ones included, leaving ones not):
  `TablesReader.attached(scope)`; a record that does not decode counts as a voter that has
  not voted (its claims are unknown, so nothing waiting on it is confirmed);
- `used` maps every address held by an allocation of the network (endpoints, VIPs; live or
  hidden) to its holder, `mine` is the caller's own allocations (published or not yet):
  both come from the caller, which knows its own tables' formats (`uses_from_entries`);
- everything here only reads; nothing does I/O: time (`now`) and the sync state come in.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from swimnet.errors import DecodeError
from swimnet.ipam.pool import Pool
from swimnet.ipam.record import EMPTY_MEMORY, Memory, Record
from swimnet.tables.entry import Entry

IPAM_TABLE = "ipam_blocks"
REAP_INTERVAL = 1800.0
"""The tables' default reap_interval (NetworkDB's 30 min)."""


def record_key(network: str, member: str) -> str:
    """The table key of `member`'s record for `network` (names never contain '/')."""
    return f"{network}/{member}"


class StoredTables(Protocol):
    """The read-only calls IPAM makes on a node's tables (`node.tables`, `engine.tables`)."""

    def entries(self, network: str) -> Sequence[Entry]: ...

    def attached(self, network: str) -> list[str]: ...

    def lamport_time(self) -> int: ...

    def owner_failed(self, name: str) -> bool: ...


@attrs.frozen
class Holder:
    """One member's record as this node holds it."""

    record: Record | None
    """None: the value does not decode."""
    hidden: bool
    """Its owner failed (the tables hide its entries until it returns or is reaped)."""


@attrs.frozen
class Use:
    """An address held by an allocation."""

    owner: str
    """The member that wrote the allocation's entry."""
    label: str
    """What holds it, for messages (e.g. "endpoint web (3f2a...) on n1")."""


@attrs.frozen
class IpamView:
    """Everything one decision about `network` on member `me` depends on."""

    network: str
    me: str
    pool: Pool
    records: Mapping[str, Holder]
    voters: frozenset[str]
    clock: int
    """This node's table Lamport time (new claims' stamps pass it)."""
    used: Mapping[int, Use] = attrs.field(factory=dict)
    mine: frozenset[int] = frozenset()
    synced: bool = True
    """This node completed a sync of the IPAM scope with a peer since it started, or it
    bootstraps a cluster (no seeds). Until then it claims and confirms nothing: its view of
    the voters and of their claims may be partial (a restart into a partition)."""
    memory: Memory = EMPTY_MEMORY
    departed: frozenset[str] = frozenset()
    """Members known to have left gracefully (membership says "left"): their remembered
    claims are released at once."""
    now: float = 0.0
    reap_interval: float = REAP_INTERVAL


@functools.lru_cache(maxsize=8192)
def _decode(value: bytes, owner: str, pool_size: int) -> Record | None:
    try:
        return Record.decode(value, owner, pool_size)
    except DecodeError:
        return None


RawRecords = dict[str, dict[str, tuple[bytes, bool]]]
"""network -> member -> (record value, hidden)."""


def raw_records(tables: StoredTables, scope: str, table: str = IPAM_TABLE) -> RawRecords:
    """network -> member -> (record value, hidden), in one pass over the scope's entries."""
    out: RawRecords = {}
    for e in tables.entries(scope):
        if e.table != table or e.deleted:
            continue
        network, sep, member = e.key.partition("/")
        if not sep or member != e.owner:
            continue
        out.setdefault(network, {})[member] = (e.value, tables.owner_failed(e.owner))
    return out


def decode_records(raw: Mapping[str, tuple[bytes, bool]], pool: Pool) -> dict[str, Holder]:
    return {m: Holder(_decode(value, m, pool.size), hidden) for m, (value, hidden) in raw.items()}


def view_from_tables(
    tables: StoredTables,
    *,
    scope: str,
    network: str,
    me: str,
    pool: Pool,
    used: Mapping[int, Use] | None = None,
    mine: Iterable[int] = (),
    synced: bool = True,
    memory: Memory = EMPTY_MEMORY,
    departed: Iterable[str] = (),
    now: float = 0.0,
    reap_interval: float = REAP_INTERVAL,
    table: str = IPAM_TABLE,
    raw: Mapping[str, Mapping[str, tuple[bytes, bool]]] | None = None,
) -> IpamView:
    """An `IpamView` read from a node's tables (`raw`: a `raw_records` pass to reuse when
    building views of several networks at once)."""
    if raw is None:
        raw = raw_records(tables, scope, table)
    return IpamView(
        network=network,
        me=me,
        pool=pool,
        records=decode_records(raw.get(network, {}), pool),
        voters=frozenset(tables.attached(scope)),
        clock=tables.lamport_time(),
        used=dict(used or {}),
        mine=frozenset(mine),
        synced=synced,
        memory=memory,
        departed=frozenset(departed),
        now=now,
        reap_interval=reap_interval,
    )


def uses_from_entries(
    entries: Iterable[Entry], pool: Pool, address_of: Callable[[Entry], tuple[str, str] | None]
) -> dict[int, Use]:
    """`used` from a network's stored entries (`tables.entries(network)`: hidden ones of
    failed owners included, tombstones skipped): `address_of(entry)` gives (address, label)
    for an entry that holds an address, None for others; addresses outside the pool are
    skipped (they hold nothing of it)."""
    out: dict[int, Use] = {}
    for e in entries:
        if e.deleted:
            continue
        found = address_of(e)
        if found is None:
            continue
        text, label = found
        try:
            offset = pool.offset(ipaddress.IPv4Address(text.split("/")[0]))
        except ValueError:
            continue
        out.setdefault(offset, Use(e.owner, label))
    return out
