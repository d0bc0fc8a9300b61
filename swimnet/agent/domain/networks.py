"""Network operations: create, list, inspect, remove (the cluster-wide networks table).

Rules:
- a network is one entry of CLUSTER_SCOPE/"networks" keyed by its name; `created` is the
  Lamport time of the creating write (the table clock + 1: greater than every table event
  this agent has seen, so networks created after one another order the same everywhere;
  concurrent creations tie-break by name in `assign_vnis`);
- the VNI is the requested one unless an older network holds it, else the lowest free
  VNI >= 4096 from a hash of the name (`assign_vnis`); a request for a VNI this agent already
  sees in use is refused (409); two agents racing for one VNI are resolved by
  `assign_vnis` identically everywhere and `inspect` reports `vni_collision`;
- a name already in use is refused (409); a concurrent create of the same name on two
  agents keeps the later write (Lamport order), as any table entry;
- remove is refused (409) while the network has endpoints or services anywhere: the agent
  holds the network's scope for the check (joining it for the moment if needed) and leaves
  it again afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

from swimnet.agent import checks
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.errors import conflict, not_found
from swimnet.agent.fields import Body
from swimnet.agent.http.answers import endpoint_json, network_json, service_json
from swimnet.agent.logs import LOGGER, event
from swimnet.overlay import CLUSTER_SCOPE, NETWORKS_TABLE, NetworkRecord

log = logging.getLogger(LOGGER)


def _describe(agent: OverlayAgent, record: NetworkRecord, owner: str) -> dict[str, Any]:
    vnis, collisions = agent.view.vnis()
    held = agent.view.is_held(record.name)
    out = network_json(record, owner, vnis.get(record.name), held=held, collision=record.name in collisions)
    out["endpoints"] = len(agent.view.endpoints(record.name)) if held else None
    out["local_endpoints"] = sum(1 for s in agent.local.values() if s.network == record.name)
    return out


async def create(agent: OverlayAgent, body: Body) -> dict[str, Any]:
    name = checks.name(body.text("name", required=True) or "")
    subnet = checks.subnet(body.text("subnet", required=True) or "")
    gateway_text = body.text("gateway")
    vni = body.integer("vni")
    mtu = body.integer("mtu")
    options = body.string_map("options") or {}
    body.done()
    gateway = str(checks.host_in(gateway_text, subnet, "gateway").ip) if gateway_text else None
    if vni is not None:
        checks.vni(vni)
    if mtu is not None:
        checks.mtu(mtu)
    async with agent.lock:
        networks = agent.view.networks()
        if name in networks:
            raise conflict(f"name: network {name!r} already exists", "name")
        if vni is not None:
            effective, _ = agent.view.vnis()
            users = sorted(n for n, v in effective.items() if v == vni)
            if users:
                raise conflict(f"vni: {vni} is used by network {users[0]!r}", "vni")
        state = agent.view.state
        record = NetworkRecord(
            name=name,
            subnet=str(subnet),
            vni=vni,
            gateway=gateway,
            mtu=mtu if mtu is not None else 1450,
            options=options,
            created=state.table_clock.time + 1,
        )
        await agent.node.table(CLUSTER_SCOPE, NETWORKS_TABLE).put(name, record.encode())
        described = _describe(agent, record, agent.me)
        event(
            log,
            "network created",
            event="network_created",
            network=name,
            subnet=record.subnet,
            vni=described["vni"],
        )
    agent.wake()
    return described


def listing(agent: OverlayAgent) -> list[dict[str, Any]]:
    return [_describe(agent, record, owner) for _, (record, owner) in sorted(agent.view.networks().items())]


def inspect(agent: OverlayAgent, name: str) -> dict[str, Any]:
    found = agent.view.networks().get(name)
    if found is None:
        raise not_found(f"network {name!r} not found", "name")
    record, owner = found
    out = _describe(agent, record, owner)
    attachments = agent.view.state.attachments.of_network(name)
    out["agents"] = sorted(n for n, a in attachments.items() if not a.leaving)
    if out["held"]:
        conflicts = agent.conflicts.get(name, [])
        flagged = {i for c in conflicts for i, _ in c.endpoints}
        out["endpoint_list"] = [
            endpoint_json(i, name, r, o, local=agent.local.get(i), conflict=i in flagged)
            for i, r, o in agent.view.endpoints(name)
        ]
        out["services"] = [service_json(name, r, o) for _, r, o in agent.view.services(name)]
        out["conflicts"] = [c.to_json() for c in conflicts]
    else:
        out["endpoint_list"] = None
        out["services"] = None
        out["conflicts"] = None
    return out


async def remove(agent: OverlayAgent, name: str) -> dict[str, Any]:
    async with agent.lock:
        if agent.view.network(name) is None:
            raise not_found(f"network {name!r} not found", "name")
        mine = sorted(s.name for s in agent.local.values() if s.network == name)
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
            await agent.node.table(CLUSTER_SCOPE, NETWORKS_TABLE).delete(name)
        finally:
            if joined_now:
                await agent.release(name)
        event(log, "network removed", event="network_removed", network=name)
    agent.wake()
    return {"removed": name}
