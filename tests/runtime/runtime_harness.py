"""Helpers for runtime integration tests: fast configs, nodes that can crash or leave, waits.

Rules: every node binds 127.0.0.1 port 0; waits poll a condition under a generous
trio.fail_after (tests never assert durations); a `NodeHandle` is run with
`nursery.start(run_node, config)` and ends either by `crash()` (cancellation: sockets
closed, nothing sent) or `stop()` (normal exit of the `async with`: graceful leave).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import trio

from swimnet.config import Config, format_address
from swimnet.runtime import Node, open_node

WAIT = 30.0


def fast_config(name: str, **overrides: Any) -> Config:
    settings: dict[str, Any] = dict(
        name=name,
        bind="127.0.0.1:0",
        probe_interval=0.2,
        probe_timeout=0.1,
        gossip_interval=0.05,
        suspicion_mult=2,
        push_pull_interval=2.0,
        tcp_timeout=1.0,
        leave_timeout=2.0,
        rejoin_interval=2.0,
        join_sync_delays=(0.2, 0.5),
    )
    settings.update(overrides)
    return Config.local(**settings)


class NodeHandle:
    def __init__(self, node: Node, scope: trio.CancelScope) -> None:
        self.node = node
        self.scope = scope
        self.exit = trio.Event()
        self.done = trio.Event()

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def seed(self) -> str:
        return format_address(self.node.address)

    async def crash(self) -> None:
        """Cancel the node: its sockets close, it sends nothing more."""
        self.scope.cancel()
        await self.done.wait()

    async def stop(self) -> None:
        """Leave the `async with` normally: a graceful leave."""
        self.exit.set()
        await self.done.wait()


async def run_node(config: Config, *, task_status: Any = trio.TASK_STATUS_IGNORED, **options: Any) -> None:
    handle: NodeHandle | None = None
    try:
        with trio.CancelScope() as scope:
            async with open_node(config, **options) as node:
                handle = NodeHandle(node, scope)
                task_status.started(handle)
                await handle.exit.wait()
    finally:
        if handle is not None:
            handle.done.set()


async def start_cluster(
    nursery: trio.Nursery, count: int, prefix: str = "n", **overrides: Any
) -> list[NodeHandle]:
    """`count` nodes, each joined to the first one, one after another."""
    handles: list[NodeHandle] = []
    for i in range(count):
        handle: NodeHandle = await nursery.start(run_node, fast_config(f"{prefix}{i}", **overrides))
        if handles:
            assert await handle.node.join([handles[0].seed]) == 1
        handles.append(handle)
    return handles


def states(node: Node) -> dict[str, str]:
    return {m.name: m.state.label for m in node.members()}


def sees(node: Node, expected: dict[str, str]) -> bool:
    view = states(node)
    return all(view.get(name) == label for name, label in expected.items())


def converged(nodes: Sequence[Node], names: Sequence[str] | None = None) -> bool:
    """Every node sees every name in `names` (default: the nodes) alive."""
    want = {name: "alive" for name in (names if names is not None else [n.name for n in nodes])}
    return all(sees(node, want) for node in nodes)


async def wait_for(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    try:
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.05)
    except trio.TooSlowError:
        raise AssertionError(f"timed out waiting for {what}") from None
