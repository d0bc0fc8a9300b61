"""`AgentDns.attach`'s bound is real: a resolver start stuck in a worker thread (here: the
namespace "path" is a FIFO nobody writes, so the thread's open(2) blocks, as a kernel call
that never returns would) is cut off at `attach_timeout`, counted, and the abandoned
thread undoes what it opened once it ends: no socket or file descriptor is left.

The bounds below are behavioural timeouts for a loaded machine, never speed figures."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import trio

from swimnet.agent.domain.cluster import Cluster, open_agent_node
from swimnet.agent.domain.dns import AgentDns
from swimnet.config import Config
from swimnet.dns import ResolverConfig
from swimnet.dns.pool import open_resolver_pool
from swimnet.dns.upstream import Upstreams
from swimnet.overlay import LocalEndpointSpec
from swimnet.tables.config import TablesConfig

RESCUE_AFTER = 20.0
"""When the test itself unblocks the stuck thread (an attach still waiting then failed)."""


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_a_resolver_start_stuck_in_a_thread_is_cut_off_and_undone(tmp_path: Path) -> None:
    fifo = tmp_path / "netns"
    os.mkfifo(fifo)
    spec = LocalEndpointSpec("ep1", "front", "web", "10.1.0.2/24", "02:42:0a:01:00:02", netns=str(fifo))
    config = Config.lan(name="n1", bind="127.0.0.1:0")
    async with open_agent_node(config, incarnation=1, tables_config=TablesConfig()) as node:
        dns = AgentDns(Cluster(node), Counter(), attach_timeout=0.5)
        upstreams = Upstreams.fixed([])
        resolver_config = ResolverConfig(netns_etc=str(tmp_path / "etc"))
        async with open_resolver_pool(dns.index.view, upstreams=upstreams, config=resolver_config) as pool:
            dns.resolvers = pool
            before = open_fds()
            returned = rescued = False

            async def rescue() -> None:
                nonlocal rescued
                with trio.move_on_after(RESCUE_AFTER):
                    while not returned:
                        await trio.sleep(0.05)
                rescued = True  # let the stuck open(2) return: a writer appears
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(writer)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(rescue)
                await dns.attach(spec)
                returned = True
                assert not rescued, "attach waited for the stuck thread"
            assert dns.stats["dns_attach_failures"] == 1 and dns.stats["dns_attaches"] == 0
            assert pool.networks_of(str(fifo)) == ()

            with trio.fail_after(30):  # the abandoned thread ends and closes what it opened
                while open_fds() - before:
                    await trio.sleep(0.05)
