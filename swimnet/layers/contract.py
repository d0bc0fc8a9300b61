"""The contract between the engine and its layers: what a layer may ask of its host, and
what the engine asks of a layer.

Rules:
- a layer is given its `Host` at construction and keeps nothing else of the engine: no
  reaching into membership, no clock of its own (every call that can change state gets
  `now`), randomness only from `host.rng`;
- a layer declares, once, the datagram messages and stream requests it serves
  (`message_handlers`, `stream_handlers`, by message type; the engine refuses to register
  one type twice), its push-pull section (`section`, `local_state`, `merge_state`) and its
  piggyback queue (`broadcasts`);
- every stream a layer opens gets an id from `host.open_stream`; exactly one of
  `handle_reply(id, ...)` or `stream_failed(id, ...)` follows for it, on that same layer;
- `sealed` says whether the input arrived authenticated under the keyring: layers that carry
  secrets (keys) refuse anything unsealed;
- completion is announced with `host.emit(event)` (events the runtime hands to waiters);
  nothing outside polls a layer.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from swimnet.config import Config
from swimnet.membership.delegates import BroadcastSource
from swimnet.membership.events import MemberEvent
from swimnet.membership.member import Member, MemberRecord
from swimnet.wire.messages import Address, WireMessage

MessageHandler = Callable[[Any, Address, float, bool], None]
"""(message, sender address, now, sealed) for a datagram message."""
StreamHandler = Callable[[Any, Address, float, bool], WireMessage | None]
"""(request, peer address, now, sealed) -> the reply message, or None to close unanswered."""


class Host(Protocol):
    """What the engine offers a layer."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Config: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def stats(self) -> Counter[str]: ...

    @property
    def packet_budget(self) -> int:
        """Bytes a plaintext datagram may hold (the packet size minus sealing overhead)."""
        ...

    @property
    def seals_outgoing(self) -> bool:
        """Outgoing traffic is sealed under the keyring (secrets may travel)."""
        ...

    def send(self, addr: Address, messages: list[WireMessage]) -> None:
        """A datagram with `messages`, topped up with piggybacked broadcasts."""
        ...

    def send_packet(self, addr: Address, parts: list[bytes]) -> None:
        """A datagram of already encoded messages (nothing added)."""
        ...

    def broadcast(self, key: Hashable, message: WireMessage) -> None:
        """Piggyback `message` on membership gossip (a newer one with the same key replaces it)."""
        ...

    def open_stream(self, addr: Address, message: WireMessage, owner: Layer) -> int:
        """Queue a stream request; returns its id (see the module rules)."""
        ...

    def choose_members(self, k: int, accept: Callable[[MemberRecord], bool]) -> list[MemberRecord]:
        """Up to k members `accept` admits, never ourselves, topology-biased."""
        ...

    def member(self, name: str) -> Member | None: ...

    def live_members(self) -> list[Member]:
        """Alive or suspect members other than ourselves."""
        ...

    def emit(self, event: Any) -> None:
        """Announce an event (appended to the engine's events, after what came before)."""
        ...


class Layer(Protocol):
    """What the engine asks of a layer (keys, tables)."""

    @property
    def section(self) -> str:
        """The name of this layer's push-pull section (and of its streams' kind)."""
        ...

    @property
    def broadcasts(self) -> BroadcastSource | None:
        """Piggybacked on membership gossip after membership's own messages (None: nothing)."""
        ...

    def message_handlers(self) -> Mapping[type, MessageHandler]: ...

    def stream_handlers(self) -> Mapping[type, StreamHandler]: ...

    def handle_reply(
        self, stream_id: int, message: WireMessage, addr: Address, now: float, sealed: bool
    ) -> bool:
        """The reply to a stream this layer opened; False if it was not the expected kind."""
        ...

    def stream_failed(self, stream_id: int, now: float) -> None: ...

    def local_state(self, join: bool, now: float) -> bytes | None:
        """This layer's push-pull section (None: nothing to say)."""
        ...

    def merge_state(self, data: bytes, join: bool, now: float, sealed: bool) -> None: ...

    def member_event(self, event: MemberEvent, now: float) -> None: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...
