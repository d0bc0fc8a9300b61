"""What `Swim` asks of the layers above it, given once at construction (memberlist's
`Delegate`, `PingDelegate` and `EventDelegate`).

Rules:
- every collaborator is a typed Protocol handed to `Swim(..., delegates=SwimDelegates(...))`;
  nothing is assigned onto a `Swim` after it was built;
- every callback that can change state gets `now`; callbacks never call back into `Swim`'s
  input methods (they may queue output through their own host);
- the defaults do nothing, so a bare `Swim` is plain SWIM + Lifeguard.
"""

from __future__ import annotations

from collections.abc import Container, Sequence, Sized
from typing import Protocol

import attrs

from swimnet.membership.events import MemberEvent


class PingDelegate(Protocol):
    """The payload of our acks and the round-trip time of our direct probes (topology)."""

    def ping_seq(self, member: str, seq: int) -> int:
        """The sequence number of our next direct ping of `member`, given the next free one:
        `seq` itself or a later one (mod 2**32, at most a few ahead). The choice is how a
        prober asks for the payload of the ack (see `ack_payload`): pings carry no payload."""
        ...

    def ack_payload(self, seq: int, prober: str) -> bytes:
        """Bytes to attach to our ack of `prober`'s ping with sequence number `seq` (b"" for none)."""
        ...

    def notify_ping_complete(self, member: str, rtt: float, payload: bytes, now: float) -> None:
        """A direct UDP probe of `member` was acknowledged after `rtt` seconds."""
        ...

    def forget(self, member: str) -> None:
        """`member` was reaped: drop what was learned from probing it."""
        ...


class StateDelegate(Protocol):
    """User state carried in every push-pull exchange (the layers' sections)."""

    def local_state(self, join: bool, now: float) -> bytes: ...

    def merge_remote_state(self, data: bytes, join: bool, now: float) -> None: ...


class EventDelegate(Protocol):
    """Told of every membership event at the moment it happens, before it is queued."""

    def notify_member_event(self, event: MemberEvent, now: float) -> None: ...


class PeerSelection(Protocol):
    """A biased choice of gossip targets, probe helpers and sync partners (topology)."""

    def choose(self, candidates: Sequence[str], k: int, skip: Container[str]) -> list[str]:
        """Up to k distinct names of `candidates`, none of them in `skip`."""
        ...


class BroadcastSource(Protocol):
    """A further queue of piggybacked messages, drained after membership's own.

    `len()` (or, for a source with `pending` containers, any of them non-empty) is what
    wakes the gossip tick: a source whose messages should only ride on
    packets sent anyway (coordinates) says so with `wakes_gossip` False (its `len()` is then
    never asked) and is still asked to `take` for each that has room, unless its `pending`
    containers are all empty."""

    @property
    def wakes_gossip(self) -> bool:
        """Whether a non-empty source (`len()`) wakes the idle gossip tick."""
        ...

    @property
    def pending(self) -> tuple[Sized, ...] | None:
        """Containers that are all empty whenever `take` would return nothing (tested on every
        packet, no call made); None: no such test, `take` is asked every time."""
        ...

    def take(self, budget: int, overhead: int, n_members: int) -> list[bytes]: ...

    def __len__(self) -> int: ...


class _NoPing:
    def ping_seq(self, member: str, seq: int) -> int:
        return seq

    def ack_payload(self, seq: int, prober: str) -> bytes:
        return b""

    def notify_ping_complete(self, member: str, rtt: float, payload: bytes, now: float) -> None:
        return None

    def forget(self, member: str) -> None:
        return None


class _NoState:
    def local_state(self, join: bool, now: float) -> bytes:
        return b""

    def merge_remote_state(self, data: bytes, join: bool, now: float) -> None:
        return None


class _NoEvents:
    def notify_member_event(self, event: MemberEvent, now: float) -> None:
        return None


@attrs.frozen
class SwimDelegates:
    """Everything `Swim` calls out to; `selection=None` means uniform random choice."""

    ping: PingDelegate = attrs.field(factory=_NoPing)
    state: StateDelegate = attrs.field(factory=_NoState)
    events: EventDelegate = attrs.field(factory=_NoEvents)
    selection: PeerSelection | None = None
    broadcasts: tuple[BroadcastSource, ...] = ()
