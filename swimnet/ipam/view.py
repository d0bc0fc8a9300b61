"""What one allocation decision reads: `IpamView`, built from the replicated tables.

Rules:
- the IPAM records of every network live in one table (`IPAM_TABLE`) of one scope that
  every member which may allocate has joined (the agent: CLUSTER_SCOPE, see the package
  docstring for why), one entry per (network, member), key `record_key(network, member)`,
  written only by that member; an entry whose owner is not the member its key names is
  ignored (nobody else may speak for a member);
- a record is read whether visible or hidden (its owner failed): a failed member's claims
  stay reserved and its votes stay cast until the tables reap it; a tombstone (the owner
  deleted or retracted its record: a new life without state) holds no claim and no vote,
  but its value (tombstones keep it) says how recent it is (`Record.high`), which ends what
  others remember of that owner's older claims;
- `voters` are the members attached to the scope (failed ones included, leaving ones not):
  `TablesReader.attached(scope)`, less the other members known to have left the cluster
  (`departed`: membership says "left"; or a record attests it, `attested_departures`: a
  member cut off when another left sees it failed, never left, and would wait for it
  until the tables reap it; the tables keep their records, hidden, for the
  left grace, and so their claims stay reserved that long, but they will never vote
  again, and waiting for them would stall every new claim for that grace) and less the
  attached members membership never reported (`owner_unknown`: a restarted member learns
  from a sync the attachment of a member that left while it was away, never its leave,
  and would wait for it until the tables reap it); leaving a member out of one view is
  safe as long as any two views still share a member (the claimer of one claim is in the
  other's view: see the package docstring). A member membership reported failed stays a
  voter until the tables reap it, even once membership forgot it (gossip_to_the_dead_time):
  under a partition, the other side's members must keep their say; a record that does not
  decode counts as a voter that has not voted (its claims are unknown, so nothing waiting
  on it is confirmed);
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

    def owner_unknown(self, name: str) -> bool: ...


@attrs.frozen
class Holder:
    """One member's record as this node holds it."""

    record: Record | None
    """None: the value does not decode."""
    hidden: bool
    """Its owner failed (the tables hide its entries until it returns or is reaped)."""
    retracted: bool = False
    """A tombstone: the owner deleted (or, in a new life, retracted) this record."""


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
    freed: frozenset[int] = frozenset()
    """Addresses just freed: held by no allocation, only by deleted ones (tombstones) here.
    Another member's single claim may cover one until its owner releases it (it learns of
    the deletion at about the same time): an allocation then waits for that release rather
    than call the network full (`freed_from_entries`)."""
    synced: bool = True
    """This node completed a sync of the IPAM scope with a peer since it started, or it
    bootstraps a cluster (no seeds). Until then it claims and confirms nothing: its view of
    the voters and of their claims may be partial (a restart into a partition)."""
    memory: Memory = EMPTY_MEMORY
    departed: frozenset[str] = frozenset()
    """Members known to have left gracefully (membership says "left"): their remembered
    claims are released at once; `view_from_tables` leaves them out of `voters`."""
    now: float = 0.0
    reap_interval: float = REAP_INTERVAL


@functools.lru_cache(maxsize=8192)
def _decode(value: bytes, owner: str, pool_size: int) -> Record | None:
    try:
        return Record.decode(value, owner, pool_size)
    except DecodeError:
        return None


RawRecords = dict[str, dict[str, tuple[bytes, bool, bool]]]
"""network -> member -> (record value, hidden, retracted)."""


def raw_records(tables: StoredTables, scope: str, table: str = IPAM_TABLE) -> RawRecords:
    """network -> member -> (record value, hidden, retracted), in one pass over the scope's
    stored entries."""
    out: RawRecords = {}
    for e in tables.entries(scope):
        if e.table != table:
            continue
        network, sep, member = e.key.partition("/")
        if not sep or member != e.owner:
            continue
        out.setdefault(network, {})[member] = (e.value, tables.owner_failed(e.owner), e.deleted)
    return out


def decode_records(raw: Mapping[str, tuple[bytes, bool, bool]], pool: Pool) -> dict[str, Holder]:
    return {m: Holder(_decode(value, m, pool.size), hidden, gone) for m, (value, hidden, gone) in raw.items()}


def attested_departures(records: Mapping[str, Holder]) -> frozenset[str]:
    """Members some record attests left gracefully (`Record.gone`) whose own record here is
    absent or hidden and not newer than the attestation (a member back is not gone)."""
    attested: dict[str, int] = {}
    for h in records.values():
        if h.record is not None and not h.retracted:
            for member, high in h.record.gone:
                attested[member] = max(attested.get(member, -1), high)
    out = set()
    for member, high in attested.items():
        own = records.get(member)
        if own is None or own.record is None or (own.hidden and own.record.high <= high):
            out.add(member)
    return frozenset(out)


def view_from_tables(
    tables: StoredTables,
    *,
    scope: str,
    network: str,
    me: str,
    pool: Pool,
    used: Mapping[int, Use] | None = None,
    mine: Iterable[int] = (),
    freed: Iterable[int] = (),
    synced: bool = True,
    memory: Memory = EMPTY_MEMORY,
    departed: Iterable[str] = (),
    now: float = 0.0,
    reap_interval: float = REAP_INTERVAL,
    table: str = IPAM_TABLE,
    raw: Mapping[str, Mapping[str, tuple[bytes, bool, bool]]] | None = None,
) -> IpamView:
    """An `IpamView` read from a node's tables (`raw`: a `raw_records` pass to reuse when
    building views of several networks at once; `departed`: see the module rules on
    voters)."""
    if raw is None:
        raw = raw_records(tables, scope, table)
    records = decode_records(raw.get(network, {}), pool)
    gone = (frozenset(departed) | attested_departures(records)) - {me}
    voters = frozenset(v for v in tables.attached(scope) if v not in gone and not tables.owner_unknown(v))
    return IpamView(
        network=network,
        me=me,
        pool=pool,
        records=records,
        voters=voters,
        clock=tables.lamport_time(),
        used=dict(used or {}),
        mine=frozenset(mine),
        freed=frozenset(freed) - frozenset(used or {}),
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


def freed_from_entries(
    entries: Iterable[Entry], pool: Pool, address_of: Callable[[Entry], tuple[str, str] | None]
) -> frozenset[int]:
    """`freed` from a network's stored entries: the pool offsets of the deleted entries
    (tombstones, which keep their last value) that held an address; those some live entry
    holds again are taken out by `view_from_tables` (they are `used`)."""
    out: set[int] = set()
    for e in entries:
        if not e.deleted:
            continue
        found = address_of(e)
        if found is None:
            continue
        try:
            out.add(pool.offset(ipaddress.IPv4Address(found[0].split("/")[0])))
        except ValueError:
            continue
    return frozenset(out)
