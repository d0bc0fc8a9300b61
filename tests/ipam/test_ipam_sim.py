"""IPAM scenarios on a simulated cluster of real engines (`benchmarks.ipam_sim.IpamCluster`):
requests at one instant, a partition, a crash (reserved, then reaped), a graceful leave, a
restart, a pinned address inside another member's block, a full network. Every message
names the simulator seed."""

from __future__ import annotations

import ipaddress
from functools import partial

from benchmarks.ipam_sim import ENDPOINTS, NETWORK, IpamCluster, Request
from swimnet.engine import Engine
from swimnet.ipam import AddressTaken, NoFreeAddress
from swimnet.sim import Simulation, Uniform
from swimnet.tables import TablesConfig


def cluster(
    n: int, subnet: str = "10.1.0.0/24", seed: int = 1, reap: float | None = None
) -> tuple[Simulation, IpamCluster]:
    factory = None if reap is None else partial(Engine, tables_config=TablesConfig(reap_interval=reap))
    sim = Simulation(seed=seed, latency=Uniform(0.0002, 0.002), engine_factory=factory)
    names = sim.add_nodes(n)
    sim.join_all(names[0])
    assert sim.run_until(sim.converged, 30.0), sim.describe()
    gateway = str(ipaddress.IPv4Network(subnet).network_address + 1)
    c = IpamCluster(sim, subnet, gateway, reap_interval=reap or 1800.0)
    for i, name in enumerate(names):
        c.start(name, bootstrap=i == 0)
    sim.run_for(2.0)
    return sim, c


def settle(sim: Simulation, c: IpamCluster, timeout: float = 30.0) -> None:
    assert sim.run_until(lambda: all(r.outcome != "waiting" for r in c.requests), timeout), sim.describe()


def granted(requests: list[Request]) -> list[str]:
    return [str(r.address) for r in requests if r.outcome == "granted"]


def test_requests_at_one_instant_get_distinct_addresses() -> None:
    sim, c = cluster(5)
    requests = [c.request(name) for name in sim.names for _ in range(8)]
    settle(sim, c)
    addresses = granted(requests)
    assert len(addresses) == 40 == len(set(addresses)), sim.describe()
    assert not c.duplicates()
    gateway = str(c.pool.subnet.network_address + 1)
    assert gateway not in addresses and str(c.pool.subnet.broadcast_address) not in addresses
    sim.run_for(5.0)
    for name in sim.names:  # every member's table shows the 40 endpoints, one address each
        live = sim.engine(name).tables.live_entries(NETWORK)
        shown = sorted(v.decode() for (t, _), (v, _) in live.items() if t == ENDPOINTS)
        assert shown == sorted(addresses), sim.describe()


def test_partition_serves_owned_blocks_and_waits_for_new_ones() -> None:
    sim, c = cluster(4, subnet="10.1.0.0/22")  # blocks of 16
    first = [c.request(name) for name in sim.names]
    settle(sim, c)
    assert all(r.outcome == "granted" for r in first)
    sim.partition([["n0", "n1"], ["n2", "n3"]])
    sim.run_for(15.0)  # each side sees the other failed
    # the spare addresses of the blocks each member holds are served at once, on both sides
    # (a first claim is one block: at least 13 addresses are left after the first one)
    quick = [c.request(name) for name in sim.names for _ in range(10)]
    assert all(r.outcome == "granted" and r.done == r.issued for r in quick), sim.describe()
    # more than a member holds: its new claim needs the other side's votes
    many = [c.request("n0", timeout=120.0) for _ in range(40)]
    sim.run_for(8.0)
    assert any(r.outcome == "waiting" for r in many), sim.describe()
    waiting = next(r for r in many if r.outcome == "waiting")
    assert waiting.reasons["waiting for votes on a claim"] > 0
    sim.heal()
    settle(sim, c, timeout=120.0)
    assert all(r.outcome == "granted" for r in many), (sim.describe(), [r.outcome for r in many])
    assert not c.duplicates(), sim.describe()


