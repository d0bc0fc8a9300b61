"""The Linux datapath against the real kernel: a 3-host VXLAN lab in network namespaces.

Every test builds its own lab (see datapath_lab) and removes every namespace it made, also
on failure. Traffic is UDP between sockets created inside the lab's container namespaces.
"""

from __future__ import annotations

import json
import os

import pytest
from datapath_lab import Lab, capture_vxlan, lab, probe, run, udp_exchange

from swimnet.datapath import (
    DesiredState,
    LinuxDatapath,
    LocalEndpoint,
    NetworkSpec,
    RemoteEndpoint,
    desired_state,
    diff,
    mac_from_ip,
)
from swimnet.datapath.entries import NetlinkEntries
from swimnet.datapath.netns import iproute_in, path_of
from swimnet.datapath.ops import ReplaceFdb, ReplaceNeigh, SetVxlan
from swimnet.errors import DatapathError

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

NET_A = NetworkSpec("a", 4097, "10.1.0.0/24", gateway="10.1.0.254")
NET_B = NetworkSpec("b", 4098, "10.1.0.0/24", gateway="10.1.0.254")


class Cluster:
    """Three hosts, their datapaths, and the endpoints every host knows about."""

    def __init__(self, the_lab: Lab, networks: list[NetworkSpec]) -> None:
        self.lab = the_lab
        self.networks = networks
        self.dps = [the_lab.datapath(i) for i in (1, 2, 3)]
        self.endpoints: dict[str, tuple[int, LocalEndpoint]] = {}

    def add(
        self, name: str, network: str, host: int, last_octet: int, ref: str | int | None = None
    ) -> LocalEndpoint:
        ns = self.lab.container(name)
        ip = f"10.1.0.{last_octet}"
        ep = LocalEndpoint(
            network, f"{network}-{name}", name, f"{ip}/24", mac_from_ip(ip), ns if ref is None else ref
        )
        self.endpoints[name] = (host, ep)
        return ep

    def ns(self, name: str) -> str:
        return f"{self.lab.prefix}{name}"

    def desired(self, host: int, without: tuple[str, ...] = ()) -> DesiredState:
        live = {n: v for n, v in self.endpoints.items() if n not in without}
        local = [ep for h, ep in live.values() if h == host]
        remote = [
            RemoteEndpoint(ep.network, ep.endpoint_id, ep.ip, ep.mac, self.lab.vteps[h - 1])
            for h, ep in live.values()
        ]
        return desired_state(
            self.lab.hosts[host - 1], self.lab.vteps[host - 1], 1500, self.networks, local, remote
        )

    def converge(self, without: tuple[str, ...] = ()) -> None:
        for host, dp in enumerate(self.dps, start=1):
            result = dp.reconcile(self.desired(host, without))
            assert result.ok, result.errors

    def attach_all(self) -> None:
        for host, ep in self.endpoints.values():
            self.dps[host - 1].attach(self.desired(host).sandbox(ep.network), ep)

    def reach(self, src: str, dst: str, attempts: int = 6) -> bytes | None:
        s, d = self.endpoints[src][1], self.endpoints[dst][1]
        return udp_exchange(self.ns(src), s.address, self.ns(dst), d.address, attempts=attempts)


def kernel_entries(sandbox: str) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """`bridge -j fdb show` self entries and `ip -j neigh show` permanent ones of vxlan0."""
    fdb = {
        (e["mac"], e.get("dst", ""))
        for e in json.loads(run("bridge", "-n", sandbox, "-j", "fdb", "show", "dev", "vxlan0") or "[]")
        if "self" in e.get("flags", [])
    }
    neigh = {
        e["dst"]: e["lladdr"]
        for e in json.loads(run("ip", "-n", sandbox, "-j", "-4", "neigh", "show", "dev", "vxlan0") or "[]")
        if "PERMANENT" in e.get("state", [])
    }
    return fdb, neigh


def remote_view(
    cluster: Cluster, host: int, without: tuple[str, ...] = ()
) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """What host `host` should hold for network a: every remote endpoint, nothing else."""
    fdb, neigh = set(), {}
    for name, (h, ep) in cluster.endpoints.items():
        if h != host and ep.network == "a" and name not in without:
            fdb.add((ep.mac, cluster.lab.vteps[h - 1]))
            neigh[ep.address] = ep.mac
    return fdb, neigh


