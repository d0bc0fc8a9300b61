"""The hand-off attach over the real kernel (what Docker's remote driver needs at `Join`):
the driver leaves the container end in the host namespace, a runtime moves it into the
container, and the endpoint works across hosts like any other; a restarted driver keeps
it; detach removes the pair wherever its end went. The lab removes every namespace."""

from __future__ import annotations

import json

import pytest
import trio
from datapath_lab import lab, probe, run
from overlay_fixtures import local, network, remote, snapshot
from test_driver_kernel import driver, reaches

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

NETS = {"ovnet": (network(), 4098)}


def links(ns: str) -> dict[str, dict[str, object]]:
    return {link["ifname"]: link for link in json.loads(run("ip", "-j", "-n", ns, "link", "show"))}


async def test_a_handed_off_end_is_moved_by_the_runtime_and_reaches_the_other_host() -> None:
    with lab(2) as the_lab:
        host1 = the_lab.hosts[0]
        c1 = the_lab.container("c1")
        c2 = the_lab.container("c2")
        ep1 = local("c1", "10.1.0.1/24", netns=c1, handoff="vhtest0")
        ep2 = local("c2", "10.1.0.2/24", netns=c2)
        d1, d2 = driver(the_lab, 1, debounce=0.05), driver(the_lab, 2, debounce=0.05)
        async with trio.open_nursery() as nursery:
            for d in (d1, d2):
                await nursery.start(d.run)
            d1.update(snapshot(NETS, [ep1], [remote("c2", ep2.ip, the_lab.vteps[1])]))
            d2.update(snapshot(NETS, [ep2], [remote("c1", ep1.ip, the_lab.vteps[0])]))
            await d1.attach(ep1)
            await d2.attach(ep2)

            # the end waits in the host namespace with the endpoint's MAC, nothing in c1 yet
            end = links(host1)["vhtest0"]
            assert end["address"] == ep1.mac and "eth0" not in links(c1)
            # the runtime's part: move, rename, address, up, route (as Docker does after Join)
            run("ip", "-n", host1, "link", "set", "vhtest0", "netns", c1, "name", "eth0")
            run("ip", "-n", c1, "addr", "add", ep1.ip, "dev", "eth0")
            run("ip", "-n", c1, "link", "set", "eth0", "up")
            assert "vhtest0" not in links(host1)
            assert await reaches(the_lab, "c1", "10.1.0.1", "c2", "10.1.0.2")

            # a restarted driver sees it attached and leaves it alone (no new end in the host)
            again = driver(the_lab, 1)
            again.update(snapshot(NETS, [ep1], [remote("c2", ep2.ip, the_lab.vteps[1])]))
            await again.attach(ep1)
            assert "vhtest0" not in links(host1)
            assert await reaches(the_lab, "c1", "10.1.0.1", "c2", "10.1.0.2")

            # detach deletes the pair: the container's end goes with it
            await d1.detach(ep1)
            assert "eth0" not in links(c1)
            for d in (d1, d2):
                assert d.stats["errors"] == 0, d.last_error
                await d.close()
            nursery.cancel_scope.cancel()


async def test_a_half_done_handoff_is_made_again() -> None:
    """A leftover end of the hand-off name in the host namespace is ours (named from the
    endpoint id): a new attach replaces it rather than failing."""
    with lab(1) as the_lab:
        host1 = the_lab.hosts[0]
        c1 = the_lab.container("c1")
        ep1 = local("c1", "10.1.0.1/24", netns=c1, handoff="vhtest1")
        run("ip", "-n", host1, "link", "add", "vhtest1", "type", "veth", "peer", "name", "vhjunk")
        d1 = driver(the_lab, 1, debounce=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(d1.run)
            d1.update(snapshot(NETS, [ep1], []))
            await d1.attach(ep1)
            assert links(host1)["vhtest1"]["address"] == ep1.mac and "vhjunk" not in links(host1)
            await d1.close()
            nursery.cancel_scope.cancel()
