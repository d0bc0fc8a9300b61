"""A timer as a file descriptor (Linux timerfd): waking for a deadline costs an I/O wake-up
instead of a trio cancel scope expiring. The run's reactor holds one for every node's
deadline; a node on tasks of its own (no reactor) holds its own.

Why: under trio, a task sleeping until a deadline is woken by cancelling its cancel scope;
the cancellation path (delivery, the Cancelled exception unwinding through the task, a new
scope for the next deadline) cost more than the engine's own work per timer wake-up in a
profile of a steady cluster. A timerfd becomes readable at the deadline, and waiting for a
readable descriptor is trio's cheapest wake-up (the UDP receive loop uses the same path).

Rules:
- `Alarm.open()` returns None where timerfd is unavailable (not Linux, no libc symbol, the
  syscall fails) or when trio's clock is not its system clock (a test's MockClock runs on
  virtual time, which a kernel timer cannot follow): the node then sleeps in cancel scopes;
- deadlines are trio times (`trio.current_time()`); trio's system clock reads
  CLOCK_MONOTONIC (perf_counter) plus a fixed `offset`, so `set` converts a deadline to
  CLOCK_MONOTONIC by subtracting that offset (no clock read), rounding up plus one
  nanosecond, so the alarm never fires before the deadline in trio time; None or inf
  disarms it;
- `set` with the deadline already set does nothing (no syscall); otherwise it writes the
  expiry into a preallocated itimerspec and makes one timerfd_settime call (counted in
  `arms`); it never raises: the values it passes are valid and the descriptor is open
  until `close`;
- `wait` returns once the alarm fired for the deadline set now; a re-arm after the expiry
  (the deadline changed meanwhile) discards the expiry, and `wait` keeps waiting;
- `fileno()` and `consume()` are the same wait for a caller that polls the descriptor
  itself (the reactor): when it is readable, `consume()` is True if the alarm fired
  for the deadline set now (the expiry is taken, so the descriptor is no longer readable)
  and False for an expiry a re-arm discarded;
- `close` is idempotent and wakes a task blocked in `wait` with trio.ClosedResourceError.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Callable

import trio

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


_TIMESPEC_WORDS = 4
"""struct itimerspec: it_interval (tv_sec, tv_nsec) then it_value (tv_sec, tv_nsec), C longs."""
_VALUE_SEC, _VALUE_NSEC = 2, 3


def _libc_timerfd() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """timerfd_create and timerfd_settime. settime is called without argtypes: its
    arguments are two small ints, a byref() pointer and None (NULL), which ctypes passes
    as they are, and skipping the per-call argument conversion halves the call's cost."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.restype = ctypes.c_int
    return create, settime


_FUNCTIONS = _libc_timerfd()


def _system_clock_offset() -> float | None:
    """The offset of trio's clock when it is its system clock (perf_counter, i.e.
    CLOCK_MONOTONIC on Linux, plus `offset`), else None; trio does not export the class,
    so it is recognised by name."""
    clock = trio.lowlevel.current_clock()
    cls = type(clock)
    if cls.__name__ != "SystemClock" or not cls.__module__.startswith("trio."):
        return None
    offset = getattr(clock, "offset", None)
    return float(offset) if isinstance(offset, (int, float)) else None


class Alarm:
    """One timerfd; create with `Alarm.open()` inside trio."""

    __slots__ = ("_deadline", "_fd", "_offset", "_settime", "_spec", "_spec_ref", "_words", "arms")

    def __init__(self, fd: int, settime: Callable[..., int], offset: float) -> None:
        self._fd = fd
        self._settime = settime
        self._offset = offset
        self._spec = (ctypes.c_long * _TIMESPEC_WORDS)()
        self._spec_ref = ctypes.byref(self._spec)
        self._words = memoryview(self._spec).cast("B").cast("l")
        self._deadline = math.inf
        self.arms = 0
        """timerfd_settime calls so far."""

    @staticmethod
    def available() -> bool:
        """Whether this platform has timerfd (the clock is checked by `open`)."""
        return _FUNCTIONS is not None

    @classmethod
    def open(cls) -> Alarm | None:
        if _FUNCTIONS is None:
            return None
        offset = _system_clock_offset()
        if offset is None:
            return None
        create, settime = _FUNCTIONS
        fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            return None
        return cls(fd, settime, offset)

    @property
    def deadline(self) -> float:
        return self._deadline

    def set(self, deadline: float | None) -> None:
        """Fire at `deadline` (trio time); None or inf: never."""
        if deadline is None:
            deadline = math.inf
        if deadline == self._deadline or self._fd < 0:
            return
        self._deadline = deadline
        words = self._words
        if deadline == math.inf:
            words[_VALUE_SEC] = words[_VALUE_NSEC] = 0  # all zero: disarmed
        else:  # never zero (that would disarm): at least 1 ns
            ns = max(1, math.ceil((deadline - self._offset) * 1e9) + 1)
            words[_VALUE_SEC], words[_VALUE_NSEC] = divmod(ns, 1_000_000_000)
        self._settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)
        self.arms += 1

    def fileno(self) -> int:
        """The timerfd (readable once the alarm fired; -1 once closed)."""
        return self._fd

    def consume(self) -> bool:
        """Take the expiry: True if the alarm fired for the deadline set now (it is then
        disarmed), False if there was none (a re-arm after the expiry discarded it)."""
        try:
            os.read(self._fd, 8)
        except BlockingIOError:  # re-armed after it fired: that expiry is gone
            return False
        self._deadline = math.inf  # an absolute timer fires once
        return True

    async def wait(self) -> None:
        """Until the alarm fires for the deadline set now."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            if self.consume():
                return

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
