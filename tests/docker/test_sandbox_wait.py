"""Waiting for a network namespace to be mounted (what the plugin does for a container
that joined before dockerd mounted its namespace), on the real kernel: a namespace mounted
while the wait runs ends it (the mount table's POLLPRI, not a timer), a path never mounted
times out, a cancelled wait returns at once. Namespaces are named for the datapath lab's
sweep and removed in a finally."""

from __future__ import annotations

import os
import secrets

import pytest
import trio
from datapath_lab import probe, run, sweep_stale

from swimnet.agent.docker.sandbox import wait_for_namespace
from swimnet.datapath.netns import path_of

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def _name() -> str:
    return f"dpt{os.getpid()}xwait{secrets.token_hex(2)}"


async def test_a_namespace_mounted_during_the_wait_ends_it() -> None:
    sweep_stale()
    name = _name()
    try:
        async with trio.open_nursery() as nursery:
            got: list[bool] = []

            async def wait() -> None:
                got.append(await wait_for_namespace(path_of(name), timeout=60))

            nursery.start_soon(wait)
            await trio.sleep(0.3)
            assert got == []  # nothing mounted yet: still waiting
            await trio.to_thread.run_sync(run, "ip", "netns", "add", name)
            with trio.fail_after(30):
                while not got:
                    await trio.sleep(0.01)
        assert got == [True]
        assert await wait_for_namespace(path_of(name), timeout=0)  # there already
    finally:
        if os.path.exists(path_of(name)):
            run("ip", "netns", "del", name)


async def test_a_path_never_mounted_times_out_and_a_cancelled_wait_returns() -> None:
    missing = path_of(_name())
    assert await wait_for_namespace(missing, timeout=0.3) is False
    with trio.move_on_after(0.2) as scope:
        await wait_for_namespace(missing, timeout=600)
    assert scope.cancelled_caught
