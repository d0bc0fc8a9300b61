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
  `trusted` counts the trusted entries exactly, and `trusted_names` lists them (in no
  particular order, for O(1) random draws: peer choice draws its tournaments from it);
- the book holds at most `capacity` entries: an offer about a new name beyond it is refused
  (the caller also admits only members it knows, and forgets the reaped ones);
- values are checked before they get here (the topology codec): the book trusts its input.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from swimnet.topology.coordinate import Coordinate

Version = tuple[int, int]
"""(epoch, updates) of an owner's coordinate; compared as a tuple."""
TRUSTED_UPDATES = 8
"""Samples a coordinate must have absorbed before anyone estimates RTTs with it."""
DEFAULT_CAPACITY = 200_000


def is_trusted(version: Version) -> bool:
    return version[1] >= TRUSTED_UPDATES


class CoordinateBook:
    __slots__ = ("_entries", "_names", "_where", "capacity")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: dict[str, tuple[Version, Coordinate]] = {}
        self.capacity = capacity
        self._names: list[str] = []
        """The names whose entry is trusted (swap-removed: any order)."""
        self._where: dict[str, int] = {}
        """name -> its position in _names."""

    @property
    def trusted(self) -> int:
        """Entries whose version is trusted."""
        return len(self._names)

    @property
    def trusted_names(self) -> Sequence[str]:
        """The names of the trusted entries, in no particular order (a live view: read it,
        never keep it across offers)."""
        return self._names

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
        self._entries[name] = (version, coord)
        self._set_trusted(name, is_trusted(version))
        return True

    def forget(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._set_trusted(name, False)

    def _set_trusted(self, name: str, trusted: bool) -> None:
        where, names = self._where, self._names
        if trusted and name not in where:
            where[name] = len(names)
            names.append(name)
        elif not trusted and name in where:
            pos = where.pop(name)
            last = names.pop()
            if last != name:
                names[pos] = last
                where[last] = pos

    def items(self) -> Iterator[tuple[str, Version, Coordinate]]:
        for name, (version, coord) in self._entries.items():
            yield name, version, coord
