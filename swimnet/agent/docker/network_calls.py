"""The plugin's network calls: CreateNetwork records a Docker network on its pool,
DeleteNetwork forgets it (`docker network rm` ends this host's use: the swimnet network
stays for the other hosts; `swimnet-agent network rm` removes it cluster-wide).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swimnet.agent.docker import protocol as p
from swimnet.agent.docker import state as st
from swimnet.agent.docker.binding import NetworkBinding
from swimnet.agent.docker.core import ADDRESS_SPACE
from swimnet.agent.docker.refusals import Answer, Refused, bare


class NetworkCalls(NetworkBinding):
    async def _create_network(self, body: Mapping[str, Any]) -> Answer:
        req = p.CreateNetwork.decode(body)
        if req.ipv6:
            raise Refused("IPv6 is not supported")
        if req.network_id in self.state.networks:
            raise Refused(f"network {req.network_id[:12]} exists already")
        if len(req.ipv4) != 1:
            raise Refused("a swimnet network has exactly one IPv4 subnet")
        data = req.ipv4[0]
        pool_id = f"{ADDRESS_SPACE}/{data.pool}"
        pool = self.state.pools.get(pool_id)
        if pool is None or data.address_space != ADDRESS_SPACE:
            raise Refused("swimnet networks take their addresses from swimnet: add --ipam-driver swimnet")
        if pool.network_id is not None:
            raise Refused(f"pool {pool_id!r} is used by network {pool.network_id[:12]}")
        if data.gateway and bare(data.gateway) != pool.gateway:
            raise Refused(f"gateway {data.gateway} is not the pool's ({pool.gateway})")
        pool.network_id = req.network_id
        self.state.networks[req.network_id] = st.Network(
            pool_id, options=dict(req.options), created=self.clock()
        )
        self.save()
        return {}

    async def _delete_network(self, body: Mapping[str, Any]) -> Answer:
        req = p.NetworkRef.decode(body)
        network = self._network(req.network_id)
        used = [e for e, ep in self.state.endpoints.items() if ep.network_id == req.network_id]
        if used:
            raise Refused(f"network {req.network_id[:12]} still has endpoint {used[0][:12]}")
        del self.state.networks[req.network_id]
        pool = self.state.pools.get(network.pool_id)
        if pool is not None:
            pool.network_id = None
        self.save()
        return {}

    def forget_network(self, network_id: str) -> None:
        """Forget a network Docker no longer knows, and its pool (the caller saves)."""
        network = self.state.networks.pop(network_id)
        self.state.pools.pop(network.pool_id, None)
