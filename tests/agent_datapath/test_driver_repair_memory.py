"""DatapathDriver repairs changes made by hand as they happen, over the in-memory datapath.

The same driver code as over the kernel: the in-memory datapath's watch reports what is
edited inside `by_hand()` (as the kernel notifies an administrator's `bridge fdb del`) and
what its own applies change. The reconcile interval is an hour of trio's mock clock, and
every wait is bounded well below it, so only the watch can repair.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from overlay_fixtures import local, network, remote, snapshot

from swimnet.datapath import MemoryDatapath
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.names import sandbox_name, veth_name

TAG = "n1"
VTEP = "192.0.2.11"
HOUR = 3600.0
NETS = {"ovnet": (network(), 4097)}
SB = sandbox_name(TAG, 4097)
WEB = local("web", "10.1.0.1/24")
REMOTES = [remote("r2", "10.1.0.2/24", "192.0.2.12"), remote("r3", "10.1.0.3/24", "192.0.2.13")]
EXPECTED = (
    {("02:42:0a:01:00:02", "192.0.2.12"), ("02:42:0a:01:00:03", "192.0.2.13")},
    {"10.1.0.2": "02:42:0a:01:00:02", "10.1.0.3": "02:42:0a:01:00:03"},
)


def make(**kw: object) -> tuple[DatapathDriver, MemoryDatapath]:
    mem = MemoryDatapath(TAG)
    options: dict[str, object] = {
        "reconcile_interval": HOUR,
        "debounce": 0.1,
        "startup_grace": 0.0,
        "threads": False,
        **kw,
    }
    return DatapathDriver(TAG, VTEP, datapath=mem, **options), mem  # type: ignore[arg-type]


def entries(mem: MemoryDatapath, netns: str = SB) -> tuple[set[tuple[str, str]], dict[str, str]]:
    box = mem.sandboxes[netns]
    return {(m, v) for m, vs in box.fdb.items() for v in vs}, dict(box.neighbours)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):  # mock seconds: far below the reconcile interval
        while not predicate():
            await trio.sleep(0.01)


async def started(driver: DatapathDriver, nursery: trio.Nursery) -> None:
    await nursery.start(driver.run)
    driver.update(snapshot(NETS, [WEB], REMOTES))
    await driver.attach(WEB)
    await trio.sleep(1)  # the update's debounced reconcile is done too


async def test_entries_deleted_by_hand_are_repaired_by_the_watch(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await started(driver, nursery)
        assert entries(mem) == EXPECTED
        with mem.by_hand() as boxes:  # bridge fdb del ... self; ip neigh del ...
            del boxes[SB].fdb["02:42:0a:01:00:02"]
            del boxes[SB].neighbours["10.1.0.3"]
        await until(lambda: entries(mem) == EXPECTED)
        assert driver.stats["event_reconciles"] == 1 and driver.stats["repairs_from_events"] == 1
        assert driver.stats["events_drift"] == 2
        with mem.by_hand() as boxes:  # written by hand: an unknown MAC, a neighbour rewritten
            boxes[SB].fdb["02:00:00:00:00:99"] = ["192.0.2.99"]
            boxes[SB].neighbours["10.1.0.2"] = "02:00:00:00:00:99"
        await until(lambda: entries(mem) == EXPECTED)
        assert driver.stats["repairs_from_events"] == 2
        with mem.by_hand() as boxes:  # rewritten to what is desired anyway: nothing to repair
            boxes[SB].neighbours["10.1.0.2"] = "02:42:0a:01:00:02"
            boxes[SB].fdb["02:42:0a:01:00:02"] = ["192.0.2.12"]
        await trio.sleep(5)
        assert driver.stats["event_reconciles"] == 2
        assert driver.stats["errors"] == 0
        nursery.cancel_scope.cancel()


async def test_own_writes_are_not_repairs(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await started(driver, nursery)
        for i in range(5):  # endpoints come and go: the driver writes and deletes entries
            more = [remote(f"x{j}", f"10.1.0.{100 + j}/24", "192.0.2.12") for j in range(i)]
            driver.update(snapshot(NETS, [WEB], REMOTES + more))
            await trio.sleep(1)
        driver.update(snapshot(NETS, [WEB], REMOTES))
        await until(lambda: entries(mem) == EXPECTED)
        await driver.detach(WEB)
        await driver.attach(WEB)
        await trio.sleep(5)
        assert driver.stats["events_own"] >= 10  # seen, and dropped unread
        assert driver.stats["events"] == 0 and driver.stats["event_reconciles"] == 0
        nursery.cancel_scope.cancel()


async def test_a_burst_of_changes_costs_one_reconcile(autojump_clock: object) -> None:
    driver, mem = make()
    more = [remote(f"x{j}", f"10.1.0.{100 + j}/24", "192.0.2.12") for j in range(50)]
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snapshot(NETS, [WEB], REMOTES + more))
        await driver.attach(WEB)
        await trio.sleep(1)
        before = driver.stats["reconciles"]
        for ip in sorted(mem.sandboxes[SB].neighbours):  # ip neigh flush, one by one
            with mem.by_hand() as boxes:
                del boxes[SB].neighbours[ip]
            await trio.sleep(0.001)
        await until(lambda: len(mem.sandboxes[SB].neighbours) == 52)
        await trio.sleep(5)
        assert driver.stats["reconciles"] == before + 1 == driver.stats["event_reconciles"] + before
        assert driver.stats["events_drift"] == 52
        nursery.cancel_scope.cancel()


async def test_a_vxlan_device_deleted_by_hand_is_rebuilt(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await started(driver, nursery)
        with mem.by_hand() as boxes:  # ip link del vxlan0: its entries go with it
            box = boxes[SB]
            box.vxlan = None
            box.fdb.clear()
            box.neighbours.clear()
        await until(lambda: mem.sandboxes[SB].vxlan is not None and entries(mem) == EXPECTED)
        assert mem.sandboxes[SB].vxlan.master == "br0"  # type: ignore[union-attr]
        assert driver.stats["repairs_from_events"] == 1
        nursery.cancel_scope.cancel()


async def test_a_sandbox_deleted_by_hand_comes_back_with_its_container(autojump_clock: object) -> None:
    driver, mem = make()
    async with trio.open_nursery() as nursery:
        await started(driver, nursery)
        with mem.by_hand() as boxes:  # ip netns del
            del boxes[SB]
        await until(lambda: driver.stats["reattaches"] == 1)
        assert set(mem.sandboxes[SB].ports) == {veth_name("ovnet-web")}
        assert entries(mem) == EXPECTED
        nursery.cancel_scope.cancel()


async def test_a_change_repairs_its_own_sandbox_only(autojump_clock: object) -> None:
    driver, mem = make()
    nets = {**NETS, "blue": (network("blue", "10.2.0.0/24"), 4098)}
    blue = local("b", "10.2.0.1/24", network="blue", netns="c2")
    blue_remote = remote("b2", "10.2.0.2/24", "192.0.2.12", network="blue")
    sb_blue = sandbox_name(TAG, 4098)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snapshot(nets, [WEB, blue], [*REMOTES, blue_remote]))
        await until(lambda: sb_blue in mem.sandboxes and SB in mem.sandboxes)
        await until(lambda: driver.stats["reconciles"] >= 1)
        mem.sandboxes[sb_blue].neighbours.clear()  # unseen: outside by_hand()
        with mem.by_hand() as boxes:
            boxes[SB].fdb.clear()
        await until(lambda: entries(mem) == EXPECTED)
        assert mem.sandboxes[sb_blue].neighbours == {}  # left to the periodic pass
        with trio.fail_after(HOUR + 5):
            while not mem.sandboxes[sb_blue].neighbours:
                await trio.sleep(1)
        nursery.cancel_scope.cancel()


async def test_without_the_watch_the_periodic_pass_repairs(autojump_clock: object) -> None:
    driver, mem = make(watch=False)
    async with trio.open_nursery() as nursery:
        await started(driver, nursery)
        with mem.by_hand() as boxes:
            boxes[SB].fdb.clear()
        await trio.sleep(HOUR / 2)
        assert entries(mem) != EXPECTED and driver.stats["events"] == 0
        with trio.fail_after(HOUR):
            while entries(mem) != EXPECTED:
                await trio.sleep(10)
        nursery.cancel_scope.cancel()


async def test_the_watch_with_worker_threads_on_the_real_clock() -> None:
    driver, mem = make(threads=True, debounce=0.01)
    async with trio.open_nursery() as nursery:
        await started(driver, nursery)
        with mem.by_hand() as boxes:
            boxes[SB].fdb.clear()
        await until(lambda: entries(mem) == EXPECTED, timeout=20)
        assert driver.stats["repairs_from_events"] == 1
        await driver.close()
