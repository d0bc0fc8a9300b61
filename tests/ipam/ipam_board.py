"""A tiny stand-in for the replicated tables, to drive the pure IPAM rules by hand.

Each member holds the latest record of every member that was delivered to it (`deliver`:
one member's current record to another; `spread`: everything to everyone, or inside given
groups: a partition); failures are per observer (`fail`: observer sees the member failed,
its record hidden). Allocations (`used`) are global truth (an endpoint table every member
sees), unless a test passes its own; so are removed allocations (`tombstones`: the
deleted endpoint entries, which give the views their `freed` addresses).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable

from swimnet.ipam import (
    Granted,
    IpamView,
    Memory,
    Pool,
    Use,
    Waiting,
    allocate,
    decode_records,
    maintain,
    release,
)


class Board:
    def __init__(self, members: Iterable[str], subnet: str = "10.1.0.0/24", gateway: str | None = "10.1.0.1"):
        self.pool = Pool(subnet, gateway)
        self.members = sorted(members)
        self.records: dict[str, bytes] = {}
        """Each member's current own record."""
        self.known: dict[str, dict[str, bytes]] = {m: {} for m in self.members}
        """observer -> member -> the record version it holds."""
        self.failed: dict[str, set[str]] = {m: set() for m in self.members}
        self.reaped: dict[str, set[str]] = {m: set() for m in self.members}
        """observer -> members its tables reaped (their late records are refused)."""
        self.voters: dict[str, set[str]] = {m: set(self.members) for m in self.members}
        self.allocations: dict[str, dict[int, str]] = {m: {} for m in self.members}
        """member -> offset -> endpoint label."""
        self.tombstones: set[int] = set()
        """Offsets of removed allocations (their deleted entries stay in the tables)."""
        self.synced: dict[str, bool] = {m: True for m in self.members}
        self.down: set[str] = set()
        """Crashed members: they run nothing (their last record stays where it was delivered)."""
        self.memory: dict[str, Memory] = {m: Memory() for m in self.members}
        self.clock = 0
        self.now = 0.0
        self.rng = random.Random(7)

    # -- the "tables" ----------------------------------------------------------------------------

    def write(self, member: str, data: bytes | None) -> None:
        if data is not None:
            self.clock += 1
            self.records[member] = data
            self.known[member][member] = data

    def deliver(self, source: str, target: str) -> None:
        if source in self.records and source not in self.reaped[target]:
            self.known[target][source] = self.records[source]

    def spread(self, groups: Iterable[Iterable[str]] | None = None) -> None:
        for group in [self.members] if groups is None else [list(g) for g in groups]:
            for a in group:
                for b in group:
                    self.deliver(a, b)

    def fail(self, observer: str, member: str) -> None:
        self.failed[observer].add(member)

    def reap(self, observer: str, member: str) -> None:
        """The observer's tables reaped `member`: its record and attachment are gone."""
        self.known[observer].pop(member, None)
        self.reaped[observer].add(member)
        self.failed[observer].discard(member)
        self.voters[observer].discard(member)

    def used(self) -> dict[int, Use]:
        return {o: Use(m, label) for m, allocs in self.allocations.items() for o, label in allocs.items()}

    # -- the rules ---------------------------------------------------------------------------------

    def view(self, me: str, used: dict[int, Use] | None = None) -> IpamView:
        raw = {m: (v, m in self.failed[me], False) for m, v in self.known[me].items()}
        return IpamView(
            network="net",
            me=me,
            pool=self.pool,
            records=decode_records(raw, self.pool),
            voters=frozenset(self.voters[me]),
            clock=self.clock,
            used=self.used() if used is None else used,
            mine=frozenset(self.allocations[me]),
            freed=frozenset(self.tombstones - set(self.used() if used is None else used)),
            synced=self.synced[me],
            memory=self.memory[me],
            now=self.now,
            reap_interval=1800.0,
        )

    def maintain(self, me: str) -> tuple[str, ...]:
        m = maintain(self.view(me), self.rng)
        self.write(me, m.write)
        return m.notes

    def allocate(self, me: str, want: str | None = None) -> Granted | Waiting:
        d = allocate(self.view(me), self.rng, None if want is None else ipaddress.IPv4Address(want))
        self.write(me, d.write)
        if isinstance(d, Granted):
            self.allocations[me][self.pool.offset(d.address)] = f"endpoint of {me}"
        return d

    def remove(self, me: str, address: str) -> None:
        self.drop(me, address)
        self.write(me, release(self.view(me), self.rng, ipaddress.IPv4Address(address)).write)

    def drop(self, me: str, address: str) -> None:
        """The endpoint at `address` is deleted from the tables; `me` has not run its
        release yet (the others may see the deletion first)."""
        offset = self.pool.offset(ipaddress.IPv4Address(address))
        self.allocations[me].pop(offset)
        self.tombstones.add(offset)

    def settle(self, groups: Iterable[Iterable[str]] | None = None, rounds: int = 10) -> None:
        """Spread and maintain until nothing changes (inside the groups, if given)."""
        group_list = None if groups is None else [list(g) for g in groups]
        for _ in range(rounds):
            before = dict(self.records)
            self.spread(group_list)
            for m in self.members:
                if m not in self.down:
                    self.maintain(m)
            self.spread(group_list)
            if self.records == before:
                return

    def obtain(self, me: str, want: str | None = None, rounds: int = 10) -> Granted | Waiting:
        """Ask, settle, ask again, until granted (or still waiting after `rounds`)."""
        d = self.allocate(me, want)
        for _ in range(rounds):
            if isinstance(d, Granted):
                return d
            self.settle()
            d = self.allocate(me, want)
        return d