@pytest.fixture
def cluster3() -> object:
    """Network a on three hosts, one container each: c1 by name, c2 by path, c3 by pid."""
    with lab() as the_lab:
        c = Cluster(the_lab, [NET_A])
        c.add("c1", "a", 1, 1)
        c.add("c2", "a", 2, 2, ref=path_of(f"{the_lab.prefix}c2"))
        ns3 = the_lab.container("c3")
        pid = the_lab.process_in(ns3)
        c.endpoints["c3"] = (3, LocalEndpoint("a", "a-c3", "c3", "10.1.0.3/24", mac_from_ip("10.1.0.3"), pid))
        c.converge()
        c.attach_all()
        yield c


def test_every_container_reaches_every_other_across_hosts(cluster3: Cluster) -> None:
    names = ["c1", "c2", "c3"]
    for src in names:
        for dst in names:
            if src != dst:
                reply = cluster3.reach(src, dst)
                assert reply is not None and reply.startswith(b"pong from " + cluster3.ns(dst).encode()), (
                    src,
                    dst,
                )


def test_underlay_carries_udp_4789_with_the_vni(cluster3: Cluster) -> None:
    the_lab = cluster3.lab
    frames = capture_vxlan(the_lab.underlay, "ul-h2", lambda: cluster3.reach("c1", "c2"))
    assert ("192.0.2.11", "192.0.2.12", 4789, 4097, "10.1.0.2") in frames, frames
    assert all(dport == 4789 and vni == 4097 for _, _, dport, vni, _ in frames)


def test_each_host_holds_exactly_the_remote_endpoints(cluster3: Cluster) -> None:
    for host, dp in enumerate(cluster3.dps, start=1):
        sandbox = cluster3.desired(host).sandbox("a").netns
        expected = remote_view(cluster3, host)
        assert kernel_entries(sandbox) == expected
        held = dp.dump().sandboxes[sandbox]
        assert (set(held.fdb), dict(held.neighbours)) == expected
        assert held.vxlan is not None and (held.vxlan.vni, held.vxlan.port, held.vxlan.learning) == (
            4097,
            4789,
            False,
        )
        assert dp.reconcile(cluster3.desired(host)).attempted == 0


def test_removing_an_endpoint_removes_its_entries(cluster3: Cluster) -> None:
    assert cluster3.reach("c1", "c3") is not None  # the bridges learn c3's MAC on vxlan0
    c3_mac = cluster3.endpoints["c3"][1].mac
    cluster3.converge(without=("c3",))
    for host in (1, 2):
        sandbox = cluster3.desired(host).sandbox("a").netns
        assert kernel_entries(sandbox) == remote_view(cluster3, host, without=("c3",))
        assert c3_mac not in run("bridge", "-n", sandbox, "fdb", "show", "dev", "vxlan0")
    assert f"swn-{cluster3.lab.hosts[2]}-4097" not in cluster3.lab.ns_names()  # last local endpoint left
    assert "eth0" not in run("ip", "-n", cluster3.ns("c3"), "link", "show")  # went with the sandbox
    assert cluster3.reach("c1", "c2") is not None


def test_entries_changed_by_hand_are_repaired(cluster3: Cluster) -> None:
    sb = cluster3.desired(1).sandbox("a").netns
    mac2, mac3 = mac_from_ip("10.1.0.2"), mac_from_ip("10.1.0.3")
    run("bridge", "-n", sb, "fdb", "del", mac2, "dev", "vxlan0", "self")
    run(
        "bridge",
        "-n",
        sb,
        "fdb",
        "add",
        "02:42:0a:01:00:63",
        "dev",
        "vxlan0",
        "dst",
        "192.0.2.99",
        "self",
        "permanent",
    )
    run("bridge", "-n", sb, "fdb", "replace", mac3, "dev", "vxlan0", "dst", "192.0.2.99", "self", "permanent")
    run("ip", "-n", sb, "neigh", "del", "10.1.0.2", "dev", "vxlan0")
    run(
        "ip",
        "-n",
        sb,
        "neigh",
        "add",
        "10.1.0.99",
        "lladdr",
        "02:42:0a:01:00:63",
        "dev",
        "vxlan0",
        "nud",
        "permanent",
    )
    run(
        "ip",
        "-n",
        sb,
        "neigh",
        "replace",
        "10.1.0.3",
        "lladdr",
        "02:00:00:00:00:33",
        "dev",
        "vxlan0",
        "nud",
        "permanent",
    )
    run("ip", "-n", sb, "link", "set", "dev", "vxlan0", "nomaster")
    assert cluster3.reach("c1", "c2", attempts=2) is None
    dp = cluster3.dps[0]
    ops = diff(cluster3.desired(1), dp.dump())
    assert SetVxlan(cluster3.desired(1).sandbox("a")) in ops
    assert ReplaceFdb(sb, mac3, "192.0.2.13") in ops and ReplaceNeigh(sb, "10.1.0.3", mac3) in ops
    assert dp.apply(ops).ok
    assert kernel_entries(sb) == remote_view(cluster3, 1)
    assert dp.reconcile(cluster3.desired(1)).attempted == 0
    assert cluster3.reach("c1", "c2") is not None
    assert cluster3.reach("c1", "c3") is not None


