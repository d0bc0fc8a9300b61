"""Member records: the entry a node keeps per peer, and the frozen public view.

Rules: only the engine mutates `MemberRecord`s; everything handed to callers is a frozen
`Member` snapshot, so events keep describing the moment they happened.

Memory (a simulated cluster of N nodes holds N^2 records): a record keeps what every view
shares, the member's (name, address, meta, protocol versions), as one interned `identity`
tuple (`identity()`: equal facts, one tuple, whichever node holds them), beside the facts
of its own view (incarnation, state, when that state changed, verified). The interning is
bounded (cleared when full), so hostile peers inventing names cannot grow it: a cleared
table only stops sharing, equality never depends on identity.
"""

from __future__ import annotations

import attrs

from swimnet.wire.messages import Address, MemberState, State

_DEAD = State.DEAD
"""A State member as a constant (reading `State.X`, an enum class attribute, costs more)."""

Identity = tuple[str, Address, bytes, tuple[int, int, int]]
"""(name, address, meta, vsn): what a member says of itself; equal in every view."""

_IDENTITIES_MAX = 1 << 16
_identities: dict[Identity, Identity] = {}


def identity(name: str, addr: Address, meta: bytes, vsn: tuple[int, int, int]) -> Identity:
    """The shared tuple for these facts (the one every record with them holds)."""
    key = (name, addr, meta, vsn)
    shared = _identities.get(key)
    if shared is None:
        if len(_identities) >= _IDENTITIES_MAX:
            _identities.clear()
        _identities[key] = shared = key
    return shared


@attrs.frozen
class Member:
    """A member as one node sees it at one moment."""

    name: str
    address: Address
    state: State
    incarnation: int
    meta: bytes = b""


class MemberRecord:
    """One known member (self included); `state_change` is when `state` last changed;
    `verified`: we heard from it directly (see `membership.admission`). `addr`, `meta` and
    `vsn` read the shared `identity`; change them together with `rebind`. `name` (read on
    every peer choice and merge) is a slot of its own, the same string object."""

    __slots__ = ("identity", "incarnation", "name", "state", "state_change", "verified")

    def __init__(
        self,
        name: str,
        addr: Address,
        incarnation: int,
        state: State,
        state_change: float,
        meta: bytes = b"",
        vsn: tuple[int, int, int] = (2, 2, 2),
    ) -> None:
        self.identity = ident = identity(name, addr, meta, vsn)
        self.name: str = ident[0]
        self.incarnation = incarnation
        self.state = state
        self.state_change = state_change
        self.verified = True

    @property
    def addr(self) -> Address:
        return self.identity[1]

    @property
    def meta(self) -> bytes:
        return self.identity[2]

    @property
    def vsn(self) -> tuple[int, int, int]:
        return self.identity[3]

    def rebind(self, addr: Address, meta: bytes, vsn: tuple[int, int, int]) -> None:
        """The member announced a new address, meta or protocol versions."""
        ident = self.identity
        if ident[1] != addr or ident[2] != meta or ident[3] != vsn:
            self.identity = identity(ident[0], addr, meta, vsn)

    def snapshot(self) -> Member:
        name, addr, meta, _ = self.identity
        return Member(name, addr, self.state, self.incarnation, meta)

    def to_wire(self) -> MemberState:
        name, addr, meta, vsn = self.identity
        return MemberState(name, addr, meta, self.incarnation, self.state, vsn)

    @property
    def dead_or_left(self) -> bool:
        return self.state >= _DEAD
