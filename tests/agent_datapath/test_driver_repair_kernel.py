"""DatapathDriver repairs changes made by hand as they happen (netlink watch), over the kernel.

Two drivers on the lab's hosts 1 and 2, with a reconcile interval of an hour: only the
watch (swimnet.datapath.kwatch) can bring back what `bridge fdb del`, `ip neigh del`,
`ip link del` or `ip netns del` remove, so every wait below (bounded) would time out
without it. The lab (tests/datapath/datapath_lab.py) removes every namespace it made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trio
from datapath_lab import Lab, lab, probe, run, udp_exchange
from overlay_fixtures import LocalEndpointSpec, OverlaySnapshot, local, network, remote, snapshot

from swimnet.datapath import LinuxDatapath
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.names import sandbox_name

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

VNI = 4097
NETS = {"ovnet": (network(), VNI)}
HOUR = 3600.0
ROWS_H1 = [{"mac": "02:42:0a:01:00:02", "vtep": "192.0.2.12", "ip": "10.1.0.2"}]


def view(the_lab: Lab, host: int, eps: list[tuple[int, LocalEndpointSpec]]) -> OverlaySnapshot:
    mine = [ep for h, ep in eps if h == host]
    others = [remote(ep.name, ep.ip, the_lab.vteps[h - 1]) for h, ep in eps if h != host]
    return snapshot(NETS, mine, others)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"gave up waiting for {what}")


async def until_async(probe: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    with trio.move_on_after(timeout):
        while not await probe():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"gave up waiting for {what}")


async def reaches(the_lab: Lab, src: str, src_ip: str, dst: str, dst_ip: str) -> bool:
    reply = await trio.to_thread.run_sync(
        lambda: udp_exchange(f"{the_lab.prefix}{src}", src_ip, f"{the_lab.prefix}{dst}", dst_ip)
    )
    return reply is not None and reply.startswith(f"pong from {the_lab.prefix}{dst}".encode())


class Overlay:
    """Hosts 1 and 2 of a lab, a container on each, one driver per host."""

    def __init__(self, the_lab: Lab, nursery: trio.Nursery) -> None:
        self.lab = the_lab
        self.nursery = nursery
        self.eps = [
            (1, local("c1", "10.1.0.1/24", netns=the_lab.container("c1"))),
            (2, local("c2", "10.1.0.2/24", netns=the_lab.container("c2"))),
        ]
        self.drivers = []
        for host in (1, 2):
            name = the_lab.hosts[host - 1]
            dp = LinuxDatapath(name, host_netns=name)
            self.drivers.append(
                DatapathDriver(
                    name, the_lab.vteps[host - 1], datapath=dp,
                    reconcile_interval=HOUR, debounce=0.05, startup_grace=0.0,
                )
            )  # fmt: skip
        self.sandbox = sandbox_name(the_lab.hosts[0], VNI)

    async def start(self) -> None:
        for host, d in enumerate(self.drivers, start=1):
            await self.nursery.start(d.run)
            d.update(view(self.lab, host, self.eps))
        for host, ep in self.eps:
            await self.drivers[host - 1].attach(ep)
        assert await self.drivers[0].fdb("ovnet") == ROWS_H1
        assert await reaches(self.lab, "c1", "10.1.0.1", "c2", "10.1.0.2")

    async def fdb_is(self, rows: list[dict[str, str]]) -> bool:
        return await self.drivers[0].fdb("ovnet") == rows

    async def close(self) -> None:
        for d in self.drivers:
            assert d.stats["errors"] == 0, d.last_error
            await d.close()


async def overlay(the_lab: Lab, nursery: trio.Nursery) -> Overlay:
    ov = Overlay(the_lab, nursery)
    await ov.start()
    return ov


@pytest.fixture
async def ov() -> AsyncIterator[Overlay]:
    with lab(hosts=2) as the_lab:
        async with trio.open_nursery() as nursery:
            the_overlay = await overlay(the_lab, nursery)
            yield the_overlay
            await the_overlay.close()
            nursery.cancel_scope.cancel()


async def test_own_writes_trigger_no_repair(ov: Overlay) -> None:
    d1 = ov.drivers[0]
    extra = remote("c9", "10.1.0.9/24", ov.lab.vteps[1])
    d1.update(snapshot(NETS, [ov.eps[0][1]], [*view(ov.lab, 1, ov.eps).remote, extra]))
    await until(lambda: len(d1.desired().sandboxes[ov.sandbox].fdb) == 2, "the new plan")
    row9 = {"mac": "02:42:0a:01:00:09", "vtep": "192.0.2.12", "ip": "10.1.0.9"}
    await until_async(lambda: ov.fdb_is([*ROWS_H1, row9]), "the new entry")
    d1.update(view(ov.lab, 1, ov.eps))  # and gone again: the driver deletes it
    await until_async(lambda: ov.fdb_is(ROWS_H1), "the entry deleted")
    await trio.sleep(1.5)  # the kernel's late notifications (link states) have come by now
    assert d1.stats["events_own"] >= 4, d1.stats  # the watch saw the writes, and dropped them
    for d in ov.drivers:
        assert d.stats["event_reconciles"] == 0, d.stats
        assert d.stats["events_drift"] == 0, d.stats


async def test_entries_deleted_or_added_by_hand_are_repaired(ov: Overlay) -> None:
    d1 = ov.drivers[0]
    sb = ov.sandbox
    run("bridge", "-n", sb, "fdb", "del", "02:42:0a:01:00:02", "dev", "vxlan0", "self")
    await until_async(lambda: ov.fdb_is(ROWS_H1), "the FDB entry is back")
    run("ip", "-n", sb, "neigh", "del", "10.1.0.2", "dev", "vxlan0")
    await until_async(lambda: ov.fdb_is(ROWS_H1), "the neighbour entry is back")
    assert d1.stats["repairs_from_events"] >= 2
    rogue = ("02:00:00:00:00:99", "192.0.2.99")
    run("bridge", "-n", sb, "fdb", "append", rogue[0], "dev", "vxlan0", "dst", rogue[1], "self", "permanent")
    run(
        "ip",
        "-n",
        sb,
        "neigh",
        "replace",
        "10.1.0.2",
        "lladdr",
        rogue[0],
        "dev",
        "vxlan0",
        "nud",
        "permanent",
    )
    await until_async(lambda: ov.fdb_is(ROWS_H1), "the entries added by hand are gone")
    assert d1.stats["reconciles"] - d1.stats["event_reconciles"] <= 3  # no periodic pass ran
    assert await reaches(ov.lab, "c1", "10.1.0.1", "c2", "10.1.0.2")


async def test_a_vxlan_device_deleted_by_hand_is_rebuilt(ov: Overlay) -> None:
    d1 = ov.drivers[0]
    run("ip", "-n", ov.sandbox, "link", "del", "vxlan0")
    await until(lambda: d1.stats["repairs_from_events"] >= 1, "a repair")
    await until_async(lambda: ov.fdb_is(ROWS_H1), "the device and its entries are back")
    assert await reaches(ov.lab, "c1", "10.1.0.1", "c2", "10.1.0.2")
    # the rebuilt device is watched too (its ifindex is new)
    run("bridge", "-n", ov.sandbox, "fdb", "del", "02:42:0a:01:00:02", "dev", "vxlan0", "self")
    await until(lambda: d1.stats["repairs_from_events"] >= 2, "a second repair")
    await until_async(lambda: ov.fdb_is(ROWS_H1), "the FDB entry is back")


async def test_a_bridge_deleted_by_hand_is_rebuilt(ov: Overlay) -> None:
    run("ip", "-n", ov.sandbox, "link", "del", "br0")
    await until(lambda: ov.drivers[0].stats["repairs_from_events"] >= 1, "a repair")
    await until_async(lambda: reaches(ov.lab, "c1", "10.1.0.1", "c2", "10.1.0.2"), "c1 reaches c2 again")


async def test_a_sandbox_deleted_by_hand_comes_back_with_its_container(ov: Overlay) -> None:
    d1 = ov.drivers[0]
    run("ip", "netns", "del", ov.sandbox)
    await until(lambda: d1.stats["reattaches"] == 1, "the container plugged in again")
    assert d1.stats["repairs_from_events"] >= 1
    assert await reaches(ov.lab, "c1", "10.1.0.1", "c2", "10.1.0.2")
    assert await ov.fdb_is(ROWS_H1)
