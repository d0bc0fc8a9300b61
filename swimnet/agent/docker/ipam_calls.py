"""The plugin's IPAM driver calls (libnetwork's remote IPAM).

Rules: a pool is a subnet (given with `--subnet`, else the first /24 of DEFAULT_POOLS that
no swimnet network nor pool of this host uses); one pool per subnet on a host; the gateway
is the one asked for, else the subnet's first host address (Docker's rule, so every host of
a network agrees without being told); endpoint addresses come from the `AddressSource`
(the cluster-wide IPAM), `--ip` pins one; an address is asked for once the pool's network
is bound (`binding`); a record that cannot be saved gives the address back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from swimnet import values
from swimnet.agent.docker import protocol as p
from swimnet.agent.docker import state as st
from swimnet.agent.docker.binding import NetworkBinding
from swimnet.agent.docker.core import ADDRESS_SPACE
from swimnet.agent.docker.refusals import Answer, Refused, bare, parsed, with_prefix

DEFAULT_POOLS = "10.224.0.0/12"
"""Where a pool is picked when `docker network create` gives no subnet (/24 each)."""
DEFAULT_PREFIX = 24


class IpamCalls(NetworkBinding):
    async def _ipam_capabilities(self, body: Mapping[str, Any]) -> Answer:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    async def _address_spaces(self, body: Mapping[str, Any]) -> Answer:
        return {"LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": ADDRESS_SPACE}

    async def _request_pool(self, body: Mapping[str, Any]) -> Answer:
        req = p.RequestPool.decode(body)
        if req.v6:
            raise Refused("IPv6 pools are not supported")
        if req.address_space not in ("", ADDRESS_SPACE):
            raise Refused(f"unknown address space {req.address_space!r} (swimnet has {ADDRESS_SPACE!r})")
        if req.sub_pool:
            raise Refused("--ip-range is not supported: the whole subnet is the network's")
        if req.options:
            raise Refused(f"unknown IPAM option {sorted(req.options)[0]!r}")
        subnet = str(parsed(values.subnet, req.pool, "subnet")) if req.pool else self._free_subnet()
        pool_id = f"{ADDRESS_SPACE}/{subnet}"
        if pool_id in self.state.pools:
            raise Refused(f"subnet {subnet} is already used by a Docker network of this host")
        self.state.pools[pool_id] = st.Pool(subnet)
        self.save()
        return {"PoolID": pool_id, "Pool": subnet, "Data": {}}

    def _free_subnet(self) -> str:
        used = [ipaddress.IPv4Network(pool.subnet) for pool in self.state.pools.values()]
        used += [ipaddress.IPv4Network(r.subnet) for r, _ in self.ops.overlay.view.networks().values()]
        for candidate in ipaddress.IPv4Network(DEFAULT_POOLS).subnets(new_prefix=DEFAULT_PREFIX):
            if not any(candidate.overlaps(net) for net in used):
                return str(candidate)
        raise Refused(f"no free /{DEFAULT_PREFIX} left in {DEFAULT_POOLS}: give --subnet")

    async def _release_pool(self, body: Mapping[str, Any]) -> Answer:
        req = p.PoolRef.decode(body)
        pool = self._pool(req.pool_id)
        if pool.network_id is not None and pool.network_id in self.state.networks:
            raise Refused(f"pool {req.pool_id!r} is used by network {pool.network_id[:12]}")
        del self.state.pools[req.pool_id]
        self.save()
        return {}

    async def _request_address(self, body: Mapping[str, Any]) -> Answer:
        req = p.RequestAddress.decode(body)
        pool = self._pool(req.pool_id)
        net = ipaddress.IPv4Network(pool.subnet)
        wanted = str(parsed(values.host_in, req.address, net, "address").ip) if req.address else None
        if req.gateway:
            gateway = wanted or str(next(net.hosts()))
            if pool.gateway is not None and pool.gateway != gateway:
                raise Refused(f"pool {req.pool_id!r} already has gateway {pool.gateway}")
            pool.gateway = gateway
            self.save()
            return {"Address": with_prefix(gateway, pool.subnet), "Data": {}}
        if pool.network_id is None:
            raise Refused(f"pool {req.pool_id!r} has no network yet")
        name = await self._bind(pool.network_id)
        address = await self.addresses.request(name, wanted)
        pool.addresses.append(address)
        try:
            self.save()
        except OSError:
            pool.addresses.remove(address)
            await self.addresses.release(name, address)
            raise
        return {"Address": with_prefix(address, pool.subnet), "Data": {}}

    async def _release_address(self, body: Mapping[str, Any]) -> Answer:
        req = p.ReleaseAddress.decode(body)
        pool = self._pool(req.pool_id)
        address = bare(req.address)
        if address == pool.gateway:
            pool.gateway = None
        elif address in pool.addresses:
            pool.addresses.remove(address)
            network = self.state.networks.get(pool.network_id or "")
            if network is not None and network.name is not None:
                await self.addresses.release(network.name, address)
        else:
            raise Refused(f"address {address} is not allocated in pool {req.pool_id!r}")
        self.save()
        return {}
