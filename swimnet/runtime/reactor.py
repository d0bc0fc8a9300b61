"""One epoll instance per trio run, shared by every node of the run: a descriptor that
becomes readable has its callback called inside the reactor's task, with no trio task
switch and no epoll_ctl for that wake-up.

Why: a node waiting with trio's wait_readable pays, per event (a datagram, a timer
expiry), one trio task step (reschedule, outcome, coroutine resume) and one epoll_ctl to
re-arm its one-shot registration; in a profile of a steady cluster that cost as much as the
protocol work itself. Here the descriptors are registered once, level-triggered, in an
inner epoll; trio waits on that epoll's descriptor (it is readable while any registered
descriptor is), and one reactor step serves every descriptor that is ready, including the
ones that became ready during the step (a datagram sent on loopback to a node of the same
process is readable at once): a probe round trip between two nodes of one process can run
in one step.

Rules:
- `Reactor.current()` is the run's reactor, made on first use (its loop is a trio system
  task, ended with the run), or None without epoll (not Linux): nodes then wait in tasks
  of their own;
- `watch(callbacks)` registers descriptors (fd -> callback, EPOLLIN, level-triggered)
  until the `Watch` is closed; a callback runs while its descriptor is readable, so it
  must consume what made it readable (or stop the watch) and do bounded work; callbacks
  never await;
- a callback that raises stops its watch (every descriptor of it unregistered at once) and
  the exception is re-raised by `Watch.wait_failed()` in the owner's task, so a bug crashes
  its node as it would in a task of the node, never the reactor or other nodes;
- `Watch.close()` is synchronous and idempotent: no callback of it runs afterwards; close
  it before closing its descriptors;
- timers: `watch(callbacks, timer=fn)` gives the watch a deadline (`Watch.set_deadline`,
  trio time, None or inf: none); every watch's deadline is kept in one heap served by one
  `Alarm` (timerfd) of the reactor, armed for the earliest deadline only: setting a
  deadline is a heap push (stale entries are skipped when they reach the top, and the heap
  is rebuilt from the live deadlines when stale ones outnumber them), the kernel timer is
  re-armed at the step's end (outside a step at once) and only when the earliest deadline
  changed, and one expiry calls `fn` of every watch due, in deadline order, each once per
  deadline set (its deadline is cleared before the call); a timer `fn` that raises stops
  its watch as a callback does; `has_timers` is False when the reactor has no Alarm (see
  `Alarm.open`: a test's MockClock), and the owner then keeps time itself;
- coalescing: a timer fires at its deadline, or up to COALESCE (1 ms) after it when more
  deadlines follow within that millisecond: the alarm is armed for the latest of them and
  one wake-up serves them all (a timer never fires before its deadline);
- the step's end: when a poll finds nothing ready (or the step ends), the alarm is re-armed
  if a deadline changed during the step, before the reactor waits again; if the earliest
  deadline has passed meanwhile, the step polls again;
- fairness: a step polls at most MAX_ROUNDS times and stops polling once it has served
  MAX_EVENTS callbacks (so at most 2 * MAX_EVENTS - 1; an expiry of the alarm counts
  as one, whatever number of timers it serves), then yields to trio (waiting on
  the inner epoll is a checkpoint): under load a step serves every node's ready
  descriptors about once, as one trio batch of per-node tasks did (a node's datagrams get
  the share its own task had: smaller bounds starve them against the stream tasks, see
  MAX_EVENTS), and the reactor can neither hold the event loop for long nor starve other
  tasks (stream exchanges, the user's).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import select
from collections.abc import Callable, Mapping

import trio

from swimnet.runtime.alarm import Alarm

MAX_ROUNDS = 32
"""Polls of the inner epoll per reactor step (each serves what is ready at that moment)."""
MAX_EVENTS = 2048
"""Ready descriptors taken per poll, and callbacks after which a step stops polling.
Bounds of 8 and 256 let 500 nodes of one process fall into an overload storm (no
convergence in 300 s, 2 ms CPU per node-second): a trio batch gives each stream task
(the join push-pulls) a turn but all the nodes' datagrams only 256 callbacks, so under
load acks were read late, probes timed out and false suspicions fed the load; with these
bounds the same run converged at 49.9 s, at 0.21 ms CPU per node-second."""

COALESCE = 0.001
"""Seconds a timer may fire after its deadline so that one expiry serves the deadlines that
follow it closely: the alarm is armed for the latest deadline at most this long after the
earliest (each wake-up of the reactor costs more than serving one more timer; a deadline
with none close behind it fires on time)."""
_COALESCE_SCAN = 64
"""Heap entries looked at to find that latest deadline (a bound on the work per arm)."""

Callback = Callable[[], None]

_CURRENT: trio.lowlevel.RunVar[Reactor | None] = trio.lowlevel.RunVar("swimnet_reactor", default=None)


class Watch:
    """Descriptors of one owner registered with the reactor; from `Reactor.watch`."""

    __slots__ = ("_deadline", "_error", "_failed", "_fds", "_open", "_reactor", "_timer", "_timer_seq")

    def __init__(self, reactor: Reactor, fds: list[int], timer: Callback | None = None) -> None:
        self._reactor = reactor
        self._fds = fds
        self._open = True
        self._error: BaseException | None = None
        self._failed = trio.Event()
        self._timer = timer
        self._deadline = math.inf
        self._timer_seq = -1
        """The sequence number of the heap entry that holds the deadline (-1: none)."""

    @property
    def closed(self) -> bool:
        return not self._open

    @property
    def deadline(self) -> float:
        """When the watch's timer fires next (inf: never)."""
        return self._deadline

    def set_deadline(self, deadline: float | None) -> None:
        """Call the watch's timer at `deadline` (trio time); None or inf: never. A no-op when
        unchanged, once closed, or for a watch without a timer."""
        if deadline is None:
            deadline = math.inf
        if deadline != self._deadline and self._timer is not None and self._open:
            self._deadline = deadline
            self._reactor._schedule(self, deadline)

    def close(self) -> None:
        """Unregister every descriptor of the watch and drop its deadline (idempotent)."""
        self._open = False
        fds, self._fds = self._fds, []
        if self._timer_seq >= 0:
            self._timer_seq = -1
            self._reactor._live -= 1
        self._deadline = math.inf
        for fd in fds:
            self._reactor._unregister(fd)

    def _fail(self, error: BaseException) -> None:
        self.close()
        if self._error is None:
            self._error = error
            self._failed.set()

    async def wait_failed(self) -> None:
        """Block until a callback raised, then re-raise its exception (cancellable; the
        owner closes the watch when it is cancelled)."""
        await self._failed.wait()
        assert self._error is not None
        raise self._error


