"""The latest coordinate each member published, whoever passed it on (gossip, push-pull, or
the member's own probe ack).

Rules:
- an entry is (version, coordinate); a version is (epoch, updates): the incarnation the owner
  started its life with, and how many samples its coordinate had absorbed. An offer replaces
  an entry only with a strictly greater version, so an older coordinate never replaces a
  newer one, whatever order the copies arrive in; a restarted owner (a higher epoch: the
  agent starts above its persisted incarnation) replaces what its previous life published.
  An owner restarted with the same epoch is heard again once its count passes the old one
  (until then its previous, likely still right, coordinate stands); reaping forgets it;
- a coordinate is trusted once it has absorbed TRUSTED_UPDATES samples (by its owner's
  count): before that it sits near the origin and says nothing about where its owner is;
  `trusted` counts the trusted entries exactly;
- the book holds at most `capacity` entries: an offer about a new name beyond it is refused
  (the caller also admits only members it knows, and forgets the reaped ones);
- values are checked before they get here (the topology codec): the book trusts its input.
"""

from __future__ import annotations

from collections.abc import Iterator

from swimnet.topology.coordinate import Coordinate

Version = tuple[int, int]
"""(epoch, updates) of an owner's coordinate; compared as a tuple."""
TRUSTED_UPDATES = 8
"""Samples a coordinate must have absorbed before anyone estimates RTTs with it."""
DEFAULT_CAPACITY = 200_000


def is_trusted(version: Version) -> bool:
    return version[1] >= TRUSTED_UPDATES


class CoordinateBook:
    __slots__ = ("_entries", "capacity", "trusted")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: dict[str, tuple[Version, Coordinate]] = {}
        self.capacity = capacity
        self.trusted = 0
        """Entries whose version is trusted."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> tuple[Version, Coordinate] | None:
        return self._entries.get(name)

    def coordinate(self, name: str) -> Coordinate | None:
        """The member's latest coordinate if it is trusted, else None."""
        entry = self._entries.get(name)
        return entry[1] if entry is not None and is_trusted(entry[0]) else None

    def version(self, name: str) -> Version | None:
        entry = self._entries.get(name)
        return None if entry is None else entry[0]

    def offer(self, name: str, version: Version, coord: Coordinate) -> bool:
        """Keep `coord` if it is newer than what we hold; True if it was kept."""
        old = self._entries.get(name)
        if old is None:
            if len(self._entries) >= self.capacity:
                return False
        elif version <= old[0]:
            return False
        else:
            self.trusted -= is_trusted(old[0])
        self._entries[name] = (version, coord)
        self.trusted += is_trusted(version)
        return True

    def forget(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is not None:
            self.trusted -= is_trusted(old[0])

    def items(self) -> Iterator[tuple[str, Version, Coordinate]]:
        for name, (version, coord) in self._entries.items():
            yield name, version, coord
