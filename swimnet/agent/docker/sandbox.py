"""Waiting for a Docker sandbox's network namespace to exist (without polling).

Docker answers `Join` before the container's namespace is at its SandboxKey: runc makes the
namespace, then a prestart hook bind-mounts it there. Whatever needs the namespace (the
container's resolver) waits for that mount.

Rules: the mount table of the agent's mount namespace (/proc/self/mountinfo) is watched
with poll(POLLPRI), which the kernel signals on every mount and unmount; after each signal
the path is checked (`swimnet.datapath.netns.is_namespace`); the wait runs in a worker
thread, at most `timeout` seconds, and is abandoned (the thread notices within
POLL_SLICE) when the caller is cancelled. True when the namespace is there.
"""

from __future__ import annotations

import select
import threading
import time

import trio

MOUNTINFO = "/proc/self/mountinfo"
POLL_SLICE = 0.5
"""Longest single poll(): how soon an abandoned wait notices."""


def _wait(path: str, timeout: float, abandoned: threading.Event) -> bool:
    from swimnet.datapath.netns import is_namespace  # the agent's roles import no kernel library

    deadline = time.monotonic() + timeout
    with open(MOUNTINFO, "rb") as table:
        poller = select.poll()
        poller.register(table.fileno(), select.POLLPRI | select.POLLERR)
        while True:
            table.seek(0)
            table.read()  # re-arms the notification
            if is_namespace(path):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or abandoned.is_set():
                return False
            poller.poll(min(left, POLL_SLICE) * 1000)


async def wait_for_namespace(path: str, timeout: float) -> bool:
    abandoned = threading.Event()
    try:
        return await trio.to_thread.run_sync(_wait, path, timeout, abandoned, abandon_on_cancel=True)
    finally:
        abandoned.set()
