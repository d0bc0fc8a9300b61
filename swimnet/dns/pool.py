"""`ResolverPool`: the agent's handle on DNS: one resolver per container namespace.

    async with open_resolver_pool(index.view, metrics=metrics) as pool:
        await pool.attach("ctr1", "ep-1", "front")   # first endpoint: resolver starts
        await pool.attach("ctr1", "ep-2", "back")    # the container now sees both networks
        await pool.detach("ep-1")
        await pool.detach("ep-2")                    # last endpoint: resolver stops

Rules:
- a namespace's resolver runs while at least one endpoint is attached in it; its scope is
  the networks of its attached endpoints, in attach order (the first attached network
  answers a name several of them have);
- an endpoint id is attached at most once (attaching it again moves it); detaching an
  unknown id does nothing;
- a resolver that fails to start raises ResolverError from `attach` and leaves nothing
  attached for that endpoint; attach/detach are serialised (one lock);
- every resolver shares the pool's view callable, upstreams, metrics and config.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from swimnet.dns.limits import ResolverConfig
from swimnet.dns.metrics import DnsMetrics
from swimnet.dns.names import NamesView
from swimnet.dns.server import ResolverService
from swimnet.dns.upstream import Upstreams


class ResolverPool:
    def __init__(
        self,
        nursery: trio.Nursery,
        view: Callable[[], NamesView],
        *,
        config: ResolverConfig | None = None,
        upstreams: Upstreams | None = None,
        metrics: DnsMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._nursery = nursery
        self.view = view
        self.config = config or ResolverConfig()
        self.upstreams = upstreams or Upstreams()
        self.metrics = metrics or DnsMetrics()
        self.rng = rng or random.Random()
        self._lock = trio.Lock()
        self._services: dict[str, ResolverService] = {}
        self._endpoints: dict[str, dict[str, str]] = {}
        """netns -> endpoint id -> network, in attach order."""
        self._where: dict[str, str] = {}
        """endpoint id -> netns."""
        self._scopes: dict[str, tuple[str, ...]] = {}
        """netns -> its networks (read by every query: computed on attach / detach)."""

    def networks_of(self, netns: str) -> tuple[str, ...]:
        """The networks a container's queries are scoped to (attach order, no repeats)."""
        return self._scopes.get(netns, ())

    def _rescope(self, netns: str) -> None:
        attached = self._endpoints.get(netns)
        if attached:
            self._scopes[netns] = tuple(dict.fromkeys(attached.values()))
        else:
            self._scopes.pop(netns, None)

    def services(self) -> dict[str, ResolverService]:
        return dict(self._services)

    async def attach(self, netns: str, endpoint_id: str, network: str) -> ResolverService:
        """Record the endpoint; start the namespace's resolver if it is the first one."""
        async with self._lock:
            if endpoint_id in self._where and self._where[endpoint_id] != netns:
                await self._detach(endpoint_id)
            service = self._services.get(netns)
            if service is None:
                service = ResolverService(
                    netns,
                    self.view,
                    lambda: self.networks_of(netns),
                    config=self.config,
                    upstreams=self.upstreams,
                    metrics=self.metrics,
                    rng=self.rng,
                )
                await self._nursery.start(service.serve)
                self._services[netns] = service
            self._endpoints.setdefault(netns, {})[endpoint_id] = network
            self._where[endpoint_id] = netns
            self._rescope(netns)
            return service

    async def detach(self, endpoint_id: str) -> None:
        """Forget the endpoint; stop its namespace's resolver if it was the last one."""
        async with self._lock:
            await self._detach(endpoint_id)

    async def _detach(self, endpoint_id: str) -> None:
        netns = self._where.pop(endpoint_id, None)
        if netns is None:
            return
        attached = self._endpoints.get(netns, {})
        attached.pop(endpoint_id, None)
        self._rescope(netns)
        if attached:
            return
        self._endpoints.pop(netns, None)
        service = self._services.pop(netns, None)
        if service is not None:
            await service.aclose()

    async def aclose(self) -> None:
        """Stop every resolver."""
        async with self._lock:
            for endpoint_id in list(self._where):
                await self._detach(endpoint_id)


@contextlib.asynccontextmanager
async def open_resolver_pool(view: Callable[[], NamesView], **kwargs: Any) -> AsyncIterator[ResolverPool]:
    """A `ResolverPool` whose resolvers all stop when the block ends."""
    async with trio.open_nursery() as nursery:
        pool = ResolverPool(nursery, view, **kwargs)
        try:
            yield pool
        finally:
            with trio.CancelScope(shield=True):
                await pool.aclose()
