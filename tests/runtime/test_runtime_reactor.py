"""The run's shared epoll (swimnet.runtime.reactor) and nodes served by it or by tasks of
their own."""

from __future__ import annotations

import functools
import resource
import select
import socket
import time
from collections.abc import Callable

import pytest
import trio
import trio.testing
from runtime_harness import converged, fast_config, run_node, start_cluster, states, wait_for

from swimnet.runtime.alarm import Alarm
from swimnet.runtime.reactor import MAX_EVENTS, MAX_ROUNDS, Reactor

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="no epoll on this platform")


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def _allow_descriptors(count: int) -> None:
    """Raise this process's soft descriptor limit to `count` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _reactor() -> Reactor:
    reactor = Reactor.current()
    assert reactor is not None
    return reactor


async def test_one_reactor_per_run() -> None:
    assert _reactor() is _reactor()


async def test_a_callback_runs_while_readable_and_never_after_close() -> None:
    a, b = _pair()
    got: list[bytes] = []
    watch = _reactor().watch({a.fileno(): lambda: got.append(a.recv(100))})  # one datagram per call
    try:
        for i in range(3):
            b.send(b"x%d" % i)
        await wait_for(lambda: len(got) == 3, timeout=5, what="three datagrams")
        assert got == [b"x0", b"x1", b"x2"]
        watch.close()
        watch.close()
        b.send(b"late")
        await trio.sleep(0.05)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"x0", b"x1", b"x2"] and watch.closed
    finally:
        watch.close()
        a.close()
        b.close()


async def test_a_failing_callback_stops_its_watch_only() -> None:
    a, b = _pair()
    c, d = _pair()
    other: list[bytes] = []

    def broken() -> None:
        raise ValueError("bug")

    reactor = _reactor()
    failing = reactor.watch({a.fileno(): broken})
    working = reactor.watch({c.fileno(): lambda: other.append(c.recv(100))})
    try:
        b.send(b"boom")
        with trio.fail_after(5), pytest.raises(ValueError, match="bug"):
            await failing.wait_failed()
        assert failing.closed and not working.closed
        d.send(b"still served")
        await wait_for(lambda: other == [b"still served"], timeout=5, what="the other watch")
    finally:
        failing.close()
        working.close()
        for s in (a, b, c, d):
            s.close()


async def test_a_descriptor_is_watched_once() -> None:
    a, b = _pair()
    c, d = _pair()
    reactor = _reactor()
    first = reactor.watch({a.fileno(): lambda: None})
    try:
        with pytest.raises(trio.BusyResourceError):
            reactor.watch({c.fileno(): lambda: None, a.fileno(): lambda: None})
        # nothing of the refused watch stayed registered: c can be watched now
        reactor.watch({c.fileno(): lambda: None}).close()
    finally:
        first.close()
        for s in (a, b, c, d):
            s.close()


class _ReactorSteps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == "swimnet.reactor":
            self.steps += 1


async def test_what_becomes_ready_during_a_step_is_served_in_that_step() -> None:
    """A ping-pong between two watched sockets (each callback answers at once, as nodes of
    one process do on loopback) runs in one reactor step, up to MAX_ROUNDS exchanges."""
    a, b = _pair()
    exchanges = MAX_ROUNDS - 1
    seen: list[int] = []

    def serve(sock: socket.socket) -> None:
        n = int(sock.recv(100))
        seen.append(n)
        if n < exchanges:
            sock.send(b"%d" % (n + 1))

    reactor = _reactor()
    watch = reactor.watch({a.fileno(): lambda: serve(a), b.fileno(): lambda: serve(b)})
    instrument = _ReactorSteps()
    try:
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(instrument)
        b.send(b"1")
        await wait_for(lambda: len(seen) == exchanges, timeout=5, what="the ping-pong")
        assert seen == list(range(1, exchanges + 1))
        assert instrument.steps == 1
    finally:
        trio.lowlevel.remove_instrument(instrument)
        watch.close()
        a.close()
        b.close()


async def test_consume_takes_an_expiry_once_and_not_one_a_rearm_discarded() -> None:
    alarm = Alarm.open()
    if alarm is None:
        pytest.skip("no timerfd")
    try:
        alarm.set(trio.current_time() - 1.0)
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(alarm.fileno())
        assert alarm.consume() and alarm.deadline == float("inf")
        assert not alarm.consume()
        alarm.set(trio.current_time() - 1.0)
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(alarm.fileno())
        alarm.set(trio.current_time() + 3600.0)  # re-armed after the expiry: it is gone
        assert not alarm.consume()
    finally:
        alarm.close()


async def test_nodes_on_the_reactor_and_on_their_own_tasks_form_one_cluster() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 2)
        own = await nursery.start(functools.partial(run_node, fast_config("n2"), shared_reactor=False))
        assert await own.node.join([handles[0].seed]) == 1
        nodes = [h.node for h in handles] + [own.node]
        await wait_for(lambda: converged(nodes), what="convergence")
        assert all(h.node._watch is not None for h in handles) and own.node._watch is None
        crashed = handles[1].node
        watch = crashed._watch
        await handles[1].crash()
        assert watch is not None and watch.closed  # a crashed node is served no more
        await wait_for(lambda: states(own.node)["n1"] == "dead", what="crash seen by the task node")
        await wait_for(lambda: states(handles[0].node)["n1"] == "dead", what="crash seen by a reactor node")
        await own.crash()
        await wait_for(lambda: states(handles[0].node)["n2"] == "dead", what="the task node's crash")
        nursery.cancel_scope.cancel()


async def test_a_step_is_bounded_then_the_reactor_yields() -> None:
    """Past MAX_ROUNDS polls, or once MAX_EVENTS callbacks ran, a step ends (other tasks
    run) and the next step serves the rest: nothing is lost, nothing starves."""
    _allow_descriptors(2 * (MAX_EVENTS + 1) + 64)
    pairs = [_pair() for _ in range(MAX_EVENTS + 1)]
    got: list[bytes] = []

    def reader(sock: socket.socket) -> Callable[[], None]:
        return lambda: got.append(sock.recv(100))

    reactor = _reactor()
    watch = reactor.watch({a.fileno(): reader(a) for a, _ in pairs})
    instrument = _ReactorSteps()
    try:
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(instrument)
        for _, b in pairs:
            b.send(b"x")
        await wait_for(lambda: len(got) == len(pairs), timeout=10, what="every descriptor served")
        assert instrument.steps >= 2  # MAX_EVENTS callbacks end the first step
        trio.lowlevel.remove_instrument(instrument)
        burst = pairs[0][1]
        instrument.steps = 0
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(instrument)
        for _ in range(3 * MAX_ROUNDS):
            burst.send(b"y")
        await wait_for(lambda: len(got) == len(pairs) + 3 * MAX_ROUNDS, timeout=10, what="the burst")
        assert instrument.steps >= 3  # one datagram per callback, MAX_ROUNDS polls per step
    finally:
        trio.lowlevel.remove_instrument(instrument)
        watch.close()
        for a, b in pairs:
            a.close()
            b.close()


async def test_the_shared_timer_is_armed_once_per_reactor_step_not_per_node() -> None:
    """Every node's deadline is in the reactor's one heap: a probe's timeout moves a node's
    deadline earlier and its ack moves it back, in one step, and the reactor's timerfd is
    armed at the step's end for the earliest deadline of all nodes: one timerfd_settime per
    reactor step for the whole cluster (one more when that deadline passed during the step;
    each node armed a timerfd of its own 1.4 times per probe before), and no node has a
    timerfd of its own."""
    reactor = _reactor()
    if not reactor.has_timers:
        pytest.skip("no timerfd")
    instrument = _ReactorSteps()
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 4, push_pull_interval=3600.0)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="convergence")
        await trio.sleep(1.0)  # the join's gossip drains
        assert all(node._alarm is None and node._timed_watch is not None for node in nodes)
        alarm = reactor._alarm
        assert alarm is not None
        arms = alarm.arms
        sent = sum(node.stats["udp_packets_sent"] for node in nodes)
        trio.lowlevel.add_instrument(instrument)
        try:
            await trio.sleep(3.0)  # ~15 probe intervals per node: a ping and an ack in each
        finally:
            trio.lowlevel.remove_instrument(instrument)
        probes = (sum(node.stats["udp_packets_sent"] for node in nodes) - sent) / 2
        assert probes >= 40
        # once per step, and once more in a step whose earliest deadline passed while it ran
        # (armed in the past, the alarm fires at the step's next poll): rare on an idle
        # host, a few in 50 steps on a loaded one (55 arms in 53 steps under the test suite)
        arms_in_window = alarm.arms - arms
        assert arms_in_window <= 1.25 * instrument.steps + 1, (arms_in_window, instrument.steps)
        assert arms_in_window < 1.4 * probes, (arms_in_window, probes)
        nursery.cancel_scope.cancel()


async def test_timers_fire_in_deadline_order_once_each_and_one_expiry_serves_all_due() -> None:
    reactor = _reactor()
    if not reactor.has_timers:
        pytest.skip("no timerfd")
    fired: list[str] = []
    watches = {tag: reactor.watch({}, timer=functools.partial(fired.append, tag)) for tag in "abcde"}
    instrument = _ReactorSteps()
    try:
        await trio.testing.wait_all_tasks_blocked()
        now = trio.current_time()
        watches["c"].set_deadline(now + 0.03)
        watches["a"].set_deadline(now + 0.01)
        watches["b"].set_deadline(now + 0.02)
        watches["d"].set_deadline(now + 0.001)
        watches["d"].set_deadline(now + 10.0)  # moved later: its first deadline is stale
        watches["e"].set_deadline(now + 0.005)
        watches["e"].set_deadline(None)  # disarmed: never fires
        trio.lowlevel.add_instrument(instrument)
        time.sleep(0.05)  # a, b and c come due while the reactor cannot poll
        await wait_for(lambda: len(fired) == 3, timeout=5, what="the due timers")
        assert fired == ["a", "b", "c"]
        assert instrument.steps == 1  # one expiry, one step, for all three
        assert all(watches[t].deadline == float("inf") for t in "abce")
        assert watches["d"].deadline == now + 10.0
        await trio.sleep(0.05)
        assert fired == ["a", "b", "c"]  # each once per deadline set
        watches["a"].set_deadline(trio.current_time() - 1.0)  # in the past: fires at once
        await wait_for(lambda: fired[-1:] == ["a"], timeout=5, what="a deadline in the past")
    finally:
        trio.lowlevel.remove_instrument(instrument)
        for watch in watches.values():
            watch.close()


async def test_a_closed_watch_never_fires_and_a_failing_timer_stops_its_watch_only() -> None:
    reactor = _reactor()
    if not reactor.has_timers:
        pytest.skip("no timerfd")
    fired: list[str] = []

    def broken() -> None:
        raise ValueError("timer bug")

    closed = reactor.watch({}, timer=lambda: fired.append("closed"))
    failing = reactor.watch({}, timer=broken)
    working = reactor.watch({}, timer=lambda: fired.append("working"))
    try:
        now = trio.current_time()
        for watch in (closed, failing, working):
            watch.set_deadline(now + 0.01)
        closed.close()
        closed.set_deadline(now + 0.02)  # closed: ignored
        with trio.fail_after(5), pytest.raises(ValueError, match="timer bug"):
            await failing.wait_failed()
        await wait_for(lambda: fired == ["working"], timeout=5, what="the other timer")
        assert failing.closed and not working.closed
        await trio.sleep(0.05)
        assert fired == ["working"]
        assert reactor._live == 0
    finally:
        for watch in (closed, failing, working):
            watch.close()


async def test_stale_heap_entries_are_bounded() -> None:
    """Moving a deadline leaves its old entry in the heap; the heap is rebuilt from the
    live entries before stale ones outnumber them more than four to one."""
    reactor = _reactor()
    if not reactor.has_timers:
        pytest.skip("no timerfd")
    watch = reactor.watch({}, timer=lambda: None)
    plain = reactor.watch({})
    try:
        base = trio.current_time() + 100.0
        for k in range(1000):
            watch.set_deadline(base + k)
        assert len(reactor._heap) <= 4 * reactor._live + 65
        assert watch.deadline == base + 999 and reactor._alarm is not None
        assert reactor._alarm.deadline == base + 999  # armed for the live entry, not a stale one
        plain.set_deadline(base)  # no timer: a no-op
        assert plain.deadline == float("inf")
    finally:
        watch.close()
        plain.close()


def test_no_timers_under_a_virtual_clock() -> None:
    async def main() -> None:
        reactor = _reactor()
        assert not reactor.has_timers
        with pytest.raises(ValueError):
            reactor.watch({}, timer=lambda: None)

    trio.run(main, clock=trio.testing.MockClock())


async def test_deadlines_within_a_millisecond_of_the_earliest_share_one_expiry() -> None:
    """The alarm is armed for the latest deadline at most COALESCE after the earliest, so
    one wake-up serves them all (none before its deadline); one further off fires alone."""
    reactor = _reactor()
    if not reactor.has_timers:
        pytest.skip("no timerfd")
    fired: list[tuple[str, float, int]] = []  # (tag, when, reactor steps so far)
    instrument = _ReactorSteps()

    def timer(tag: str) -> Callable[[], None]:
        return lambda: fired.append((tag, trio.current_time(), instrument.steps))

    watches = {tag: reactor.watch({}, timer=timer(tag)) for tag in "abcd"}
    try:
        await trio.testing.wait_all_tasks_blocked()
        now = trio.current_time()
        deadlines = {"a": now + 0.05, "b": now + 0.0505, "c": now + 0.0509, "d": now + 0.06}
        for tag in "dcba":
            watches[tag].set_deadline(deadlines[tag])
        assert reactor._alarm is not None and reactor._alarm.deadline == deadlines["c"]
        trio.lowlevel.add_instrument(instrument)
        await wait_for(lambda: len(fired) == 4, timeout=5, what="the four timers")
        assert [tag for tag, _, _ in fired] == ["a", "b", "c", "d"]
        steps = [step for _, _, step in fired]
        assert steps[0] == steps[1] == steps[2] < steps[3]  # a, b, c in one step; d later
        assert all(at >= deadlines[tag] for tag, at, _ in fired)
    finally:
        trio.lowlevel.remove_instrument(instrument)
        for watch in watches.values():
            watch.close()
