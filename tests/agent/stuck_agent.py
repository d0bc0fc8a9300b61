"""An agent process whose shutdown meets something stuck, for tests/agent/test_agent_shutdown.py.

    python tests/agent/stuck_agent.py DIR WHAT SHUTDOWN_LIMIT

runs `main_run` (the daemon's real signal handling and exit codes) on 127.0.0.1, state and
socket under DIR, with the datapath on: the kernel driver (`DatapathDriver`) over an
in-memory datapath, and an in-memory DNS resolver pool. WHAT is what gets stuck:
- `datapath`: the datapath's `dump` (a reconcile) blocks its worker thread for good, as a
  netlink call into a dying namespace would; DIR/stuck is written when it does;
- `resolvers`: the resolver pool's cleanup blocks in a worker thread that cannot be
  abandoned (nothing but the watchdog can end that); DIR/stuck is written once the agent
  runs.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio
from fake_driver import FakeResolverPool  # this script's folder is on sys.path

from swimnet.agent.daemon.run import main_run
from swimnet.agent.daemon.settings import AgentSettings
from swimnet.datapath.actual import ActualState
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.memory import MemoryDatapath

NEVER = threading.Event()


class StuckDatapath(MemoryDatapath):
    """Its first dump never returns (its thread waits for good)."""

    def __init__(self, node_tag: str, marker: Path) -> None:
        super().__init__(node_tag)
        self.marker = marker

    def dump(self, sandboxes: Any = None) -> ActualState:
        self.marker.write_text("dump")
        NEVER.wait()
        raise AssertionError("unreachable")


class StuckPool(FakeResolverPool):
    """Its cleanup waits in a worker thread that cannot be abandoned."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    @contextlib.asynccontextmanager
    async def open(self, overlay: object) -> AsyncIterator[FakeResolverPool]:
        self.marker.write_text("running")
        try:
            yield self
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(NEVER.wait)


def main() -> int:
    base, what, limit = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    marker = base / "stuck"
    settings = AgentSettings(
        name="stuck",
        bind="127.0.0.1:0",
        state_dir=str(base / "state"),
        socket=str(base / "sock"),
        metrics=None,
        profile="local",
        datapath=True,
        log_format="json",
        tuning={"leave_timeout": 0.5},
    )

    def driver(**kwargs: Any) -> DatapathDriver:
        tag = kwargs["node_tag"]
        datapath = StuckDatapath(tag, marker) if what == "datapath" else MemoryDatapath(tag)
        return DatapathDriver(**kwargs, datapath=datapath)

    pool = StuckPool(marker) if what == "resolvers" else FakeResolverPool()
    return main_run(settings, driver_factory=driver, resolver_pool=pool.open, shutdown_limit=limit)


if __name__ == "__main__":
    sys.exit(main())
