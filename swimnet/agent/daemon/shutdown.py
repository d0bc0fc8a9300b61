"""The daemon's signals, and the bound on its exit after SIGTERM / SIGINT.

Rules:
- `serve_signals` reads the signals for the whole life of `run_agent`, from before the
  start: SIGHUP calls the reload it is given (one that comes before the agent runs is
  remembered and done once it does); the first SIGTERM / SIGINT sets the stop event and
  arms the watchdog; another one during the shutdown ends the process at once;
- every cleanup step of the shutdown has a bound of its own (the driver's close, the DNS
  resolvers' cleanup, the graceful leave); the `Watchdog` is the last resort for a step
  that cannot be cancelled (a worker thread stuck in the kernel): armed, it waits `limit`
  seconds in a thread of its own (the trio loop may be the one stuck), then logs the stack
  of every thread (what did not finish) and ends the process with exit code 1
  (`os._exit`: nothing else runs); `disarm()` when `run_agent` returns;
- only a process that owns its signals (`handle_signals=True`) has a watchdog: an agent
  run in-process by a test or a benchmark never ends its host process.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable

import trio

from swimnet.agent.logs import LOGGER, event

log = logging.getLogger(LOGGER)

SHUTDOWN_LIMIT = 30.0
"""Seconds from SIGTERM / SIGINT to the end of the process, whatever is stuck."""
EXIT_STUCK = 1


class Watchdog:
    """Ends the process `limit` seconds after `arm()` unless `disarm()` came first."""

    def __init__(
        self, limit: float = SHUTDOWN_LIMIT, *, end_process: Callable[[int], object] = os._exit
    ) -> None:
        if not limit > 0:
            raise ValueError(f"the shutdown limit must be > 0, got {limit!r}")
        self.limit = limit
        self._exit = end_process
        self._disarmed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def armed(self) -> bool:
        return self._thread is not None and not self._disarmed.is_set()

    def arm(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="swimnet-shutdown-watchdog", daemon=True)
        self._thread.start()

    def disarm(self) -> None:
        self._disarmed.set()

    def fire(self, why: str) -> None:
        """End the process now (a second signal): logged, exit code 1."""
        event(log, "exiting at once", level=logging.ERROR, event="shutdown_forced", reason=why)
        self._exit(EXIT_STUCK)

    def _watch(self) -> None:
        if self._disarmed.wait(self.limit):
            return
        event(
            log,
            "shutdown did not finish in time; exiting (the stacks below show what was stuck)",
            level=logging.ERROR,
            event="shutdown_stuck",
            limit=self.limit,
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        self._exit(EXIT_STUCK)


class SignalState:
    """What the signal reader shares with the daemon: the stop request and the reload."""

    def __init__(self, stop: trio.Event) -> None:
        self.stop = stop
        self.reload: Callable[[], object] | None = None
        """Set once the agent runs (its keyring reload); None before."""
        self.reload_pending = False

    def running(self, reload: Callable[[], object]) -> None:
        """The agent runs: SIGHUP reloads from now on (and now, if one came before)."""
        self.reload = reload
        if self.reload_pending:
            self.reload_pending = False
            reload()


async def serve_signals(state: SignalState, received: AsyncIterator[int], watchdog: Watchdog | None) -> None:
    """Act on the signals until cancelled (see the module rules)."""
    async for signum in received:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            if state.reload is None:
                state.reload_pending = True
            else:
                state.reload()
            continue
        if state.stop.is_set():
            if watchdog is not None:
                watchdog.fire(f"a second {name} during the shutdown")
            continue
        event(log, "shutting down", event="shutdown", signal=name)
        state.stop.set()
        if watchdog is not None:
            watchdog.arm()
