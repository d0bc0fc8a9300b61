"""Claims, the one IPAM record each member publishes per network, and the memory an agent
persists: values and their msgpack encodings.

Rules:
- a claim is a member's request for addresses: either a set of blocks (kind BLOCKS,
  `items` = block indices in units of `unit` addresses) or one address (kind SPARE: any
  free address, taken when the member has no block left; kind PIN: an address asked for
  by name, which only that request may use; `items` = its offset); it is named by (owner,
  stamp), stamps strictly increasing per owner; `confirmed` is set by the owner once every
  voter agreed;
- `Record.high` is at least every stamp its owner used and its Lamport time when it wrote
  the record: a restored record never reuses a stamp, and a record whose `high` passed a
  claim's stamp was written after that claim (lacking it, the claim is gone);
- a claim can shrink (blocks released) but never grow: a bigger request is a new claim;
- a record holds its owner's claims, and its votes on other members' claims still pending
  (`ayes`, `nays`, by claim id); it is the whole IPAM state its owner publishes, so a
  reader sees a member's claims and its votes at one moment (one table entry);
- `gone` attests the members its owner saw leave gracefully, each with the `high` of
  their record then (at most MAX_GONE, the most recent kept): their claims up to that
  stamp ended; omitted from the encoding when empty;
- decoding checks every field against the pool (bounds, sorted unique items, power-of-two
  units) and raises only DecodeError; unknown map keys are ignored (newer writers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import msgpack

from swimnet.errors import DecodeError

FORMAT = 1
MAX_NAME = 255
MAX_STAMP = 2**63 - 1
MAX_RECORD = 8 * 1024
MAX_GONE = 16
"""Departures a record attests at most (the highest `high` kept)."""

ClaimId = tuple[str, int]
"""(owner, stamp)."""

BLOCKS, SPARE, PIN = 0, 1, 2
KINDS = (BLOCKS, SPARE, PIN)


@attrs.frozen
class Claim:
    owner: str
    stamp: int
    kind: int
    items: tuple[int, ...]
    confirmed: bool
    unit: int
    """Addresses per item: the owner's block size (1 for a single address)."""

    @property
    def id(self) -> ClaimId:
        return (self.owner, self.stamp)

    @property
    def single(self) -> bool:
        return self.kind != BLOCKS

    def spans(self) -> Iterator[tuple[int, int]]:
        """[start, end) offset ranges covered."""
        for item in self.items:
            yield (item * self.unit, (item + 1) * self.unit)

    def offsets(self) -> Iterator[int]:
        for start, end in self.spans():
            yield from range(start, end)

    def covers(self, offset: int) -> bool:
        return any(start <= offset < end for start, end in self.spans())

    def size(self) -> int:
        return len(self.items) * self.unit


def overlap(a: Claim, b: Claim) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a.spans() for s2, e2 in b.spans())