def test_a_crashed_members_addresses_stay_reserved_until_it_is_reaped() -> None:
    sim, c = cluster(3, subnet="10.1.0.0/28", reap=60.0)  # 13 usable addresses
    held = [c.request("n2") for _ in range(6)]
    settle(sim, c)
    assert all(r.outcome == "granted" for r in held)
    c.crash("n2")
    sim.run_for(15.0)  # detected failed: its entries hidden
    others = [c.request("n0") for _ in range(10)]
    sim.run_for(20.0)
    got = set(granted(others))
    assert not got & set(granted(held)), sim.describe()  # reserved while hidden
    assert any(r.outcome != "granted" for r in others)
    # reaped (60 s after the failure): its blocks and endpoints go, its addresses are reused
    sim.run_for(60.0)
    later = [c.request("n1") for _ in range(6)]
    settle(sim, c, timeout=40.0)
    assert set(granted(later)) & set(granted(held)), (sim.describe(), granted(later))
    live = {a for n, a in c.live_allocations().values() if n != "n2"}
    assert len(live) == len([a for n, a in c.live_allocations().values() if n != "n2"])


def test_a_graceful_leave_gives_its_blocks_back_after_the_leave_grace() -> None:
    """A leaver's entries stay hidden for `left_grace_interval` (a spoofed leave can still be
    refuted), then go: its blocks are free again."""
    sim, c = cluster(4, subnet="10.1.0.0/28")
    held = [c.request("n3") for _ in range(8)]
    settle(sim, c)
    assert all(r.outcome == "granted" for r in held)
    c.leave("n3")
    sim.run_for(TablesConfig().left_grace_interval + 1.0)
    later = [c.request("n0") for _ in range(12)]
    settle(sim, c)
    assert len(granted(later)) == 12 and set(granted(later)) & set(granted(held)), sim.describe()
    assert not c.duplicates()


def test_a_restarted_member_keeps_its_endpoints_and_blocks() -> None:
    sim, c = cluster(4)
    before = [c.request("n1") for _ in range(5)]
    settle(sim, c)
    c.crash("n1")
    sim.run_for(20.0)
    c.restart("n1")
    sim.run_for(5.0)
    after = [c.request(name) for name in sim.names for _ in range(5)]
    settle(sim, c)
    assert all(r.outcome == "granted" for r in before + after)
    assert not c.duplicates(), sim.describe()
    first = next(r for r in after if r.node == "n1")
    assert first.done == first.issued, sim.describe()  # from its restored blocks, at once


def test_pinned_address_in_another_members_block() -> None:
    sim, c = cluster(3)
    first = c.request("n0")
    settle(sim, c)
    neighbour = str(first.address + 1)  # free, inside n0's block
    pinned = c.request("n1", neighbour)
    settle(sim, c)
    assert pinned.outcome == "granted" and str(pinned.address) == neighbour, sim.describe()
    rest = [c.request("n0") for _ in range(12)]
    settle(sim, c)
    assert neighbour not in granted(rest)
    again = c.request("n2", neighbour)
    settle(sim, c)
    assert again.outcome == "refused" and isinstance(again.error, AddressTaken), again
    assert again.error.field == "ip" and "n1" in str(again.error)


def test_a_full_network_refuses_cleanly() -> None:
    sim, c = cluster(3, subnet="10.1.0.0/28")  # 16 addresses: 13 usable
    requests = [c.request(name) for name in sim.names for _ in range(6)]
    settle(sim, c, timeout=60.0)
    assert len(granted(requests)) == 13, (sim.describe(), [r.outcome for r in requests])
    refused = [r for r in requests if r.outcome != "granted"]
    assert all(r.outcome == "refused" and isinstance(r.error, NoFreeAddress) for r in refused), refused
    assert str(refused[0].error) == "ip: network net has no free address"
    assert not c.duplicates()
