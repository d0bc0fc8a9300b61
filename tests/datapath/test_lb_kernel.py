"""The Linux load balancer against the real kernel: a client and three backends on a bridge.

Every test builds its own lab (see lb_lab) and removes every namespace it made, also on
failure. The client's LB rules are programmed by LinuxLoadBalancer from a desired state;
traffic is TCP/UDP between sockets created inside the lab's namespaces.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
import trio
from lb_lab import TAG, VIP, Lab, lab, nft

from swimnet.datapath import MemoryDatapath
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.lb import Ruleset, lb_diff, rulesets, table_for
from swimnet.datapath.lb.libnft import problem as nft_problem
from swimnet.datapath.lb.linux import LinuxLoadBalancer
from swimnet.datapath.lb.ops import Conflict
from swimnet.datapath.netns import kernel_support_problem, path_of
from swimnet.overlay import NetworkRecord, mac_from_ip
from swimnet.overlay.snapshot import LocalEndpointSpec, OverlaySnapshot, ServiceSpec


def _probe() -> str | None:
    reason = kernel_support_problem(f"{TAG}{os.getpid()}xprobe")
    if reason is None and shutil.which("nft") is None:
        reason = "the nft binary is missing (apt-get install nftables)"
    return reason or nft_problem()


_reason = _probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

PORTS = (("tcp", 80, 8080), ("udp", 53, 5353))


def web(*backends: str, vip: str = VIP, mode: str = "vip", name: str = "web") -> ServiceSpec:
    return ServiceSpec("net", name, vip if mode == "vip" else None, mode, PORTS, backends)


def desired(the_lab: Lab, *services: ServiceSpec) -> dict[str | int, Ruleset]:
    return rulesets(services, [("net", the_lab.client)])


def reconcile(lb: LinuxLoadBalancer, want: dict[str | int, Ruleset]) -> str:
    result = lb.reconcile(want)
    assert result.ok, result.errors
    return result.outcomes[0].path


def converged(lb: LinuxLoadBalancer, the_lab: Lab, want: dict[str | int, Ruleset]) -> bool:
    return lb_diff(table_for(want[the_lab.client]), lb.dump(the_lab.client)) == ()


@pytest.fixture
def the_lab() -> object:
    with lab() as made:
        yield made


def test_connections_to_the_vip_spread_over_every_backend(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    want = desired(the_lab, web(*the_lab.backend_ips))
    assert reconcile(lb, want) == "nft"
    assert converged(lb, the_lab, want) and lb.reconcile(want).changed == 0
    seen = the_lab.connect_many(300)
    assert sum(seen.values()) == 300 and set(seen) == {"b1", "b2", "b3"}, seen
    assert min(seen.values()) >= 60, seen  # >= 20% each (expected 100; 60 is ~5 sigma away)
    answers = the_lab.udp_many(30)
    assert sum(answers.values()) == 30 and set(answers) <= {"b1", "b2", "b3"}, answers


def test_a_vip_without_backends_or_on_another_port_refuses_at_once(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    reconcile(lb, desired(the_lab, web(), web(the_lab.backend_ips[0], vip="10.1.0.101", name="api")))
    started = time.monotonic()
    assert the_lab.connect_many(3) == {"!ConnectionRefusedError": 3}
    assert the_lab.connect_many(3, port=81, vip="10.1.0.101") == {"!ConnectionRefusedError": 3}
    assert time.monotonic() - started < 2.5  # refused, not timed out (3 s each)
    assert the_lab.connect_many(3, vip="10.1.0.101") == {"b1": 3}


def test_a_removed_backend_gets_no_new_connection_and_keeps_its_established_one(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    reconcile(lb, desired(the_lab, web(*the_lab.backend_ips)))
    kept = []
    for _ in range(60):  # until one connection lands on b3 (p = 1/3 each)
        conn, name = the_lab.open_connection()
        if name == "b3":
            break
        conn.close()
    else:
        pytest.fail("no connection reached b3 in 60 attempts")
    kept.append(conn)
    try:
        assert reconcile(lb, desired(the_lab, web(*the_lab.backend_ips[:2]))) == "netlink"
        seen = the_lab.connect_many(60)
        assert set(seen) == {"b1", "b2"} and sum(seen.values()) == 60, seen
        conn.sendall(b"still there?\n")
        assert conn.recv(64) == b"still there?\n"  # the established connection kept b3
    finally:
        for c in kept:
            c.close()


def test_updates_never_drop_a_connection_attempt(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    b1, b2, b3 = the_lab.backend_ips
    shapes = [(b1, b2), (b2, b3), (b1, b2, b3), (b3,), (b1, b3)]
    reconcile(lb, desired(the_lab, web(*shapes[-1])))
    stop = threading.Event()
    seen: collections.Counter[str] = collections.Counter()

    def hammer() -> None:  # connects all along, while the backends change under it
        while not stop.is_set() and sum(seen.values()) < 5000:
            seen.update(the_lab.connect_many(10))

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    try:
        paths = {reconcile(lb, desired(the_lab, web(*shapes[i % len(shapes)]))) for i in range(40)}
        time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    failures = {k: v for k, v in seen.items() if k.startswith("!")}
    assert not failures and sum(seen.values()) >= 10, seen
    assert paths == {"netlink"}  # backend changes are element transactions


def test_hand_deleted_rules_and_elements_come_back(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    want = desired(the_lab, web(*the_lab.backend_ips))
    reconcile(lb, want)
    listing = json.loads(nft(the_lab.client, "-a", "-j", "list", "chain", "ip", "swimnet", "nat-output"))
    handle = next(item["rule"]["handle"] for item in listing["nftables"] if "rule" in item)
    nft(the_lab.client, "delete", "rule", "ip", "swimnet", "nat-output", "handle", str(handle))
    nft(the_lab.client, "delete", "element", "ip", "swimnet", "backend-0", "{ 10.1.0.100 . tcp . 80 }")
    nft(the_lab.client, "add", "element", "ip", "swimnet", "vips", "{ 10.1.0.199 }")
    assert the_lab.connect_many(2) == {"!ConnectionRefusedError": 2}  # no DNAT: the VIP is refused
    assert not converged(lb, the_lab, want)
    assert reconcile(lb, want) == "nft"  # a rule to restore: libnftables, one script
    assert converged(lb, the_lab, want)
    seen = the_lab.connect_many(30)
    assert sum(seen.values()) == 30 and set(seen) <= {"b1", "b2", "b3"}, seen
    nft(the_lab.client, "flush", "chain", "ip", "swimnet", "slot-1")
    nft(the_lab.client, "add", "rule", "ip", "swimnet", "pick-3", "counter")
    assert reconcile(lb, want) == "nft" and converged(lb, the_lab, want)
    nft(the_lab.client, "delete", "table", "ip", "swimnet")
    assert reconcile(lb, want) == "nft" and converged(lb, the_lab, want)


def test_other_tables_are_left_alone(the_lab: Lab) -> None:
    other = (
        "table inet other {\n"
        "  set peers { type ipv4_addr; elements = { 10.1.0.7, 10.1.0.8 } }\n"
        "  chain out { type filter hook output priority 10; policy accept;\n"
        "    ip daddr @peers counter accept\n"
        "  }\n"
        "}\n"
        "table ip swimnetx {\n  chain c { type nat hook output priority 5; }\n}\n"
    )
    nft(the_lab.client, "-f", "-", script=other)
    before = nft(the_lab.client, "-s", "list", "ruleset")
    lb = LinuxLoadBalancer()
    reconcile(lb, desired(the_lab, web(*the_lab.backend_ips)))
    reconcile(lb, desired(the_lab, web(the_lab.backend_ips[0])))
    assert "table ip swimnet" in nft(the_lab.client, "list", "tables").splitlines()
    assert reconcile(lb, {the_lab.client: Ruleset()}) == "nft"  # nothing wanted: our table goes
    assert nft(the_lab.client, "-s", "list", "ruleset") == before


def test_a_dnsrr_service_installs_nothing(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    result = lb.reconcile(desired(the_lab, web(*the_lab.backend_ips, mode="dnsrr")))
    assert result.ok and result.outcomes[0].commands == 0
    assert "swimnet" not in nft(the_lab.client, "list", "tables")


def test_a_restarted_agent_removes_only_what_it_no_longer_wants(the_lab: Lab) -> None:
    b1, b2, b3 = the_lab.backend_ips
    reconcile(LinuxLoadBalancer(), desired(the_lab, web(b1, b2), web(b3, vip="10.1.0.101", name="old")))
    restarted = LinuxLoadBalancer()  # knows nothing: everything comes from the kernel
    want = desired(the_lab, web(b1, b2))
    assert reconcile(restarted, want) == "netlink" and converged(restarted, the_lab, want)
    gone = the_lab.connect_many(1, vip="10.1.0.101")  # no VIP any more: nobody answers
    assert all(name.startswith("!") for name in gone), gone
    assert set(the_lab.connect_many(20)) <= {"b1", "b2"}


def test_namespaces_by_path_and_vanished_ones(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    ref = path_of(the_lab.client)
    want = rulesets([web(*the_lab.backend_ips)], [("net", ref), ("net", f"{the_lab.prefix}nosuch")])
    result = lb.reconcile(want)
    assert result.ok and [o.gone for o in result.outcomes] == [False, True]
    assert lb.known == {ref}
    assert set(the_lab.connect_many(6)) <= {"b1", "b2", "b3"}


def test_a_plan_made_before_a_hand_edit_is_refused_and_made_again(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    b1, b2, b3 = the_lab.backend_ips
    reconcile(lb, desired(the_lab, web(b1, b2, b3)))
    stale = lb.dump(the_lab.client)
    nft(the_lab.client, "add", "element", "ip", "swimnet", "vips", "{ 10.1.0.199 }")  # someone, meanwhile
    want = desired(the_lab, web(b1, b2))
    with pytest.raises(Conflict):
        lb.apply(the_lab.client, lb_diff(table_for(want[the_lab.client]), stale))
    assert "10.1.0.199" in nft(the_lab.client, "list", "set", "ip", "swimnet", "vips")  # nothing happened
    assert reconcile(lb, want) == "netlink" and converged(lb, the_lab, want)
    assert "10.1.0.199" not in nft(the_lab.client, "list", "set", "ip", "swimnet", "vips")


async def test_the_driver_keeps_a_containers_vip_rules_equal_to_the_snapshot(the_lab: Lab) -> None:
    net = NetworkRecord(name="net", subnet="10.1.0.0/24")
    client = LocalEndpointSpec(
        "net-c", "net", "c", "10.1.0.1/24", mac_from_ip("10.1.0.1"), netns=the_lab.client
    )

    def snap(*backends: str) -> OverlaySnapshot:
        return OverlaySnapshot({"net": (net, 4097)}, (client,), (), (web(*backends),))

    lb = LinuxLoadBalancer()
    driver = DatapathDriver(
        "lbd", "192.0.2.11", datapath=MemoryDatapath("lbd"), lb=lb, debounce=0.05, startup_grace=0.0
    )
    b1, b2, b3 = the_lab.backend_ips
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        driver.update(snap(b1, b2, b3))
        with trio.fail_after(30):
            while driver.stats["lb_reconciles"] < 1:
                await trio.sleep(0.02)
        seen = await trio.to_thread.run_sync(the_lab.connect_many, 30)
        assert set(seen) == {"b1", "b2", "b3"}, seen
        driver.update(snap(b3))
        with trio.fail_after(30):
            while driver.stats["lb_netlink_commits"] < 1:
                await trio.sleep(0.02)
        assert await trio.to_thread.run_sync(the_lab.connect_many, 10) == {"b3": 10}
        assert driver.stats["lb_errors"] == 0
        nursery.cancel_scope.cancel()
    lb.close()


def test_a_vip_outside_the_subnet_needs_a_route_and_a_default_route_does(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    reconcile(lb, desired(the_lab, web(*the_lab.backend_ips, vip="10.7.0.100")))
    assert the_lab.connect_many(1, vip="10.7.0.100") == {"!OSError": 1}  # ENETUNREACH: no rule is consulted
    subprocess.run(
        ["ip", "-n", the_lab.client, "route", "add", "default", "via", "10.1.0.254"], check=True, timeout=10
    )
    seen = the_lab.connect_many(9, vip="10.7.0.100")  # the gateway need not even exist
    assert sum(seen.values()) == 9 and set(seen) <= {"b1", "b2", "b3"}, seen


def test_scaling_past_the_standing_pick_chains_and_back(the_lab: Lab) -> None:
    lb = LinuxLoadBalancer()
    many = desired(the_lab, web(*the_lab.backend_ips, *(f"10.1.0.{i}" for i in range(50, 60))))
    reconcile(lb, desired(the_lab, web(*the_lab.backend_ips)))
    assert reconcile(lb, many) == "nft"  # new chains pick-13, slot-8..12, maps: one script
    assert converged(lb, the_lab, many) and lb.reconcile(many).changed == 0
    assert "pick-13" in nft(the_lab.client, "list", "chains", "ip")
    few = desired(the_lab, web(*the_lab.backend_ips))
    assert reconcile(lb, few) == "nft" and converged(lb, the_lab, few)
    listed = nft(the_lab.client, "list", "table", "ip", "swimnet")
    assert "pick-13" not in listed and "backend-8" not in listed and "slot-12" not in listed
    assert set(the_lab.connect_many(12)) <= {"b1", "b2", "b3"}
