"""The plugin's endpoint calls.

Rules: CreateEndpoint records the address and the MAC (`--mac-address`, else the network's
rule `mac_from_ip`, answered to Docker); Join creates the swimnet endpoint, named as the
container, in the sandbox `SandboxKey` with a hand-off veth (`vh` + the endpoint id's first
12 characters) that Docker moves into the container, answers the gateway and starts the
container's names (`container_names`); Leave removes the swimnet endpoint cluster-wide;
DeleteEndpoint forgets it (and removes it if Leave never came); a save that fails after
Join undoes the endpoint. DiscoverNew/DiscoverDelete and Program/RevokeExternalConnectivity
change nothing (swimnet learns its peers by gossip; external connectivity is not an
overlay's business): they answer `{}` to a well-formed body (Program/Revoke: for a known
endpoint).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from swimnet import values
from swimnet.agent.docker import protocol as p
from swimnet.agent.docker import state as st
from swimnet.agent.docker.binding import NetworkBinding
from swimnet.agent.docker.container_names import ContainerNames
from swimnet.agent.docker.refusals import Answer, Refused, bare, parsed, with_prefix
from swimnet.agent.errors import ErrorKind, OperationError
from swimnet.overlay import mac_from_ip

HANDOFF_PREFIX = "vh"
DST_PREFIX = "eth"


def handoff_name(endpoint_id: str) -> str:
    return f"{HANDOFF_PREFIX}{endpoint_id[:12]}"


class EndpointCalls(ContainerNames, NetworkBinding):
    async def _create_endpoint(self, body: Mapping[str, Any]) -> Answer:
        req = p.CreateEndpoint.decode(body)
        network = self._network(req.network_id)
        pool = self._pool(network.pool_id)
        if req.endpoint_id in self.state.endpoints:
            raise Refused(f"endpoint {req.endpoint_id[:12]} exists already")
        if req.address_v6:
            raise Refused("IPv6 is not supported")
        if not req.address:
            raise Refused("the endpoint has no IPv4 address (use --ipam-driver swimnet)")
        iface = parsed(values.host_in, req.address, ipaddress.IPv4Network(pool.subnet), "address")
        if str(iface.ip) not in pool.addresses:
            raise Refused(f"address {iface.ip} was not handed out by swimnet's IPAM")
        mac = parsed(values.mac, req.mac, "mac") if req.mac else mac_from_ip(str(iface.ip))
        await self._bind(req.network_id)
        self.state.endpoints[req.endpoint_id] = st.Endpoint(
            req.network_id, with_prefix(str(iface.ip), pool.subnet), mac, self.clock()
        )
        self.save()
        return {"Interface": {} if req.mac else {"MacAddress": mac}}

    async def _endpoint_info(self, body: Mapping[str, Any]) -> Answer:
        endpoint = self._endpoint(p.EndpointRef.decode(body))
        name = self._network(endpoint.network_id).name
        value = {"swimnet_network": name, "ip": endpoint.ip, "mac": endpoint.mac}
        if endpoint.swimnet_id is not None:
            value["swimnet_endpoint"] = endpoint.swimnet_id
        return {"Value": value}

    async def _join(self, body: Mapping[str, Any]) -> Answer:
        req = p.Join.decode(body)
        ref = p.EndpointRef(req.network_id, req.endpoint_id)
        endpoint = self._endpoint(ref)
        if endpoint.swimnet_id is not None:
            raise Refused(f"endpoint {req.endpoint_id[:12]} is joined already")
        name = await self._bind(req.network_id)
        docker = await self.docker.network(req.network_id)
        container = docker.endpoints.get(req.endpoint_id) if docker is not None else None
        if container is None:
            raise Refused(f"dockerd does not list endpoint {req.endpoint_id[:12]} (no container name)")
        created = await self.ops.endpoints.create(
            name,
            parsed(values.name, container, "container name"),
            endpoint.ip,
            mac=endpoint.mac,
            netns=parsed(values.netns_name, req.sandbox_key, "SandboxKey"),
            handoff=handoff_name(req.endpoint_id),
        )
        endpoint.swimnet_id = created.spec.endpoint_id
        endpoint.sandbox = req.sandbox_key
        try:
            self.save()
        except OSError:
            await self.ops.endpoints.remove(created.spec.endpoint_id)
            endpoint.swimnet_id = endpoint.sandbox = None
            raise
        self.serve_names(req.endpoint_id)
        gateway = self._pool(self._network(req.network_id).pool_id).gateway
        interface = {"SrcName": handoff_name(req.endpoint_id), "DstPrefix": DST_PREFIX}
        answer: Answer = {"InterfaceName": interface}
        if gateway:
            answer["Gateway"] = gateway
        return answer

    async def _leave(self, body: Mapping[str, Any]) -> Answer:
        ref = p.EndpointRef.decode(body)
        endpoint = self._endpoint(ref)
        if endpoint.swimnet_id is None:
            raise Refused(f"endpoint {ref.endpoint_id[:12]} is not joined")
        await self._unpublish(endpoint)
        self.save()
        return {}

    async def _unpublish(self, endpoint: st.Endpoint) -> None:
        """Remove the endpoint's swimnet endpoint (already gone: fine)."""
        if endpoint.swimnet_id is None:
            return
        try:
            await self.ops.endpoints.remove(endpoint.swimnet_id)
        except OperationError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                raise
        if self.resolvers is not None:
            await self.resolvers.detach(endpoint.swimnet_id)
        endpoint.swimnet_id = endpoint.sandbox = None

    async def _delete_endpoint(self, body: Mapping[str, Any]) -> Answer:
        ref = p.EndpointRef.decode(body)
        endpoint = self._endpoint(ref)
        await self._unpublish(endpoint)
        del self.state.endpoints[ref.endpoint_id]
        self.save()
        return {}

    async def forget_endpoint(self, endpoint_id: str) -> None:
        """Remove an endpoint Docker no longer knows (the reconcile; the caller holds the
        lock and saves): its swimnet endpoint, its record, its address."""
        endpoint = self.state.endpoints[endpoint_id]
        await self._unpublish(endpoint)
        del self.state.endpoints[endpoint_id]
        network = self.state.networks.get(endpoint.network_id)
        pool = self.state.pools.get(network.pool_id) if network is not None else None
        address = bare(endpoint.ip)
        if network is not None and pool is not None and address in pool.addresses:
            pool.addresses.remove(address)
            if network.name is not None:
                await self.addresses.release(network.name, address)

    async def _discover(self, body: Mapping[str, Any]) -> Answer:
        p.Discovery.decode(body)
        return {}

    async def _external(self, body: Mapping[str, Any]) -> Answer:
        self._endpoint(p.EndpointRef.decode(body))
        return {}
