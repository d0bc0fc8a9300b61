"""DatapathDriver over the in-memory datapath, on trio's mock clock (no kernel, no wall time).

The driver calls the datapath inline here (threads=False) so the autojump clock only moves
when every task waits on a timer; one test keeps the worker threads, on the real clock.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Collection

import pytest
import trio
from overlay_fixtures import local, network, remote, snapshot

from swimnet.datapath import LocalEndpoint, MemoryDatapath, NetworkSpec, desired_state, diff
from swimnet.datapath.actual import ActualState
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.names import sandbox_name, veth_name
from swimnet.datapath.ops import CreateBridge, Op, ReplaceFdb
from swimnet.errors import DatapathError

TAG = "n1"
VTEP = "192.0.2.11"
NETS = {"ovnet": (network(), 4097)}
SB = sandbox_name(TAG, 4097)


def make(**kw: object) -> tuple[DatapathDriver, MemoryDatapath]:
    mem = MemoryDatapath(TAG)
    options: dict[str, object] = {
        "reconcile_interval": 30.0,
        "debounce": 0.1,
        "startup_grace": 0.0,
        "threads": False,
        **kw,
    }
    return DatapathDriver(TAG, VTEP, datapath=mem, **options), mem  # type: ignore[arg-type]


def base(extra_remotes: int = 0):  # type: ignore[no-untyped-def]
    remotes = [remote("r2", "10.1.0.2/24", "192.0.2.12"), remote("r3", "10.1.0.3/24", "192.0.2.13")]
    remotes += [remote(f"x{i}", f"10.1.0.{100 + i}/24", "192.0.2.12") for i in range(extra_remotes)]
    return snapshot(NETS, [local("web", "10.1.0.1/24")], remotes)


async def until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def entries(mem: MemoryDatapath, netns: str = SB) -> tuple[set[tuple[str, str]], dict[str, str]]:
    box = mem.sandboxes[netns]
    return {(m, v) for m, vs in box.fdb.items() for v in vs}, dict(box.neighbours)


EXPECTED = (
    {("02:42:0a:01:00:02", "192.0.2.12"), ("02:42:0a:01:00:03", "192.0.2.13")},
    {"10.1.0.2": "02:42:0a:01:00:02", "10.1.0.3": "02:42:0a:01:00:03"},
)


async def test_nothing_is_reconciled_before_the_first_update(autojump_clock: object) -> None:
    driver, mem = make()
    assert mem.apply(_leftover_ops()).ok  # a crashed run's sandbox
    assert sandbox_name(TAG, 5000) in mem.sandboxes
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await trio.sleep(100)
        assert driver.stats["reconciles"] == 0 and sandbox_name(TAG, 5000) in mem.sandboxes
        driver.update(snapshot({}))  # the agent's first snapshot: nothing local
        await until(lambda: driver.stats["reconciles"] == 1)
        assert mem.sandboxes == {}  # leftovers cleaned up
        nursery.cancel_scope.cancel()


def _leftover_ops() -> list[Op]:
    gone = NetworkSpec("gone", 5000, "10.9.0.0/24")
    old = LocalEndpoint("gone", "gone-old", "old", "10.9.0.1/24", "02:42:0a:09:00:01", "c9")
    return diff(desired_state(TAG, VTEP, 1500, [gone], [old], []), MemoryDatapath(TAG).dump())


async def test_a_burst_of_updates_costs_one_reconcile(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for i in range(50):  # 50 snapshots within one debounce window: only the last one counts
            driver.update(base(extra_remotes=i))
            await trio.sleep(0.001)
        await until(lambda: driver.stats["reconciles"] >= 1)
        await trio.sleep(5)
        assert driver.stats["reconciles"] == 1
        fdb, neigh = entries(mem)
        assert len(fdb) == 2 + 49 and len(neigh) == 2 + 49
        assert driver.stats["ops_applied"] == 3 + 2 * (2 + 49)  # namespace, bridge, vxlan + entries
        nursery.cancel_scope.cancel()


async def test_a_steady_stream_of_updates_is_not_starved(autojump_clock: object) -> None:
    driver, mem = make(debounce=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        for i in range(100):  # one update every 0.1 s for 10 s
            driver.update(base(extra_remotes=i))
            await trio.sleep(0.1)
        assert 10 <= driver.stats["reconciles"] <= 25  # about one per debounce window
        await trio.sleep(1)
        assert len(entries(mem)[0]) == 2 + 99
        nursery.cancel_scope.cancel()


async def test_the_periodic_reconcile_repairs_drift(autojump_clock: object) -> None:
    driver, mem = make(reconcile_interval=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(base())
        await until(lambda: driver.stats["reconciles"] == 1)
        assert entries(mem) == EXPECTED
        box = mem.sandboxes[SB]
        del box.fdb["02:42:0a:01:00:02"]  # deleted by hand
        box.fdb["02:42:0a:01:00:03"] = ["192.0.2.99"]  # moved by hand
        box.neighbours["10.1.0.77"] = "02:00:00:00:00:77"  # added by hand
        box.learned.add("02:00:00:00:00:78")
        await trio.sleep(5)
        assert entries(mem) != EXPECTED  # not yet: the next periodic reconcile is due at t0 + 10 s
        await until(lambda: driver.stats["reconciles"] == 2)
        assert entries(mem) == EXPECTED and not box.learned
        before = driver.stats["ops_applied"]
        await until(lambda: driver.stats["reconciles"] == 3)
        assert driver.stats["ops_applied"] == before  # converged: nothing to do
        nursery.cancel_scope.cancel()


async def test_a_sandbox_removed_by_hand_comes_back_with_its_containers(autojump_clock: object) -> None:
    driver, mem = make(reconcile_interval=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        web = local("web", "10.1.0.1/24")
        driver.update(snapshot(NETS, [web], base().remote))
        await driver.attach(web)
        assert set(mem.sandboxes[SB].ports) == {veth_name("ovnet-web")}
        del mem.sandboxes[SB]
        await until(lambda: driver.stats["reattaches"] == 1)
        assert set(mem.sandboxes[SB].ports) == {veth_name("ovnet-web")}
        assert entries(mem) == EXPECTED
        nursery.cancel_scope.cancel()


async def test_attach_and_detach_call_through(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        web = local("web", "10.1.0.1", netns="/proc/1/ns/net")  # a bare IP gets the subnet's prefix
        driver.update(snapshot(NETS, [], base().remote))
        await trio.sleep(1)
        assert mem.sandboxes == {}  # no local endpoint, no sandbox
        await driver.attach(web)  # ahead of the snapshot that lists it: pinned
        port = mem.sandboxes[SB].ports[veth_name("ovnet-web")]
        assert (port.ip, port.netns, port.ifname) == ("10.1.0.1/24", "/proc/1/ns/net", "eth0")
        assert entries(mem) == EXPECTED
        driver.update(snapshot(NETS, [], base().remote))  # an older view of the overlay
        await trio.sleep(1)
        assert SB in mem.sandboxes  # the pin kept it
        driver.update(snapshot(NETS, [web], base().remote))  # now the snapshot governs
        await trio.sleep(1)
        await driver.attach(web)  # again: same endpoint, same port
        assert list(mem.sandboxes[SB].ports) == [veth_name("ovnet-web")]
        await driver.detach(web)
        assert mem.sandboxes[SB].ports == {}
        driver.update(snapshot(NETS, [], base().remote))
        await trio.sleep(1)
        assert mem.sandboxes == {}
        await driver.detach(web)  # idempotent
        assert driver.stats["attaches"] == 2 and driver.stats["detaches"] == 2
        assert driver.stats["errors"] == 0
        nursery.cancel_scope.cancel()


async def test_attach_by_pid(autojump_clock: object) -> None:
    driver, mem = make()
    web = local("web", "10.1.0.1/24", netns=None, pid=4242)
    driver.update(snapshot(NETS, [web]))
    await driver.attach(web)  # works without run(): attach reconciles itself
    assert mem.sandboxes[SB].ports[veth_name("ovnet-web")].netns == 4242


async def test_errors_surface_as_datapath_errors(autojump_clock: object) -> None:
    driver, mem = make()
    broken = {"bridge": True}
    mem.fail(lambda op: isinstance(op, CreateBridge) and broken["bridge"], errno.EPERM)
    web = local("web", "10.1.0.1/24")
    with pytest.raises(DatapathError, match="unknown to the datapath"):
        await driver.attach(web)
    driver.update(snapshot(NETS, [web]))
    with pytest.raises(
        DatapathError, match=r"attach ovnet-web: setting up network 'ovnet' failed: .*Operation not permitted"
    ):
        await driver.attach(web)
    with pytest.raises(DatapathError, match="names no container"):
        await driver.attach(local("nobody", "10.1.0.9/24", netns=None))
    assert driver.stats["attach_errors"] == 1  # refusals before any work are not counted
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await until(lambda: driver.stats["reconcile_failures"] + driver.stats["op_errors"] >= 4)
        assert "Operation not permitted" in (driver.last_error or "")
        broken["bridge"] = False  # the kernel works again: the retry (backoff, not 30 s) converges
        with trio.fail_after(10):
            await until(lambda: mem.sandboxes.get(SB) is not None and mem.sandboxes[SB].bridge is not None)
        await driver.attach(web)
        nursery.cancel_scope.cancel()


async def test_entry_failures_are_counted_and_retried(autojump_clock: object) -> None:
    driver, mem = make()
    broken = {"on": True}
    mem.fail(lambda op: isinstance(op, ReplaceFdb) and broken["on"], errno.EIO)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(base())
        await until(lambda: driver.stats["op_errors"] >= 6)  # 2 entries, three tries
        assert driver.stats["errors"] == driver.stats["op_errors"]
        broken["on"] = False
        with trio.fail_after(10):
            await until(lambda: entries(mem) == EXPECTED)
        nursery.cancel_scope.cancel()


async def test_a_snapshot_that_cannot_be_programmed_is_not_applied(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(base())
        await until(lambda: driver.stats["reconciles"] == 1)
        clash = {"ovnet": (network(), 4097), "other": (network("other", "10.2.0.0/24"), 4097)}
        other = local("o", "10.2.0.1/24", network="other", netns="c2")
        driver.update(snapshot(clash, [local("web", "10.1.0.1/24"), other], base().remote))
        await until(lambda: driver.stats["reconcile_failures"] == 1)
        assert "share VNI 4097" in (driver.last_error or "")
        assert entries(mem) == EXPECTED  # left as it was, not torn down
        nursery.cancel_scope.cancel()


async def test_bad_values_are_skipped_and_the_rest_is_programmed(autojump_clock: object) -> None:
    # the overlay records refuse what the datapath would refuse (one verdict) ...
    with pytest.raises(ValueError, match="only IPv4"):
        network("v6", "fd00::/64")
    with pytest.raises(ValueError, match="only IPv4"):
        remote("six", "fd00::5/64", "192.0.2.12")
    # ... so only a local endpoint spec (the agent's own state) can still carry a bad value
    driver, mem = make()
    locals_ = [
        local("web", "10.1.0.1/24"),
        local("w6", "fd00::1/64"),
        local("bad", "10.1.0.9/24", ifname="a/b"),
    ]
    driver.update(snapshot({"ovnet": (network(), 4097)}, locals_, base().remote))
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        await until(lambda: driver.stats["reconciles"] == 1)
        assert set(mem.sandboxes) == {SB}
        assert entries(mem) == EXPECTED
        assert driver.stats["invalid"] == 2  # the IPv6 endpoint and the bad interface name, once each
        await trio.sleep(100)
        assert driver.stats["invalid"] == 2
        nursery.cancel_scope.cancel()


async def test_our_own_vtep_and_other_networks_are_ignored(autojump_clock: object) -> None:
    driver, mem = make()
    remotes = [
        *base().remote,
        remote("me", "10.1.0.50/24", VTEP),
        remote("z", "10.5.0.5/24", "192.0.2.12", "zz"),
    ]
    driver.update(snapshot(NETS, [local("web", "10.1.0.1/24")], remotes))
    await driver.attach(local("web", "10.1.0.1/24"))
    assert entries(mem) == EXPECTED


async def test_fdb_lists_what_the_datapath_holds(autojump_clock: object) -> None:
    driver, mem = make()
    nets = {"ovnet": (network(flood="true"), 4097)}
    driver.update(snapshot(nets, [local("web", "10.1.0.1/24")], base().remote))
    assert await driver.fdb("ovnet") == []  # nothing programmed yet
    await driver.attach(local("web", "10.1.0.1/24"))
    mem.sandboxes[SB].neighbours["10.1.0.9"] = "02:00:00:00:00:09"  # drift shows as it is
    rows = await driver.fdb("ovnet")
    assert rows == [
        {"mac": "00:00:00:00:00:00", "vtep": "192.0.2.12", "ip": ""},
        {"mac": "00:00:00:00:00:00", "vtep": "192.0.2.13", "ip": ""},
        {"mac": "02:42:0a:01:00:02", "vtep": "192.0.2.12", "ip": "10.1.0.2"},
        {"mac": "02:42:0a:01:00:03", "vtep": "192.0.2.13", "ip": "10.1.0.3"},
        {"mac": "02:00:00:00:00:09", "vtep": "", "ip": "10.1.0.9"},
    ]
    assert await driver.fdb("nope") == []


async def test_close_stops_run_and_later_updates_are_ignored(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(base())
        await until(lambda: driver.stats["reconciles"] == 1)
        await driver.close()
    driver.update(snapshot({}))
    assert SB in mem.sandboxes  # closing leaves the kernel as it is


async def test_worker_threads_on_the_real_clock() -> None:
    driver, mem = make(threads=True, debounce=0.01, reconcile_interval=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        web = local("web", "10.1.0.1/24")
        driver.update(snapshot(NETS, [web], base().remote))
        await driver.attach(web)
        mem.sandboxes[SB].fdb.clear()
        with trio.fail_after(10):
            await until(lambda: entries(mem) == EXPECTED)
        assert len(await driver.fdb("ovnet")) == 2
        await driver.close()


async def test_removals_wait_for_the_startup_grace(autojump_clock: object) -> None:
    """A restarted agent's first snapshot lists no remote endpoints yet: nothing is torn down
    before the grace ends, but what is missing is added at once."""
    driver, mem = make(startup_grace=5.0)
    old = make()[0]
    old.datapath = mem
    old.update(base())
    await old.attach(local("web", "10.1.0.1/24"))  # the earlier run's state
    mem.sandboxes[SB].fdb["02:42:0a:01:00:09"] = ["192.0.2.19"]  # stale: that endpoint is gone
    assert mem.apply(_leftover_ops()).ok  # and a stale sandbox
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        t0 = trio.current_time()
        driver.update(snapshot(NETS, [local("web", "10.1.0.1/24")]))  # tables not synced yet
        await until(lambda: driver.stats["reconciles"] == 1)
        assert entries(mem)[0] >= EXPECTED[0] and sandbox_name(TAG, 5000) in mem.sandboxes
        assert driver.stats["deletes_deferred"] == 3 + 2 + 1  # 3 fdb entries, 2 neighbours, 1 sandbox
        driver.update(snapshot(NETS, [local("web", "10.1.0.1/24")], [base().remote[0]]))  # synced
        await until(lambda: driver.stats["reconciles"] == 2)
        await until(lambda: sandbox_name(TAG, 5000) not in mem.sandboxes)
        assert trio.current_time() - t0 >= 5.0
        assert entries(mem) == ({("02:42:0a:01:00:02", "192.0.2.12")}, {"10.1.0.2": "02:42:0a:01:00:02"})
        nursery.cancel_scope.cancel()


async def test_close_abandons_a_call_stuck_in_the_kernel_and_makes_no_other() -> None:
    """A reconcile whose thread never returns (a netlink call into a dying namespace): a
    cancelled caller alone does not abandon it, close() does after its grace, and every
    datapath call after that is refused. Real threads, real clock; the bounds are generous."""
    stuck, release = threading.Event(), threading.Event()
    mem = MemoryDatapath(TAG)

    class Stuck(MemoryDatapath):
        def dump(self, sandboxes: Collection[str] | None = None) -> ActualState:
            stuck.set()
            release.wait()
            return mem.dump(sandboxes)

    driver = DatapathDriver(TAG, VTEP, datapath=Stuck(TAG), debounce=0.0, startup_grace=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        try:
            driver.update(base())
            await trio.to_thread.run_sync(stuck.wait, 30.0)
            with trio.move_on_after(0.2) as waited:  # other callers wait behind it
                await driver.fdb("ovnet")
            assert waited.cancelled_caught and driver.stats["abandoned"] == 0
            with trio.fail_after(30):
                await driver.close(grace=0.2)
            assert driver.stats["abandoned"] == 1
            with pytest.raises(DatapathError, match="closed"):
                await driver.attach(local("web", "10.1.0.1/24"))
        finally:
            release.set()  # the abandoned thread ends (before the nursery waits for run())
        nursery.cancel_scope.cancel()