def test_a_restarted_agent_removes_what_an_earlier_run_left() -> None:
    with lab() as the_lab:
        c = Cluster(the_lab, [NET_A, NET_B])
        c.add("a1", "a", 1, 1)
        c.add("b1", "b", 1, 1)
        c.add("a2", "a", 2, 2)
        c.add("a3", "a", 3, 3)
        c.converge()
        host = the_lab.hosts[0]
        run("ip", "-n", host, "link", "add", "swv4099", "type", "vxlan", "id", "4099", "dstport", "4789")
        junk = path_of(f"swn-{host}-4100")  # a name without a namespace: a crash while creating it
        open(junk, "w").close()
        fresh = LinuxDatapath(host, host_netns=host)
        before = fresh.dump()
        assert set(before.sandboxes) == {f"swn-{host}-4097", f"swn-{host}-4098", f"swn-{host}-4100"}
        assert before.host_vxlans == {"swv4099"}
        want = desired_state(
            host,
            the_lab.vteps[0],
            1500,
            [NET_A],
            [c.endpoints["a1"][1]],
            [_remote(c, "a2")],
        )
        result = fresh.reconcile(want)
        assert result.ok, result.errors
        after = fresh.dump()
        assert set(after.sandboxes) == {f"swn-{host}-4097"}
        assert not after.host_vxlans
        assert not os.path.exists(junk)
        box = after.sandboxes[f"swn-{host}-4097"]
        a2 = c.endpoints["a2"][1]
        assert set(box.fdb) == {(a2.mac, "192.0.2.12")} and dict(box.neighbours) == {a2.address: a2.mac}
        assert "swv4099" not in run("ip", "-n", host, "link", "show")


def _remote(c: Cluster, name: str) -> RemoteEndpoint:
    host, ep = c.endpoints[name]
    return RemoteEndpoint(ep.network, ep.endpoint_id, ep.ip, ep.mac, c.lab.vteps[host - 1])


def test_networks_with_the_same_subnet_stay_isolated() -> None:
    with lab() as the_lab:
        c = Cluster(the_lab, [NET_A, NET_B])
        c.add("a1", "a", 1, 1)
        c.add("a2", "a", 2, 2)
        c.add("b1", "b", 1, 1)
        c.add("b2", "b", 2, 2)
        c.add("b3", "b", 3, 3)
        c.converge()
        c.attach_all()
        frames = capture_vxlan(the_lab.underlay, "ul-h2", lambda: (c.reach("a1", "a2"), c.reach("b1", "b2")))
        assert ("192.0.2.11", "192.0.2.12", 4789, 4097, "10.1.0.2") in frames
        assert ("192.0.2.11", "192.0.2.12", 4789, 4098, "10.1.0.2") in frames
        reply_a = c.reach("a1", "a2")
        reply_b = c.reach("b1", "b2")
        assert reply_a is not None and reply_a.startswith(b"pong from " + c.ns("a2").encode())
        assert reply_b is not None and reply_b.startswith(b"pong from " + c.ns("b2").encode())
        # 10.1.0.3 exists only in b: a container of a must not reach it
        assert udp_exchange(c.ns("a1"), "10.1.0.1", c.ns("b3"), "10.1.0.3", attempts=3, wait=0.3) is None
        assert c.reach("b1", "b3") is not None


