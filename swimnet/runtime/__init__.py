"""The trio runtime: real sockets and timers around the sans-IO engine.

    async with open_node(Config.lan(name="a", bind="127.0.0.1:7946")) as node:
        await node.join(["127.0.0.1:7947"])
        async with node.subscribe() as events:
            async for event in events: ...

`serve_node` runs a node under `nursery.start`. Modules: lifecycle (open_node, serve_node),
node (Node: the engine driven by sockets and timers), reactor (one epoll per trio run that
serves every node's socket and timer by callbacks), alarm (the timer as a timerfd),
transport (UDP + TCP on one port), streams (request/reply exchanges), framing (plain and
authenticated frames), guard (stream admission, buffer budget, inflation allowance),
subscriptions (bounded event buffers), resolve (names and addresses).
"""

from __future__ import annotations

from swimnet.runtime.keys import KeyringListing, Keys
from swimnet.runtime.lifecycle import open_node, serve_node
from swimnet.runtime.node import Node, Table
from swimnet.runtime.subscriptions import Subscription

__all__ = ["KeyringListing", "Keys", "Node", "Subscription", "Table", "open_node", "serve_node"]
