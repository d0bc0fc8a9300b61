"""The protocol's messages as frozen values.

Rules:
- every message is an immutable attrs class with a unique `CODE` (its first field on the
  wire); codes 0-31 belong to membership, 32-63 to tables, 64-95 to key management;
- values are already valid when constructed locally (the type hints say what is allowed);
  bytes from peers become messages only through `swimnet.wire.codec`, which checks every
  field's type and bound;
- `Address` is (host, port); names are node names (unique in a cluster).
"""

from __future__ import annotations

import enum
from typing import ClassVar

import attrs

Address = tuple[str, int]


class WireMessage:
    """Base of every message; `CODE` is its type tag on the wire."""

    __slots__ = ()
    CODE: ClassVar[int]


class State(enum.IntEnum):
    """A member's state as one node sees it."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@attrs.frozen
class Ping(WireMessage):
    """Direct probe. `target` names the node meant, so a stranger on that address ignores it."""

    CODE: ClassVar[int] = 1
    seq: int
    target: str
    source: str


@attrs.frozen
class IndirectPing(WireMessage):
    """Ask a helper to probe `target` at `target_addr` for us; `nack` asks for a nack on timeout."""

    CODE: ClassVar[int] = 2
    seq: int
    target: str
    target_addr: Address
    source: str
    nack: bool = True


@attrs.frozen
class Ack(WireMessage):
    """Answer to a ping (or relayed answer to an indirect ping); `payload` is opaque (coordinates)."""

    CODE: ClassVar[int] = 3
    seq: int
    payload: bytes = b""


@attrs.frozen
class Nack(WireMessage):
    """A helper could not reach the target of an indirect ping in time."""

    CODE: ClassVar[int] = 4
    seq: int


@attrs.frozen
class Alive(WireMessage):
    """`node` is alive at `incarnation`, reachable at `addr`, with `meta` and protocol range."""

    CODE: ClassVar[int] = 5
    incarnation: int
    node: str
    addr: Address
    meta: bytes = b""
    vsn: tuple[int, int, int] = (2, 2, 2)
    """(protocol min, protocol max, protocol current)."""


@attrs.frozen
class Suspect(WireMessage):
    """`sender` suspects `node` at `incarnation`."""

    CODE: ClassVar[int] = 6
    incarnation: int
    node: str
    sender: str


@attrs.frozen
class Dead(WireMessage):
    """`sender` declares `node` dead at `incarnation`; sender == node means the node left."""

    CODE: ClassVar[int] = 7
    incarnation: int
    node: str
    sender: str


@attrs.frozen
class MemberState:
    """One member as carried in a push-pull exchange."""

    name: str
    addr: Address
    meta: bytes
    incarnation: int
    state: State
    vsn: tuple[int, int, int] = (2, 2, 2)


@attrs.frozen
class PushPull(WireMessage):
    """Full membership state exchanged over a stream (join and anti-entropy).

    `user` carries state of the layers above membership (tables), opaque here.
    """

    CODE: ClassVar[int] = 8
    join: bool
    members: tuple[MemberState, ...]
    user: bytes = b""


Message = Ping | IndirectPing | Ack | Nack | Alive | Suspect | Dead | PushPull