def test_attach_errors_and_detach() -> None:
    with lab(hosts=1) as the_lab:
        dp = the_lab.datapath(1)
        ns = the_lab.container("c1")
        ep = LocalEndpoint("a", "a-c1", "c1", "10.1.0.1/24", mac_from_ip("10.1.0.1"), ns)
        want = desired_state(the_lab.hosts[0], the_lab.vteps[0], 1500, [NET_A], [ep], [])
        with pytest.raises(DatapathError, match="does not exist"):
            dp.attach(want.sandbox("a"), ep)
        assert dp.reconcile(want).ok
        veth = dp.attach(want.sandbox("a"), ep)
        assert veth in run("ip", "-n", want.sandbox("a").netns, "link", "show", "master", "br0")
        shown = json.loads(run("ip", "-n", ns, "-j", "addr", "show", "dev", "eth0"))[0]
        assert (shown["address"], shown["mtu"]) == (ep.mac, 1450)
        assert {"10.1.0.1"} == {a["local"] for a in shown["addr_info"] if a["family"] == "inet"}
        assert "default via 10.1.0.254" in run("ip", "-n", ns, "route", "show")
        other = LocalEndpoint("a", "a-other", "c9", "10.1.0.9/24", mac_from_ip("10.1.0.9"), ns)
        with pytest.raises(DatapathError, match="already has"):
            dp.attach(want.sandbox("a"), other)
        dp.detach(want.sandbox("a"), ep)
        assert "eth0" not in run("ip", "-n", ns, "link", "show")
        dp.detach(want.sandbox("a"), ep)  # idempotent
        missing = LocalEndpoint(
            "a", "a-gone", "c8", "10.1.0.8/24", mac_from_ip("10.1.0.8"), "/nonexistent/ns"
        )
        with pytest.raises(DatapathError, match="does not exist"):
            dp.attach(want.sandbox("a"), missing)


def test_batched_writes_report_each_failure_by_sequence_number() -> None:
    with lab(hosts=1) as the_lab:
        dp = the_lab.datapath(1)
        ep = LocalEndpoint("a", "a-c1", "c1", "10.1.0.1/24", mac_from_ip("10.1.0.1"), "unused")
        want = desired_state(the_lab.hosts[0], the_lab.vteps[0], 1500, [NET_A], [ep], [])
        assert dp.reconcile(want).ok
        sb = want.sandbox("a").netns
        good = [ReplaceFdb(sb, f"02:00:00:00:01:{i:02x}", "192.0.2.12") for i in range(50)]
        bad = [
            ReplaceFdb(sb, "01:00:00:00:00:05", "192.0.2.12"),
            ReplaceFdb(sb, "03:00:00:00:00:05", "192.0.2.12"),
        ]
        ops = [*good[:20], bad[0], *good[20:40], bad[1], *good[40:]]
        errors = NetlinkEntries(chunk=7).write(sb, ops)
        assert [e.op for e in errors] == bad
        assert all(e.errno > 0 and e.message for e in errors)
        held = dp.dump().sandboxes[sb].fdb
        assert {(op.mac, op.vtep) for op in good} <= held
        result = dp.apply(ops)
        assert [e.op for e in result.errors] == bad
        with pytest.raises(DatapathError):
            result.raise_for_errors()


def test_both_entry_writers_program_the_same_state() -> None:
    with lab(hosts=1) as the_lab:
        host = the_lab.hosts[0]
        ep = LocalEndpoint("a", "a-c1", "c1", "10.1.0.1/24", mac_from_ip("10.1.0.1"), "unused")
        remotes = [
            RemoteEndpoint(
                "a", f"r{i}", f"10.1.0.{i}/24", mac_from_ip(f"10.1.0.{i}"), f"192.0.2.{20 + i % 3}"
            )
            for i in range(2, 60)
        ]
        flood = NetworkSpec("a", 4097, "10.1.0.0/24", flood=True)
        want = desired_state(host, the_lab.vteps[0], 1500, [flood], [ep], remotes)
        held = []
        for writer in ("pyroute2", "netlink"):
            dp = LinuxDatapath(host, host_netns=host, entries=writer)
            assert dp.reconcile(want).ok
            assert diff(want, dp.dump()) == []
            held.append(dp.dump())
            assert dp.reconcile(desired_state(host, the_lab.vteps[0], 1500, [flood], [], [])).ok
        assert held[0] == held[1]


def test_netlink_handles_enter_a_namespace_without_forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """`iproute_in` works inside the namespace (a device made through it is there, not
    here) and never forks: a forked child of the multi-threaded agent once hung it."""

    def no_fork() -> int:
        raise AssertionError("forked")

    with lab(1) as the_lab:
        ns = the_lab.container("nofork")
        monkeypatch.setattr(os, "fork", no_fork)
        with iproute_in(ns) as ipr:
            ipr.link("add", ifname="brnofork", kind="bridge")
            assert ipr.link_lookup(ifname="brnofork")
        monkeypatch.undo()
        assert "brnofork" in run("ip", "-n", ns, "link", "show")
        assert "brnofork" not in run("ip", "link", "show")
        with pytest.raises(OSError):
            iproute_in(f"{ns}-missing")
