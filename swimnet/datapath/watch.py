"""Changes to a datapath made by others, and whether they take it away from the desired state.

    watch = datapath.watch()            # KernelWatch (netlink) or the in-memory datapath's
    watch.track(desired.sandboxes)      # the sandbox namespaces to watch (those that exist)
    await watch.wait(); changes = watch.read()
    if any(drifted(c, desired) for c in changes): reconcile those sandboxes

Rules:
- a change is a frozen value naming one sandbox namespace and what happened there, to this
  node's devices only: a `self` FDB entry or an IPv4 neighbour of the VXLAN device written
  or deleted, the bridge or the VXLAN device created, changed or deleted, the namespace
  itself gone, or `Lost` (the source dropped changes, e.g. a full socket buffer: anything
  may have happened there);
- `drifted(change, desired)` is pure: True when the change shows the sandbox differing from
  the desired state (a desired entry deleted or rewritten, an undesired entry written, a
  device deleted, down, with the wrong MTU or the VXLAN device without its bridge, a
  desired namespace gone, changes lost). A datapath's own writes move it towards the desired
  state, so their changes never count, except the intermediate states of a device being
  built: the driver ignores every change that arrives while it writes;
- a `Watch` watches exactly the namespaces last given to `track()` that exist, drops
  changes of every other one, stops watching a namespace when it goes away (after
  reporting `SandboxGone`), and never blocks: `read()` returns what is queued (at most
  `limit` reads), `discard()` drops it, `wait()` returns when something may be queued;
  `track()` may run in a worker thread while trio calls the others;
- `QueueWatch` is a Watch fed by a producer (`push`) from any thread: the in-memory
  datapath's; swimnet.datapath.kwatch.KernelWatch is the kernel's.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
from collections.abc import Collection, Iterable
from typing import Protocol

import attrs
import trio

from swimnet.datapath.model import DesiredState

READ_LIMIT = 256
"""Default number of reads (kernel datagrams, queued changes) one `read()` takes at most."""


@attrs.frozen
class FdbChange:
    """A `self` FDB entry (MAC -> VTEP) of the VXLAN device written or deleted."""

    netns: str
    mac: str
    vtep: str
    deleted: bool


@attrs.frozen
class NeighChange:
    """An IPv4 neighbour (IP -> MAC) of the VXLAN device written or deleted."""

    netns: str
    ip: str
    mac: str
    """"" when the kernel gave none (an entry being deleted)."""
    permanent: bool
    deleted: bool


@attrs.frozen
class LinkChange:
    """The bridge or the VXLAN device (by name) created, changed or deleted."""

    netns: str
    ifname: str
    deleted: bool
    up: bool = False
    mtu: int = 0
    enslaved: bool = False
    """Whether the device has a master (the VXLAN device's is the bridge)."""


@attrs.frozen
class SandboxGone:
    """The namespace is no longer there (its name removed); it is no longer watched."""

    netns: str


@attrs.frozen
class Lost:
    """The source lost changes of this namespace (e.g. its socket buffer overflowed)."""

    netns: str
    reason: str


Change = FdbChange | NeighChange | LinkChange | SandboxGone | Lost


def drifted(change: Change, desired: DesiredState) -> bool:
    """Whether `change` shows its sandbox differing from `desired` (see the module rules)."""
    want = desired.sandboxes.get(change.netns)
    if want is None:
        return False  # not a sandbox to keep: the full reconcile removes it
    if isinstance(change, (SandboxGone, Lost)):
        return True
    if isinstance(change, FdbChange):
        return ((change.mac, change.vtep) in want.fdb) == change.deleted
    if isinstance(change, NeighChange):
        if change.deleted or not change.permanent:
            return change.ip in want.neighbours
        return want.neighbours.get(change.ip) != change.mac
    box = want.sandbox
    if change.ifname not in (box.bridge, box.vxlan):
        return False
    if change.deleted or not change.up or change.mtu != box.mtu:
        return True
    return change.ifname == box.vxlan and not change.enslaved


class Watch(Protocol):
    """A source of changes made to the sandboxes of one datapath (see the module rules)."""

    def track(self, netns: Collection[str]) -> None:
        """Watch exactly these namespaces (the existing ones)."""
        ...

    def read(self, limit: int = READ_LIMIT) -> list[Change]:
        """The changes queued now, without blocking."""
        ...

    def discard(self) -> int:
        """Drop everything queued now; how many reads that took."""
        ...

    async def wait(self) -> None:
        """Return when `read()` may have something (a checkpoint either way)."""
        ...

    def close(self) -> None: ...


class QueueWatch:
    """A Watch fed by `push()` from any thread; a socket pair wakes `wait()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: collections.deque[Change] = collections.deque()
        self._tracked: frozenset[str] = frozenset()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.closed = False

    def track(self, netns: Collection[str]) -> None:
        with self._lock:
            self._tracked = frozenset(netns)

    def push(self, changes: Iterable[Change]) -> None:
        """Queue the changes of tracked namespaces; a gone namespace is no longer tracked."""
        with self._lock:
            if self.closed:
                return
            before = len(self._queue)
            for change in changes:
                if change.netns not in self._tracked:
                    continue
                self._queue.append(change)
                if isinstance(change, SandboxGone):
                    self._tracked -= {change.netns}
            if len(self._queue) > before:
                with contextlib.suppress(BlockingIOError):
                    self._wake_w.send(b"\0")

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def read(self, limit: int = READ_LIMIT) -> list[Change]:
        with self._lock:
            if self.closed:
                return []
            self._drain_wakeups()
            return [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]

    def discard(self) -> int:
        with self._lock:
            if self.closed:
                return 0
            self._drain_wakeups()
            count = len(self._queue)
            self._queue.clear()
            return count

    async def wait(self) -> None:
        if self._queue or self.closed:
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.wait_readable(self._wake_r)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._queue.clear()
            self._wake_r.close()
            self._wake_w.close()
