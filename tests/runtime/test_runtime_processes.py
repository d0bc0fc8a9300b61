"""Ten OS processes, one node each, on 127.0.0.1: converge, SIGKILL one, the rest declare it dead.

Every process is killed and reaped in a `finally`, whatever happens to the test.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
from typing import Any

import trio
from runtime_harness import wait_for

SCRIPT = pathlib.Path(__file__).with_name("runtime_nodeproc.py")
COUNT = 10


class Child:
    """A node process and the last state it printed."""

    def __init__(self, name: str, process: trio.Process) -> None:
        self.name = name
        self.process = process
        self.state: dict[str, Any] = {}
        self.lines = 0

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self.state = json.loads(line)
                    self.lines += 1

    @property
    def members(self) -> dict[str, str]:
        members: dict[str, str] = self.state.get("members", {})
        return members


async def spawn(nursery: trio.Nursery, children: list[Child], name: str, seed: str | None) -> Child:
    args = [sys.executable, str(SCRIPT), name, *([seed] if seed else [])]
    process = await trio.lowlevel.open_process(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    child = Child(name, process)
    children.append(child)
    nursery.start_soon(child.read)
    return child


async def reap(children: list[Child]) -> None:
    with trio.CancelScope(shield=True):
        for child in children:
            if child.process.returncode is None:
                child.process.kill()
        with trio.move_on_after(10):
            for child in children:
                await child.process.wait()


async def test_ten_processes_converge_and_detect_a_sigkill() -> None:
    children: list[Child] = []
    try:
        async with trio.open_nursery() as nursery:
            first = await spawn(nursery, children, "p0", None)
            await wait_for(lambda: "address" in first.state, what="first process ready")
            seed = first.state["address"]
            for i in range(1, COUNT):
                await spawn(nursery, children, f"p{i}", seed)
            names = {c.name for c in children}

            def all_alive() -> bool:
                return all({n for n, s in c.members.items() if s == "alive"} == names for c in children)

            await wait_for(all_alive, timeout=60, what="10 processes converged")
            victim = children[-1]
            victim.process.send_signal(signal.SIGKILL)
            survivors = children[:-1]
            await wait_for(
                lambda: all(c.members.get(victim.name) == "dead" for c in survivors),
                timeout=60,
                what="SIGKILLed process declared dead by all",
            )
            assert all(c.members[s.name] == "alive" for c in survivors for s in survivors)
            assert await victim.process.wait() == -signal.SIGKILL
            nursery.cancel_scope.cancel()
    finally:
        await reap(children)
    assert all(c.process.returncode is not None for c in children)