@attrs.frozen
class Record:
    """One member's IPAM state for one network."""

    block: int
    high: int
    claims: tuple[Claim, ...] = ()
    ayes: frozenset[ClaimId] = frozenset()
    nays: frozenset[ClaimId] = frozenset()
    gone: frozenset[tuple[str, int]] = frozenset()
    """(member, its record's high when it left) for members seen leaving gracefully."""

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "v": FORMAT,
            "b": self.block,
            "h": self.high,
            "c": [[c.stamp, c.kind, c.confirmed, list(c.items)] for c in self.claims],
            "y": [list(i) for i in sorted(self.ayes)],
            "n": [list(i) for i in sorted(self.nays)],
        }
        if self.gone:
            doc["g"] = [list(i) for i in sorted(self.gone)]
        data: bytes = msgpack.packb(doc, use_bin_type=True)
        return data

    @classmethod
    def decode(cls, data: bytes, owner: str, pool_size: int) -> Record:
        doc = _map(data, "ipam record")
        block = _int(doc.get("b"), "b", 1, pool_size)
        if block & (block - 1):
            raise DecodeError("ipam record.b: not a power of two")
        high = _int(doc.get("h"), "h", 0, MAX_STAMP)
        claims = []
        for raw in _list(doc.get("c"), "c"):
            row = _list(raw, "c[]")
            if len(row) != 4:
                raise DecodeError("ipam record.c[]: expected [stamp, kind, confirmed, items]")
            stamp = _int(row[0], "c[].stamp", 0, high)
            kind = _int(row[1], "c[].kind", BLOCKS, PIN)
            unit = block if kind == BLOCKS else 1
            items = tuple(_int(i, "c[].items", 0, pool_size // unit - 1) for i in _list(row[3], "c[].items"))
            if not items or list(items) != sorted(set(items)) or (kind != BLOCKS and len(items) != 1):
                raise DecodeError("ipam record.c[].items: expected sorted unique items (one for a single)")
            claims.append(Claim(owner, stamp, kind, items, _bool(row[2], "c[].confirmed"), unit))
        if len({c.stamp for c in claims}) != len(claims):
            raise DecodeError("ipam record.c: repeated stamp")
        gone = _votes(doc.get("g", []), "g")
        if len(gone) > MAX_GONE:
            raise DecodeError(f"ipam record.g: at most {MAX_GONE} departures")
        return cls(block, high, tuple(claims), _votes(doc.get("y"), "y"), _votes(doc.get("n"), "n"), gone)


@attrs.frozen
class Memory:
    """What a member knew of the others' claims, persisted by the agent beside its own
    record; restored after a restart with `since` = the restart time."""

    claims: tuple[Claim, ...] = ()
    since: float | None = None

    def encode(self) -> bytes:
        doc = {
            "v": FORMAT,
            "c": [[c.owner, c.stamp, c.kind, c.unit, list(c.items)] for c in self.claims],
        }
        data: bytes = msgpack.packb(doc, use_bin_type=True)
        return data

    @classmethod
    def decode(cls, data: bytes, since: float, pool_size: int) -> Memory:
        doc = _map(data, "ipam memory")
        claims = []
        for raw in _list(doc.get("c"), "c"):
            row = _list(raw, "c[]")
            if len(row) != 5:
                raise DecodeError("ipam memory.c[]: expected [owner, stamp, kind, unit, items]")
            kind = _int(row[2], "c[].kind", BLOCKS, PIN)
            unit = _int(row[3], "c[].unit", 1, pool_size) if kind == BLOCKS else 1
            items = tuple(_int(i, "c[].items", 0, pool_size // unit - 1) for i in _list(row[4], "c[].items"))
            if not items or (kind != BLOCKS and len(items) != 1):
                raise DecodeError("ipam memory.c[].items: expected items (one for a single)")
            owner = _str(row[0], "c[].owner")
            claims.append(Claim(owner, _int(row[1], "c[].stamp", 0, MAX_STAMP), kind, items, True, unit))
        return cls(tuple(claims), since)


EMPTY_MEMORY = Memory()


# -- decoding helpers ---------------------------------------------------------------------


def _map(data: bytes, what: str) -> dict[str, Any]:
    if type(data) is not bytes or len(data) > MAX_RECORD:
        raise DecodeError(f"{what}: expected at most {MAX_RECORD} bytes")
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
    except Exception as exc:
        raise DecodeError(f"{what}: not msgpack ({type(exc).__name__})") from None
    if type(doc) is not dict or type(doc.get("v")) is not int or doc["v"] < 1:
        raise DecodeError(f"{what}: expected a map with a format version")
    return doc


def _int(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise DecodeError(f"ipam {what}: expected an integer in [{low}, {high}]")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"ipam {what}: expected a boolean")
    return value


def _str(value: object, what: str) -> str:
    if type(value) is not str or not value or len(value.encode()) > MAX_NAME:
        raise DecodeError(f"ipam {what}: expected a name")
    return value


def _list(value: object, what: str) -> list[Any]:
    if type(value) is not list:
        raise DecodeError(f"ipam {what}: expected a list")
    return value


def _votes(value: object, what: str) -> frozenset[ClaimId]:
    out = set()
    for raw in _list(value, what):
        row = _list(raw, f"{what}[]")
        if len(row) != 2:
            raise DecodeError(f"ipam {what}[]: expected [owner, stamp]")
        out.add((_str(row[0], f"{what}[].owner"), _int(row[1], f"{what}[].stamp", 0, MAX_STAMP)))
    return frozenset(out)
