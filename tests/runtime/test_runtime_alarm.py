"""The node's timerfd alarm (swimnet.runtime.alarm) and the node's timer on both paths:
the alarm under trio's system clock, cancel scopes under any other clock."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing
from runtime_harness import converged, start_cluster, states, wait_for

from swimnet.runtime.alarm import Alarm

pytestmark = pytest.mark.skipif(Alarm.available() is False, reason="no timerfd on this platform")


def _open() -> Alarm:
    alarm = Alarm.open()
    assert alarm is not None
    return alarm


async def test_fires_at_the_deadline_never_before() -> None:
    alarm = _open()
    try:
        for delay in (0.0, 0.001, 0.03, 0.12):
            deadline = trio.current_time() + delay
            alarm.set(deadline)
            with trio.fail_after(5):
                await alarm.wait()
            assert trio.current_time() >= deadline
    finally:
        alarm.close()


async def test_a_deadline_in_the_past_fires_at_once() -> None:
    alarm = _open()
    try:
        alarm.set(trio.current_time() - 10.0)
        with trio.fail_after(5):
            await alarm.wait()
    finally:
        alarm.close()


async def test_rearming_after_it_fired_discards_that_expiry() -> None:
    alarm = _open()
    try:
        alarm.set(trio.current_time() + 0.01)
        await trio.sleep(0.05)  # it fired; nobody read it
        later = trio.current_time() + 0.2
        alarm.set(later)
        with trio.fail_after(5):
            await alarm.wait()
        assert trio.current_time() >= later
    finally:
        alarm.close()


async def test_setting_the_same_deadline_keeps_a_pending_expiry() -> None:
    alarm = _open()
    try:
        deadline = trio.current_time() + 0.01
        alarm.set(deadline)
        await trio.sleep(0.05)
        alarm.set(deadline)  # unchanged: the expiry that happened stays readable
        with trio.fail_after(5):
            await alarm.wait()
    finally:
        alarm.close()


async def test_disarmed_alarm_never_fires() -> None:
    alarm = _open()
    try:
        alarm.set(trio.current_time() + 0.01)
        alarm.set(None)
        assert alarm.deadline == float("inf")
        with trio.move_on_after(0.3) as scope:
            await alarm.wait()
        assert scope.cancelled_caught
    finally:
        alarm.close()


async def test_close_wakes_a_waiter_and_is_idempotent() -> None:
    alarm = _open()
    woke: list[type[BaseException]] = []

    async def waiter() -> None:
        try:
            await alarm.wait()
        except trio.ClosedResourceError as exc:
            woke.append(type(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        alarm.close()
    alarm.close()
    alarm.set(trio.current_time())  # closed: ignored
    assert woke == [trio.ClosedResourceError]


def test_no_alarm_under_a_virtual_clock() -> None:
    async def main() -> Alarm | None:
        return Alarm.open()

    assert trio.run(main, clock=trio.testing.MockClock()) is None


class _WallClock(trio.abc.Clock):
    """Real time, but not trio's SystemClock: the node must fall back to cancel scopes."""

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.perf_counter()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return max(0.0, deadline - self.current_time())


def _crash_is_detected() -> tuple[bool, dict[str, str]]:
    async def main() -> tuple[bool, dict[str, str]]:
        alarm = Alarm.open()
        if alarm is not None:
            alarm.close()
        async with trio.open_nursery() as nursery:
            handles = await start_cluster(nursery, 3)
            nodes = [h.node for h in handles]
            await wait_for(lambda: converged(nodes), what="convergence")
            await handles[-1].crash()
            observer = nodes[0]
            await wait_for(lambda: states(observer)[handles[-1].name] == "dead", what="crash detected")
            nursery.cancel_scope.cancel()
        return alarm is not None, states(observer)

    return trio.run(main, clock=_WallClock())


def test_node_timers_run_on_cancel_scopes_without_the_system_clock() -> None:
    used_alarm, view = _crash_is_detected()
    assert not used_alarm
    assert view["n2"] == "dead" and view["n1"] == "alive"


async def test_node_timers_run_on_the_alarm_under_the_system_clock() -> None:
    alarm = Alarm.open()
    assert alarm is not None
    alarm.close()
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 3)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="convergence")
        # on the run's reactor the timer is the watch's deadline on the reactor's timerfd
        assert all(h.node._timed_watch is not None and h.node._alarm is None for h in handles)
        await handles[-1].crash()
        await wait_for(lambda: states(nodes[0])[handles[-1].name] == "dead", what="crash detected")
        nursery.cancel_scope.cancel()
