"""The node's timer as a file descriptor (Linux timerfd): waking for a deadline costs an I/O
wake-up instead of a trio cancel scope expiring.

Why: under trio, a task sleeping until a deadline is woken by cancelling its cancel scope;
the cancellation path (delivery, the Cancelled exception unwinding through the task, a new
scope for the next deadline) cost more than the engine's own work per timer wake-up in a
profile of a steady cluster. A timerfd becomes readable at the deadline, and waiting for a
readable descriptor is trio's cheapest wake-up (the UDP receive loop uses the same path).

Rules:
- `Alarm.open()` returns None where timerfd is unavailable (not Linux, no libc symbol, the
  syscall fails) or when trio's clock is not its system clock (a test's MockClock runs on
  virtual time, which a kernel timer cannot follow): the node then sleeps in cancel scopes;
- deadlines are trio times (`trio.current_time()`); `set` converts one to CLOCK_MONOTONIC
  (what trio's system clock reads) against the current time, rounding up, so the alarm
  never fires before the deadline in trio time; None or inf disarms it;
- `set` with the deadline already set does nothing (no syscall); it never raises: the
  values it passes are valid and the descriptor is open until `close`;
- `wait` returns once the alarm fired for the deadline set now; a re-arm after the expiry
  (the deadline changed meanwhile) discards the expiry, and `wait` keeps waiting;
- `close` is idempotent and wakes a task blocked in `wait` with trio.ClosedResourceError.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import time
from collections.abc import Callable

import trio

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc_timerfd() -> tuple[Callable[..., int], Callable[..., int]] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    create.restype = ctypes.c_int
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
    settime.restype = ctypes.c_int
    return create, settime


_FUNCTIONS = _libc_timerfd()


def _system_clock() -> bool:
    """Whether trio's clock is its system clock (perf_counter, i.e. CLOCK_MONOTONIC on Linux,
    plus an offset); trio does not export the class, so it is recognised by name."""
    cls = type(trio.lowlevel.current_clock())
    return cls.__name__ == "SystemClock" and cls.__module__.startswith("trio.")


class Alarm:
    """One timerfd; create with `Alarm.open()` inside trio."""

    __slots__ = ("_deadline", "_fd", "_settime", "_spec", "_spec_ref")

    def __init__(self, fd: int, settime: Callable[..., int]) -> None:
        self._fd = fd
        self._settime = settime
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self._deadline = math.inf

    @staticmethod
    def available() -> bool:
        """Whether this platform has timerfd (the clock is checked by `open`)."""
        return _FUNCTIONS is not None

    @classmethod
    def open(cls) -> Alarm | None:
        if _FUNCTIONS is None or not _system_clock():
            return None
        create, settime = _FUNCTIONS
        fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            return None
        return cls(fd, settime)

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
        value = self._spec.it_value
        if deadline == math.inf:
            value.tv_sec = value.tv_nsec = 0  # all zero: disarmed
        else:
            mono = time.monotonic() + (deadline - trio.current_time())
            ns = max(1, math.ceil(mono * 1e9))  # never zero (that would disarm)
            value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        self._settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)

    async def wait(self) -> None:
        """Until the alarm fires for the deadline set now."""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                os.read(self._fd, 8)
            except BlockingIOError:  # re-armed after it fired: that expiry is gone
                continue
            self._deadline = math.inf  # an absolute timer fires once
            return

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            trio.lowlevel.notify_closing(fd)
            os.close(fd)
