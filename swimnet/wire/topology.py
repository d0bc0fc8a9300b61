"""Wire messages of network coordinates (codes 96-127) and their strict decoders.

Gossip (datagrams): `CoordinateUpdate`, one member's latest coordinate, relayed.
Push-pull user state: `CoordinateState`, the latest coordinate of every member a node knows.

Rules:
- a coordinate travels as its owner published it: `epoch` (the incarnation the owner started
  its life with), `updates` (the samples its coordinate had absorbed) and `coordinate`, the
  packed float32 form of swimnet.topology.codec; (epoch, updates) orders the versions of one
  owner's coordinate, so an older one never replaces a newer one;
- here only the shape is checked (name, uint64 counters, a blob of at most
  MAX_COORDINATE_BYTES); the values are checked by the topology codec when they are used;
- a `CoordinateState` holds at most MAX_SECTION_COORDINATES records: what one push-pull can
  inject.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from swimnet.errors import DecodeError
from swimnet.wire import fields as f
from swimnet.wire.codec import register
from swimnet.wire.limits import MAX_UINT64
from swimnet.wire.messages import WireMessage

MAX_COORDINATE_BYTES = 4 * (32 + 3)
"""A packed coordinate: float32 for at most 32 dimensions and three scalars (the topology
codec's MAX_COORDINATE_BYTES; a test holds them equal)."""
MAX_SECTION_COORDINATES = 8_192
"""Records in one push-pull section; a node that knows more sends a random subset."""


@attrs.frozen
class CoordinateRecord:
    """One member's coordinate as its owner published it."""

    name: str
    epoch: int
    updates: int
    coordinate: bytes


@attrs.frozen
class CoordinateUpdate(WireMessage):
    """A member's coordinate changed materially (gossip, relayed by whoever learns it)."""

    CODE: ClassVar[int] = 96
    name: str
    epoch: int
    updates: int
    coordinate: bytes


@attrs.frozen
class CoordinateState(WireMessage):
    """Every member coordinate a node knows (its own included): the push-pull section."""

    CODE: ClassVar[int] = 97
    records: tuple[CoordinateRecord, ...]


def _record(v: Any, what: str) -> CoordinateRecord:
    if type(v) is not list or len(v) != 4:
        raise DecodeError(f"{what}: expected [name, epoch, updates, coordinate]")
    return CoordinateRecord(
        f.name(v[0], f"{what}.name"),
        f.uint(v[1], f"{what}.epoch", MAX_UINT64),
        f.uint(v[2], f"{what}.updates", MAX_UINT64),
        f.blob(v[3], f"{what}.coordinate", MAX_COORDINATE_BYTES),
    )


def _dec_update(v: list[Any]) -> CoordinateUpdate:
    f.fields(v, 4, "coordinate_update")
    r = _record(v[1:], "coordinate_update")
    return CoordinateUpdate(r.name, r.epoch, r.updates, r.coordinate)


def _dec_state(v: list[Any]) -> CoordinateState:
    f.fields(v, 1, "coordinate_state")
    items = v[1]
    if type(items) is not list or len(items) > MAX_SECTION_COORDINATES:
        raise DecodeError(f"coordinate_state: expected a list of at most {MAX_SECTION_COORDINATES}")
    return CoordinateState(tuple(_record(r, "coordinate_state.record") for r in items))


register(CoordinateUpdate, lambda m: [m.name, m.epoch, m.updates, m.coordinate], _dec_update, relayed=True)
register(
    CoordinateState,
    lambda m: [[[r.name, r.epoch, r.updates, r.coordinate] for r in m.records]],
    _dec_state,
)
