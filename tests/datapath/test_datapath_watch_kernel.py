"""KernelWatch on a real sandbox: notifications of hand-made changes, inside the namespace.

A one-host lab; LinuxDatapath builds the sandbox, `ip` / `bridge` change it by hand, and the
watch must report each change (every wait is bounded). The lab removes what it made.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import trio
from datapath_lab import Lab, lab, probe, run

from swimnet.datapath import LocalEndpoint, NetworkSpec, RemoteEndpoint, desired_state
from swimnet.datapath.kwatch import KernelWatch
from swimnet.datapath.model import DesiredState
from swimnet.datapath.watch import Change, FdbChange, LinkChange, Lost, NeighChange, SandboxGone

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

NET = NetworkSpec("ovnet", 4097, "10.1.0.0/24")
M2 = "02:42:0a:01:00:02"


def desired(the_lab: Lab) -> DesiredState:
    web = LocalEndpoint("ovnet", "ovnet-web", "web", "10.1.0.1/24", "02:42:0a:01:00:01", "unused")
    r2 = RemoteEndpoint("ovnet", "ovnet-r2", "10.1.0.2/24", M2, "192.0.2.12")
    return desired_state(the_lab.hosts[0], the_lab.vteps[0], 1500, [NET], [web], [r2])


async def collect(watch: KernelWatch, seen: list[Change], done: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not done():
            await watch.wait()
            seen += watch.read()


async def test_hand_made_changes_are_reported() -> None:
    with lab(hosts=1) as the_lab:
        dp = the_lab.datapath(1)
        want = desired(the_lab)
        assert dp.reconcile(want).ok
        sb = next(iter(want.sandboxes))
        watch = KernelWatch()
        try:
            watch.track([sb, "swn-nonexistent-1"])
            assert watch.watched == {sb}
            seen: list[Change] = []
            run("bridge", "-n", sb, "fdb", "del", M2, "dev", "vxlan0", "self")
            await collect(watch, seen, lambda: FdbChange(sb, M2, "192.0.2.12", True) in seen)
            run("ip", "-n", sb, "neigh", "del", "10.1.0.2", "dev", "vxlan0")
            await collect(watch, seen, lambda: NeighChange(sb, "10.1.0.2", "", False, True) in seen)
            run("ip", "-n", sb, "link", "set", "vxlan0", "down")
            await collect(watch, seen, lambda: any(isinstance(c, LinkChange) and not c.up for c in seen))
            run("ip", "-n", sb, "link", "del", "vxlan0")
            await collect(watch, seen, lambda: LinkChange(sb, "vxlan0", deleted=True) in seen)
            assert dp.reconcile(want).ok  # a new vxlan0 (a new ifindex): still followed
            assert watch.discard() > 0  # what the reconcile itself did
            run("bridge", "-n", sb, "fdb", "del", M2, "dev", "vxlan0", "self")
            seen.clear()
            await collect(watch, seen, lambda: FdbChange(sb, M2, "192.0.2.12", True) in seen)
            run("ip", "netns", "del", sb)
            await collect(watch, seen, lambda: SandboxGone(sb) in seen)
            assert watch.watched == frozenset()
            # the watch's socket still holds the old namespace: track() deletes its devices
            # (the VNI is free at once) and closes it; then the sandbox can be made again
            watch.track([sb])
            assert watch.cleared == 1 and watch.watched == frozenset()
            assert dp.reconcile(want).ok, "the old sandbox still holds VNI 4097"
            watch.track([sb])
            assert watch.watched == {sb}
            watch.track([])
            assert watch.watched == frozenset()
        finally:
            watch.close()
        watch.track([sb])  # closed: nothing happens
        assert watch.watched == frozenset() and watch.read() == [] and watch.discard() == 0


async def test_a_burst_that_overflows_the_socket_is_reported_lost() -> None:
    with lab(hosts=1) as the_lab:
        dp = the_lab.datapath(1)
        want = desired(the_lab)
        assert dp.reconcile(want).ok
        sb = next(iter(want.sandboxes))
        watch = KernelWatch(rcvbuf=4096)
        try:
            watch.track([sb])
            macs = [f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}" for i in range(300)]
            lines = "".join(f"fdb append {m} dev vxlan0 dst 192.0.2.99 self permanent\n" for m in macs)
            done = subprocess.run(
                ["bridge", "-n", sb, "-batch", "-"], input=lines, text=True, capture_output=True, timeout=20
            )
            assert done.returncode == 0, done.stderr
            seen: list[Change] = []
            await collect(watch, seen, lambda: Lost(sb, "No buffer space available") in seen)
            watch.discard()
            watch.track([sb])  # opened anew: what it knew of the devices may be out of date
            assert watch.watched == {sb}
            run("bridge", "-n", sb, "fdb", "del", M2, "dev", "vxlan0", "self")
            seen.clear()
            await collect(watch, seen, lambda: FdbChange(sb, M2, "192.0.2.12", True) in seen)
        finally:
            watch.close()
