"""The agent's embedded DNS: the names index kept equal to the tables, the per-container
resolvers (the `dns` operation, resolving as a container would, is `dns_ops`).

    dns = AgentDns(cluster)          # owned by the OverlayAgent (`agent.dns`)
    dns.load(); dns.apply(change)    # from the overlay's table subscription
    dns.resolvers = pool             # the daemon's ResolverPool (datapath on only)
    await dns.attach(spec) / await dns.detach(spec)

Rules:
- the index (`swimnet.dns.NamesIndex`) is loaded from the node's tables (through the
  `Cluster`) when the overlay's table subscription opens, with no await in between, so no
  change is missed; again whenever the subscription dropped changes; every TableChange the
  overlay receives is applied; a network scope the agent leaves is forgotten;
- resolvers: `resolvers` is the daemon's pool (`swimnet.dns.pool.ResolverPool`; None
  without a datapath): a local endpoint with a netns or pid joins its container's resolver
  once the datapath attached it, and leaves it when the datapath detached it; a resolver
  that fails to start, or has not started within `attach_timeout` (`ATTACH_TIMEOUT`: the
  bound is real, a start stuck in a worker thread is abandoned and undone by that thread
  when it ends, see `swimnet.dns.server`), is logged and counted (`dns_attach_failures`),
  never fatal; a hand-off endpoint (`handoff`: Docker's) gets none here: its runtime
  serves its DNS;
- the counters (`metrics`, a `swimnet.dns.DnsMetrics`) are shared by every resolver and
  exported by the daemon's metrics;
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Protocol

import trio

from swimnet.agent.domain.cluster import Cluster
from swimnet.agent.logs import LOGGER, event
from swimnet.dns import DnsMetrics, NamesIndex
from swimnet.errors import SwimnetError
from swimnet.overlay import LocalEndpointSpec
from swimnet.tables.changes import TableChange

log = logging.getLogger(LOGGER)

QTYPES = ("A", "AAAA", "PTR")
ATTACH_TIMEOUT = 10.0
"""A container's resolver that has not started by then is given up (counted and logged): an
endpoint operation never waits on DNS longer than this."""


class ResolverPoolProtocol(Protocol):
    """What the agent asks of the resolver pool (`swimnet.dns.pool.ResolverPool`)."""

    async def attach(self, netns: str, endpoint_id: str, network: str) -> object: ...

    async def detach(self, endpoint_id: str) -> None: ...

    def networks_of(self, netns: str) -> tuple[str, ...]: ...


def container_of(spec: LocalEndpointSpec) -> str | None:
    """The namespace a resolver serves an endpoint's container in (None: no container)."""
    if spec.netns:
        return spec.netns
    if spec.pid:
        return f"/proc/{spec.pid}/ns/net"
    return None


class AgentDns:
    def __init__(
        self, cluster: Cluster, stats: Counter[str], *, attach_timeout: float = ATTACH_TIMEOUT
    ) -> None:
        self.cluster = cluster
        self.attach_timeout = attach_timeout
        self.stats = stats
        """The overlay agent's counters (`dns_attaches`, `dns_attach_failures`)."""
        self.index = NamesIndex()
        self.metrics = DnsMetrics()
        self.resolvers: ResolverPoolProtocol | None = None

    # -- the index ------------------------------------------------------------------------

    def load(self) -> None:
        self.index.load_tables(self.cluster.tables)

    def apply(self, change: TableChange) -> None:
        self.index.apply(change)

    def forget(self, network: str) -> None:
        self.index.forget(network)

    # -- resolvers ------------------------------------------------------------------------

    async def attach(self, spec: LocalEndpointSpec) -> None:
        netns = container_of(spec)
        if self.resolvers is None or netns is None or spec.handoff is not None:
            return  # a hand-off endpoint's runtime serves its DNS (the Docker plugin does)
        error: str | None = None
        try:
            with trio.move_on_after(self.attach_timeout) as bound:
                await self.resolvers.attach(netns, spec.endpoint_id, spec.network)
            if bound.cancelled_caught:
                error = f"the resolver did not start within {self.attach_timeout:g} s"
        except (SwimnetError, OSError) as exc:
            error = str(exc)
        if error is None:
            self.stats["dns_attaches"] += 1
            return
        self.stats["dns_attach_failures"] += 1
        event(
            log,
            "dns resolver not started",
            level=logging.ERROR,
            event="dns_attach_failed",
            endpoint=spec.endpoint_id,
            netns=netns,
            error=error,
        )

    async def detach(self, spec: LocalEndpointSpec) -> None:
        if self.resolvers is not None:
            await self.resolvers.detach(spec.endpoint_id)