class Reactor:
    """The run's shared epoll; obtain it with `Reactor.current()` inside trio."""

    def __init__(self, epoll: select.epoll, alarm: Alarm | None) -> None:
        self._epoll = epoll
        self._callbacks: dict[int, tuple[Callback, Watch]] = {}
        self.stepping = False
        """True while a step serves callbacks (a deadline set then is armed at its end)."""
        self._alarm = alarm
        self._heap: list[tuple[float, int, Watch]] = []
        """(deadline, sequence number, watch); an entry is live while the watch's
        `_timer_seq` is its sequence number."""
        self._live = 0
        """Watches with a live heap entry."""
        self._seq = 0
        self._heap_changed = False
        """A deadline was set during this step: the step's end re-arms the alarm."""
        self._now = trio.lowlevel.current_clock().current_time
        if alarm is not None:
            self._callbacks[alarm.fileno()] = (self._on_alarm, Watch(self, []))
            epoll.register(alarm.fileno(), select.EPOLLIN)

    @property
    def has_timers(self) -> bool:
        """Whether watches may have timers (the reactor has its Alarm)."""
        return self._alarm is not None

    @classmethod
    def current(cls) -> Reactor | None:
        reactor = _CURRENT.get()
        if reactor is None:
            if not hasattr(select, "epoll"):
                return None
            reactor = cls(select.epoll(), Alarm.open())
            _CURRENT.set(reactor)
            trio.lowlevel.spawn_system_task(reactor._run, name="swimnet.reactor")
        return reactor

    def watch(self, callbacks: Mapping[int, Callback], timer: Callback | None = None) -> Watch:
        """Register each descriptor with its callback (OSError if one cannot be; then none
        is); with `timer`, the watch has a deadline (ValueError without `has_timers`)."""
        if timer is not None and self._alarm is None:
            raise ValueError("this reactor has no timers (see has_timers)")
        watch = Watch(self, [], timer)
        try:
            for fd, callback in callbacks.items():
                if fd in self._callbacks:
                    raise trio.BusyResourceError(f"descriptor {fd} is already watched")
                self._epoll.register(fd, select.EPOLLIN)
                self._callbacks[fd] = (callback, watch)
                watch._fds.append(fd)
        except BaseException:
            watch.close()
            raise
        return watch

    # -- timers ----------------------------------------------------------------------------

    def _schedule(self, watch: Watch, deadline: float) -> None:
        """A watch's new deadline (from `Watch.set_deadline`): its old entry goes stale."""
        if watch._timer_seq < 0:
            self._live += 1
        if deadline == math.inf:
            watch._timer_seq = -1
            self._live -= 1
        else:
            self._seq = seq = self._seq + 1
            watch._timer_seq = seq
            heap = self._heap
            heapq.heappush(heap, (deadline, seq, watch))
            if len(heap) > 4 * self._live + 64:  # mostly stale: rebuild from the live entries
                heap[:] = [entry for entry in heap if entry[1] == entry[2]._timer_seq]
                heapq.heapify(heap)
        if self.stepping:
            self._heap_changed = True
        else:
            self._arm()

    def _arm(self) -> bool:
        """Arm the alarm for the earliest live deadline, or for the latest one at most
        COALESCE after it (no syscall when unchanged); True if the earliest has passed (it
        fires at the next poll)."""
        heap = self._heap
        while heap and heap[0][1] != heap[0][2]._timer_seq:
            heapq.heappop(heap)
        assert self._alarm is not None
        if not heap:
            self._alarm.set(math.inf)
            return False
        first = heap[0][0]
        if first <= self._now():
            self._alarm.set(first)
            return True
        self._alarm.set(_latest_within(heap, first + COALESCE))
        return False

    def _on_alarm(self) -> None:
        """The alarm fired: every watch due, in deadline order (the step's end re-arms)."""
        assert self._alarm is not None
        if not self._alarm.consume():  # re-armed after it fired: nothing is due for that expiry
            return
        self._heap_changed = True
        now = self._now()
        heap = self._heap
        due: list[Watch] = []
        while heap and heap[0][0] <= now:
            _, seq, watch = heapq.heappop(heap)
            if seq == watch._timer_seq:
                watch._timer_seq = -1
                watch._deadline = math.inf
                self._live -= 1
                due.append(watch)
        for watch in due:
            timer = watch._timer
            if timer is None or watch.closed:  # an earlier timer of this expiry stopped it
                continue
            try:
                timer()
            except Exception as exc:
                watch._fail(exc)

    # -- steps -----------------------------------------------------------------------------

    def _end_step(self) -> bool:
        """Re-arm the alarm if a deadline changed; True if the earliest deadline has passed
        (the step polls again)."""
        if self._heap_changed:
            self._heap_changed = False
            return self._arm()
        return False

    def _unregister(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # closed already: epoll forgot it
                self._epoll.unregister(fd)

    async def _run(self) -> None:
        epoll = self._epoll
        poll = epoll.poll
        callbacks = self._callbacks
        wait_readable = trio.lowlevel.wait_readable
        try:
            while True:
                await wait_readable(epoll.fileno())
                served = 0
                self.stepping = True
                try:
                    for _ in range(MAX_ROUNDS):
                        ready = poll(0, MAX_EVENTS)
                        if ready:
                            served += len(ready)
                            for fd, _ in ready:
                                entry = callbacks.get(fd)
                                if entry is None:  # a callback before it stopped this one's watch
                                    continue
                                try:
                                    entry[0]()
                                except Exception as exc:
                                    entry[1]._fail(exc)
                        if ready and served < MAX_EVENTS:
                            continue  # what the callbacks made ready is served in this step
                        if served >= MAX_EVENTS or not self._end_step():
                            break  # (a full step re-arms the alarm below)
                finally:
                    self.stepping = False
                    self._end_step()  # the step ran out of rounds (or was cancelled)
        finally:
            for _, watch in list(callbacks.values()):
                watch._fail(trio.ClosedResourceError("the reactor stopped"))
            epoll.close()
            if self._alarm is not None:
                self._alarm.close()


def _latest_within(heap: list[tuple[float, int, Watch]], bound: float) -> float:
    """The latest live deadline <= `bound` among the first entries of the heap (its top
    is live and <= bound); the subtrees of entries past the bound are skipped."""
    latest = heap[0][0]
    size = len(heap)
    pending = [0]
    scanned = 0
    while pending and scanned < _COALESCE_SCAN:
        index = pending.pop()
        deadline, seq, watch = heap[index]
        scanned += 1
        if deadline > bound:
            continue  # its children are later still
        if deadline > latest and seq == watch._timer_seq:
            latest = deadline
        child = 2 * index + 1
        if child < size:
            pending.append(child)
            if child + 1 < size:
                pending.append(child + 1)
    return latest
