"""Member records: the mutable entry a node keeps per peer, and the frozen public view.

Rules: only the engine mutates `MemberRecord`s; everything handed to callers is a frozen
`Member` snapshot, so events keep describing the moment they happened.
"""

from __future__ import annotations

import attrs

from swimnet.wire.messages import Address, MemberState, State


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
    `verified`: we heard from it directly (see `membership.admission`)."""

    __slots__ = ("addr", "incarnation", "meta", "name", "state", "state_change", "verified", "vsn")

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
        self.name = name
        self.addr = addr
        self.incarnation = incarnation
        self.state = state
        self.state_change = state_change
        self.meta = meta
        self.vsn = vsn
        self.verified = True

    def snapshot(self) -> Member:
        return Member(self.name, self.addr, self.state, self.incarnation, self.meta)

    def to_wire(self) -> MemberState:
        return MemberState(self.name, self.addr, self.meta, self.incarnation, self.state, self.vsn)

    @property
    def dead_or_left(self) -> bool:
        return self.state >= State.DEAD
