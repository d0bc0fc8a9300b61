"""The datapath driver with a load balancer: in-memory datapath and load balancer, trio's
mock clock (no kernel, no wall time)."""

from __future__ import annotations

import errno
from collections.abc import Callable

import trio

from swimnet.datapath import MemoryDatapath
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.lb import MemoryLoadBalancer, lb_diff, rulesets, table_for
from swimnet.overlay import EndpointRecord, NetworkRecord, mac_from_ip
from swimnet.overlay.snapshot import LocalEndpointSpec, OverlaySnapshot, ServiceSpec

TAG = "n1"
NET = NetworkRecord(name="ovnet", subnet="10.1.0.0/24")


def make(**kw: object) -> tuple[DatapathDriver, MemoryLoadBalancer]:
    lb = MemoryLoadBalancer()
    options: dict[str, object] = {"debounce": 0.1, "startup_grace": 0.0, "threads": False, **kw}
    driver = DatapathDriver(TAG, "192.0.2.11", datapath=MemoryDatapath(TAG), lb=lb, **options)  # type: ignore[arg-type]
    return driver, lb


def web(*backends: str) -> ServiceSpec:
    return ServiceSpec("ovnet", "web", "10.1.0.100", "vip", (("tcp", 80, 8080),), backends)


def snap(*services: ServiceSpec, containers: tuple[str, ...] = ("c1",)) -> OverlaySnapshot:
    local = tuple(
        LocalEndpointSpec(f"ovnet-{c}", "ovnet", c, f"10.1.0.{i}/24", mac_from_ip(f"10.1.0.{i}"), netns=c)
        for i, c in enumerate(containers, start=1)
    )
    remote = (
        ("ovnet", "ovnet-r", EndpointRecord("r", "10.1.0.9/24", mac_from_ip("10.1.0.9"), "192.0.2.12")),
    )
    return OverlaySnapshot({"ovnet": (NET, 4097)}, local, remote, services)


def holds(lb: MemoryLoadBalancer, ref: str, *services: ServiceSpec) -> bool:
    want = rulesets(services, [("ovnet", ref)])[ref]
    return lb_diff(table_for(want), lb.dump(ref)) == ()


async def until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_services_reach_every_attached_container_and_follow_backend_changes(
    autojump_clock: object,
) -> None:
    driver, lb = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snap(web("10.1.0.2", "10.1.0.9"), containers=("c1", "c2")))
        await until(lambda: driver.stats["reconciles"] == 1)
        assert holds(lb, "c1", web("10.1.0.2", "10.1.0.9")) and holds(lb, "c2", web("10.1.0.2", "10.1.0.9"))
        assert driver.stats["lb_nft_scripts"] == 2 and driver.stats["lb_errors"] == 0
        driver.update(snap(web("10.1.0.9"), containers=("c1", "c2")))  # one backend left
        await until(lambda: driver.stats["reconciles"] == 2)
        assert holds(lb, "c1", web("10.1.0.9")) and driver.stats["lb_netlink_commits"] == 2
        driver.update(snap(containers=("c1",)))  # the service is gone, c2 detached
        await until(lambda: driver.stats["reconciles"] == 3)
        assert lb.tables == {} and lb.known == set()
        nursery.cancel_scope.cancel()


async def test_drift_is_repaired_by_the_periodic_reconcile(autojump_clock: object) -> None:
    driver, lb = make(reconcile_interval=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snap(web("10.1.0.2")))
        await until(lambda: driver.stats["reconciles"] == 1)
        lb.tables["c1"].rules["nat-output"] = []  # deleted by hand
        await until(lambda: driver.stats["reconciles"] == 2)
        assert holds(lb, "c1", web("10.1.0.2"))
        nursery.cancel_scope.cancel()


async def test_the_startup_grace_leaves_existing_tables_alone(autojump_clock: object) -> None:
    driver, lb = make(startup_grace=5.0)
    lb.reconcile(rulesets([web("10.1.0.2", "10.1.0.9")], [("ovnet", "c1")]))  # a previous run's table
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snap(containers=("c1", "c2")))  # first snapshot: services not synced yet
        await until(lambda: driver.stats["reconciles"] == 1)
        assert holds(lb, "c1", web("10.1.0.2", "10.1.0.9")) and driver.stats["lb_deferred"] == 1
        await until(lambda: driver.stats["reconciles"] == 2)  # at the end of the grace
        assert trio.current_time() >= 5.0 and "c1" not in lb.tables
        nursery.cancel_scope.cancel()


async def test_a_failing_namespace_is_retried_soon_and_a_gone_one_is_no_error(autojump_clock: object) -> None:
    driver, lb = make(reconcile_interval=30.0)
    lb.gone.add("c2")
    lb.fail(lambda ref, plan: ref == "c1" and driver.stats["lb_errors"] < 2, errno.ENOBUFS)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snap(web("10.1.0.2"), containers=("c1", "c2")))
        await until(lambda: holds(lb, "c1", web("10.1.0.2")))
        assert trio.current_time() < 5.0  # backoff 0.5 s, 1 s: not the 30 s interval
        assert driver.stats["lb_errors"] == 2 and driver.stats["errors"] == 2 and driver.stats["lb_gone"] >= 3
        nursery.cancel_scope.cancel()
