"""Per-subscriber event buffers (membership events, table changes) that never stall the protocol.

Rules:
- the node pushes every event to every open subscription synchronously, in the order the
  engine produced them; pushing never blocks and never fails;
- each subscription holds at most `buffer` undelivered events; when a new event arrives at a
  full buffer the OLDEST buffered event is discarded and `dropped` is incremented (the
  subscriber still sees the newest events in order, and learns that it missed some: it can
  resynchronise from `node.members()`);
- a subscription receives only while entered (`async with`); it ends (iteration stops,
  `receive` raises `trio.EndOfChannel`) once it is closed (its `async with` block exits or
  the node shuts down) and its buffer is drained.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import trio

from swimnet.errors import LocalProtocolError

DEFAULT_BUFFER = 1024

E = TypeVar("E")


class Subscription(Generic[E]):
    """An async iterator of events (E); see the module docstring for the policy."""

    def __init__(
        self,
        buffer: int,
        register: Callable[[Subscription[Any]], None],
        unregister: Callable[[Subscription[Any]], None],
        accept: Callable[[E], bool] | None = None,
        initial: list[E] | None = None,
    ) -> None:
        if not isinstance(buffer, int) or isinstance(buffer, bool) or buffer < 1:
            raise ValueError(f"buffer: must be an integer >= 1, got {buffer!r}")
        self.buffer = buffer
        self.dropped = 0
        """Events discarded because the buffer was full (oldest first)."""
        self.delivered = 0
        self._events: deque[E] = deque()
        self._closed = False
        self._entered = False
        self._lot = trio.lowlevel.ParkingLot()
        self._register = register
        self._unregister = unregister
        self._accept = accept
        """Only events it accepts are delivered (None: all)."""
        self._events.extend(initial or ())

    # -- producer side (the node) ----------------------------------------------------------

    def push(self, event: E) -> None:
        if self._closed or (self._accept is not None and not self._accept(event)):
            return
        if len(self._events) >= self.buffer:
            self._events.popleft()
            self.dropped += 1
        self._events.append(event)
        self._lot.unpark_all()

    def close(self) -> None:
        """No more events; buffered ones can still be received."""
        if not self._closed:
            self._closed = True
            self._unregister(self)
            self._lot.unpark_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._events)

    # -- consumer side -------------------------------------------------------------------

    def receive_nowait(self) -> E:
        """The next buffered event; trio.WouldBlock if none, trio.EndOfChannel when finished."""
        if not self._entered:
            raise LocalProtocolError("use the subscription as `async with node.subscribe() as events:`")
        if self._events:
            self.delivered += 1
            return self._events.popleft()
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> E:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                event = self.receive_nowait()
            except trio.WouldBlock:
                await self._lot.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event

    def __aiter__(self) -> Subscription[E]:
        return self

    async def __anext__(self) -> E:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Subscription[E]:
        if self._entered:
            raise LocalProtocolError("a subscription can be entered only once")
        self._entered = True
        self._register(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
