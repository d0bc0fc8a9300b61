"""Starting and stopping a node: `open_node` (async context manager) and `serve_node`.

Rules:
- the sockets are bound before the engine exists, so the engine is built with the real
  addresses: the name (host name if empty), bind (real port) and advertise filled in;
- the body of `async with open_node()` runs inside the node's nursery, but its exception is
  re-raised unchanged outside it (never wrapped in an ExceptionGroup);
- a normal exit leaves the cluster gracefully (bounded by leave_timeout); an exception or a
  cancellation is a crash: no leave, sockets closed; `serve_node` ends only by
  cancellation, so it always crashes unless `node.leave()` was awaited first.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from swimnet.config import Config, format_address
from swimnet.engine import Engine
from swimnet.errors import LocalProtocolError
from swimnet.layers.topology import PingObserver
from swimnet.runtime.node import DEFAULT_MAX_STREAMS, Node
from swimnet.runtime.reactor import Reactor
from swimnet.runtime.resolve import Seed, default_name, is_numeric, resolve, resolve_advertise
from swimnet.runtime.subscriptions import DEFAULT_BUFFER
from swimnet.runtime.transport import open_transport
from swimnet.tables.config import TablesConfig


async def _bind_family(host: str, port: int) -> tuple[int, str]:
    """The address family and literal host to bind for the configured bind host."""
    for family in (int(socket.AF_INET), int(socket.AF_INET6)):
        if is_numeric(host, family):
            return family, host
    found, (literal, _) = (await resolve(host, port, passive=True))[0]
    return found, literal


@asynccontextmanager
async def open_node(
    config: Config,
    *,
    incarnation: int = 1,
    rng: random.Random | None = None,
    event_buffer: int = DEFAULT_BUFFER,
    max_streams: int = DEFAULT_MAX_STREAMS,
    tables_config: TablesConfig | None = None,
    ping_observer: PingObserver | None = None,
    shared_reactor: bool = True,
) -> AsyncIterator[Node]:
    """Start a node; `async with open_node(config) as node:` (see the module rules).

    `incarnation` starts the local member above a previous life (a restart under the same
    name must use a higher one); `rng` defaults to one seeded from os.urandom; `event_buffer`
    is the default subscription buffer; `max_streams` bounds concurrent stream exchanges per
    direction; `ping_observer` is told of every direct probe round trip (e.g. a histogram);
    `shared_reactor` False makes the node wait on its socket and timer in tasks of its own
    instead of the run's shared epoll (what it does anyway where epoll is unavailable).
    """
    if not isinstance(event_buffer, int) or event_buffer < 1:
        raise LocalProtocolError("event_buffer: must be an integer >= 1")
    name = config.name or default_name()
    host, port = config.bind_address
    family, literal = await _bind_family(host, port)
    stats: Counter[str] = Counter()
    transport = open_transport(family, literal, port, stats)
    try:
        advertise = await resolve_advertise(config.advertise, transport.address, family)
        effective = config.evolve(
            name=name, bind=format_address(transport.address), advertise=format_address(advertise)
        )
        engine = Engine(
            effective,
            rng=rng if rng is not None else random.Random(os.urandom(32)),
            now=trio.current_time(),
            incarnation=incarnation,
            nonce_source=os.urandom,
            wall_clock=time.time,
            tables_config=tables_config,
            ping_observer=ping_observer,
        )
        body_error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            node = Node(
                engine,
                transport,
                nursery,
                stats,
                event_buffer=event_buffer,
                max_streams=max_streams,
                reactor=Reactor.current() if shared_reactor else None,
            )
            node._start()
            try:
                yield node
            except BaseException as exc:  # re-raised below, outside our nursery (no group)
                body_error = exc
            else:
                await node._shutdown_leave()
            finally:
                node._close()
                nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
    finally:
        transport.close()


async def serve_node(
    config: Config,
    *,
    seeds: Iterable[Seed] = (),
    incarnation: int = 1,
    rng: random.Random | None = None,
    event_buffer: int = DEFAULT_BUFFER,
    max_streams: int = DEFAULT_MAX_STREAMS,
    tables_config: TablesConfig | None = None,
    ping_observer: PingObserver | None = None,
    task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a node until cancelled, for `node = await nursery.start(serve_node, config)`.

    With `seeds`, joins them before reporting the node started (JoinError propagates out of
    `nursery.start`). Cancellation is a crash (no leave): `await node.leave()` first for a
    graceful exit.
    """
    async with open_node(
        config,
        incarnation=incarnation,
        rng=rng,
        event_buffer=event_buffer,
        max_streams=max_streams,
        tables_config=tables_config,
        ping_observer=ping_observer,
    ) as node:
        seed_list = list(seeds)
        if seed_list:
            await node.join(seed_list)
        task_status.started(node)
        await trio.sleep_forever()
