"""Network operations: create, list, inspect, remove (the cluster-wide networks table).

Rules:
- a network is one entry of CLUSTER_SCOPE/"networks" keyed by its name; `created` is the
  Lamport time of the creating write (the table clock + 1: greater than every table event
  this agent has seen, so networks created after one another order the same everywhere;
  concurrent creations tie-break by name in `assign_vnis`);
- arguments are checked first (INVALID, naming the field): name, subnet (IPv4, network
  address, /30 or shorter), gateway (a host address of the subnet), vni, mtu, options (the
  whole definition must fit in one table value: `checks.encoded`);
- the VNI is the requested one unless an older network holds it, else the lowest free
  VNI >= 4096 from a hash of the name (`assign_vnis`); a request for a VNI this agent already
  sees in use is a CONFLICT; two agents racing for one VNI are resolved by `assign_vnis`
  identically everywhere and `inspect` reports the collision;
- a name already in use is a CONFLICT; a concurrent create of the same name on two agents
  keeps the later write (Lamport order), as any table entry;
- remove is a CONFLICT while the network has endpoints or services anywhere: the agent
  holds the network's scope for the check (joining it for the moment if needed) and leaves
  it again afterwards, whatever the outcome;
- listing is linear: the effective VNIs are computed once per request (the view caches them
  until the networks table changes), every row is O(1), and the listing lets other tasks
  run every LISTING_BATCH rows, so thousands of networks never hold the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from swimnet.agent import checks
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.values import EndpointInfo, NetworkDetail, NetworkInfo, ServiceInfo
from swimnet.agent.errors import conflict, not_found
from swimnet.agent.logs import LOGGER, event
from swimnet.overlay import CLUSTER_SCOPE, NETWORKS_TABLE, NetworkRecord

log = logging.getLogger(LOGGER)

DEFAULT_MTU = 1450
LISTING_BATCH = 250
"""Rows a listing describes between two checkpoints."""


class Networks:
    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def _describe(
        self,
        record: NetworkRecord,
        owner: str,
        vnis: tuple[Mapping[str, int], frozenset[str]] | None = None,
    ) -> NetworkInfo:
        """One network's row; `vnis`: the view's VNI assignment (read once per request)."""
        agent = self.agent
        effective, collisions = vnis if vnis is not None else agent.view.vnis()
        held = agent.view.is_held(record.name)
        return NetworkInfo(
            record=record,
            owner=owner,
            vni=effective.get(record.name),
            held=held,
            collision=record.name in collisions,
            endpoints=agent.view.endpoint_count(record.name) if held else None,
            local_endpoints=agent.local.count(record.name),
        )

    async def create(
        self,
        name: str,
        subnet: str,
        *,
        vni: int | None = None,
        gateway: str | None = None,
        mtu: int | None = None,
        options: Mapping[str, str] | None = None,
    ) -> NetworkInfo:
        agent = self.agent
        checks.name(name)
        net = checks.subnet(subnet)
        gateway_ip = str(checks.host_in(gateway, net, "gateway").ip) if gateway else None
        if vni is not None:
            checks.vni(vni)
        if mtu is not None:
            checks.mtu(mtu)
        options = checks.network_options(dict(options or {}))
        async with agent.lock:
            if name in agent.view.networks():
                raise conflict(f"name: network {name!r} already exists", "name")
            if vni is not None:
                effective, _ = agent.view.vnis()
                users = sorted(n for n, v in effective.items() if v == vni)
                if users:
                    raise conflict(f"vni: {vni} is used by network {users[0]!r}", "vni")
            record = NetworkRecord(
                name=name,
                subnet=str(net),
                vni=vni,
                gateway=gateway_ip,
                mtu=mtu if mtu is not None else DEFAULT_MTU,
                options=dict(options or {}),
                created=agent.cluster.table_clock() + 1,
            )
            value = checks.encoded(record, "options")
            await agent.cluster.put(CLUSTER_SCOPE, NETWORKS_TABLE, name, value)
            info = self._describe(record, agent.me)
            event(
                log,
                "network created",
                event="network_created",
                network=name,
                subnet=record.subnet,
                vni=info.vni,
            )
        agent.wake()
        return info

    async def listing(self) -> list[NetworkInfo]:
        """Every network, by name (see the module rules for its cost)."""
        view = self.agent.view
        rows = sorted(view.networks().items())
        vnis = view.vnis()
        out: list[NetworkInfo] = []
        for index, (_, (record, owner)) in enumerate(rows):
            if index and not index % LISTING_BATCH:
                await trio.lowlevel.checkpoint()
            out.append(self._describe(record, owner, vnis))
        return out

    def inspect(self, name: str) -> NetworkDetail:
        agent = self.agent
        found = agent.view.networks().get(name)
        if found is None:
            raise not_found(f"network {name!r} not found", "name")
        info = self._describe(*found)
        agents = agent.cluster.agents(name)
        if not info.held:
            return NetworkDetail(info, agents, endpoints=None, services=None, conflicts=None)
        conflicts = agent.conflicts.get(name, [])
        flagged = {i for c in conflicts for i, _ in c.endpoints}
        endpoints = [
            EndpointInfo(i, name, r, o, local=agent.local.get(i), conflict=i in flagged)
            for i, r, o in agent.view.endpoints(name)
        ]
        services = [ServiceInfo(name, r, o) for _, r, o in agent.view.services(name)]
        return NetworkDetail(info, agents, endpoints=endpoints, services=services, conflicts=list(conflicts))

    async def remove(self, name: str) -> None:
        agent = self.agent
        async with agent.lock:
            if agent.view.network(name) is None:
                raise not_found(f"network {name!r} not found", "name")
            mine = sorted(s.name for s in agent.local.in_network(name).values())
            if mine:
                raise conflict(f"network {name!r} has endpoints on this agent: {', '.join(mine)}", "name")
            joined_now = await agent.hold(name)
            try:
                endpoints = agent.view.endpoints(name)
                if endpoints:
                    shown = ", ".join(f"{r.name} on {o}" for _, r, o in endpoints[:5])
                    more = f" and {len(endpoints) - 5} more" if len(endpoints) > 5 else ""
                    raise conflict(f"network {name!r} has endpoints: {shown}{more}", "name")
                services = agent.view.services(name)
                if services:
                    shown = ", ".join(k for k, _, _ in services[:5])
                    raise conflict(f"network {name!r} has services: {shown}", "name")
                await agent.cluster.delete(CLUSTER_SCOPE, NETWORKS_TABLE, name)
            finally:
                if joined_now:
                    await agent.release(name)
            event(log, "network removed", event="network_removed", network=name)
        agent.wake()
