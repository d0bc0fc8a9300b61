"""DatapathDriver over the real kernel: three drivers in one process, one per lab host.

The overlay snapshots are built by hand (what the agents' tables would say), so this checks
the driver alone: worker threads, attach (by name, path and pid, and again after a
restart), re-attach after a sandbox is removed by hand, the periodic repair, fdb() from a
kernel dump. The lab (tests/datapath/datapath_lab.py) removes every namespace it made.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
from datapath_lab import Lab, lab, probe, run, udp_exchange
from overlay_fixtures import LocalEndpointSpec, OverlaySnapshot, local, network, remote, snapshot

from swimnet.datapath import LinuxDatapath
from swimnet.datapath.driver import DatapathDriver
from swimnet.datapath.names import sandbox_name
from swimnet.datapath.netns import path_of

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

VNI = 4097
NETS = {"ovnet": (network(), VNI)}


def endpoints(the_lab: Lab) -> list[tuple[int, LocalEndpointSpec]]:
    c1 = the_lab.container("c1")
    c2 = the_lab.container("c2")
    the_lab.container("c3")
    pid = the_lab.process_in(f"{the_lab.prefix}c3")
    return [
        (1, local("c1", "10.1.0.1/24", netns=c1)),
        (2, local("c2", "10.1.0.2/24", netns=path_of(c2))),
        (3, local("c3", "10.1.0.3/24", netns=None, pid=pid)),
    ]


def view(the_lab: Lab, host: int, eps: list[tuple[int, LocalEndpointSpec]]) -> OverlaySnapshot:
    mine = [ep for h, ep in eps if h == host]
    others = [remote(ep.name, ep.ip, the_lab.vteps[h - 1]) for h, ep in eps if h != host]
    return snapshot(NETS, mine, others)


def driver(the_lab: Lab, host: int, **kw: float) -> DatapathDriver:
    name = the_lab.hosts[host - 1]
    dp = LinuxDatapath(name, host_netns=name)
    options: dict[str, float] = {"startup_grace": 0.0, **kw}
    return DatapathDriver(name, the_lab.vteps[host - 1], datapath=dp, **options)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.05)


async def reaches(the_lab: Lab, src: str, src_ip: str, dst: str, dst_ip: str) -> bool:
    reply = await trio.to_thread.run_sync(
        lambda: udp_exchange(f"{the_lab.prefix}{src}", src_ip, f"{the_lab.prefix}{dst}", dst_ip)
    )
    return reply is not None and reply.startswith(f"pong from {the_lab.prefix}{dst}".encode())


async def test_three_drivers_program_a_working_overlay() -> None:
    with lab() as the_lab:
        eps = endpoints(the_lab)
        drivers = [driver(the_lab, h, reconcile_interval=0.5, debounce=0.05) for h in (1, 2, 3)]
        async with trio.open_nursery() as nursery:
            for d in drivers:
                await nursery.start(d.run)
            for h, d in enumerate(drivers, start=1):
                d.update(view(the_lab, h, eps))
            for h, ep in eps:
                await drivers[h - 1].attach(ep)
            ips = {f"c{h}": ep.ip.split("/")[0] for h, ep in eps}
            for src in ips:
                for dst in ips:
                    if src != dst:
                        assert await reaches(the_lab, src, ips[src], dst, ips[dst]), (src, dst)

            rows = await drivers[0].fdb("ovnet")
            assert rows == [
                {"mac": "02:42:0a:01:00:02", "vtep": "192.0.2.12", "ip": "10.1.0.2"},
                {"mac": "02:42:0a:01:00:03", "vtep": "192.0.2.13", "ip": "10.1.0.3"},
            ]

            # a restarted agent attaches its endpoints again: the working interface is kept
            again = driver(the_lab, 1)
            again.update(view(the_lab, 1, eps))
            await again.attach(eps[0][1])
            assert await reaches(the_lab, "c1", "10.1.0.1", "c2", "10.1.0.2")

            # hand-made drift is repaired by the periodic reconcile
            sb1 = sandbox_name(the_lab.hosts[0], VNI)
            before = drivers[0].stats["ops_applied"]
            run("bridge", "-n", sb1, "fdb", "del", "02:42:0a:01:00:02", "dev", "vxlan0", "self")
            run("ip", "-n", sb1, "neigh", "del", "10.1.0.2", "dev", "vxlan0")
            await until(lambda: drivers[0].stats["ops_applied"] >= before + 2)
            assert await drivers[0].fdb("ovnet") == rows

            # a sandbox removed by hand comes back, with its container plugged in again
            sb2 = sandbox_name(the_lab.hosts[1], VNI)
            run("ip", "netns", "del", sb2)
            await until(lambda: drivers[1].stats["reattaches"] == 1)
            assert "eth0" in run("ip", "-n", f"{the_lab.prefix}c2", "link", "show")
            assert await reaches(the_lab, "c1", "10.1.0.1", "c2", "10.1.0.2")
            assert await reaches(the_lab, "c3", "10.1.0.3", "c2", "10.1.0.2")

            # detach + a snapshot without the endpoint: its sandbox goes, others forget it
            await drivers[2].detach(eps[2][1])
            eps3 = eps[:2]
            for h, d in enumerate(drivers, start=1):
                d.update(view(the_lab, h, eps3))
            await until(lambda: sandbox_name(the_lab.hosts[2], VNI) not in the_lab.ns_names())
            with trio.fail_after(20):
                while [r["ip"] for r in await drivers[0].fdb("ovnet")] != ["10.1.0.2"]:
                    await trio.sleep(0.05)
            for d in drivers:
                assert d.stats["errors"] == 0, d.last_error
                await d.close()
            nursery.cancel_scope.cancel()
