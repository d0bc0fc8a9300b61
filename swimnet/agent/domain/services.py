"""Service operations: create, update, list, remove (the per-network services tables).

Rules:
- a service is one entry of <network>/"services" keyed by its name: VIP (vip mode; none in
  dnsrr mode), ports (protocol, published, target) and backend endpoint ids; backends may
  be given by endpoint id or by name (unique in the network) and are stored as ids;
- the agent holds the network's scope to create, update or remove a service there (the
  checks see the network's endpoints and services after the first sync) and keeps holding
  it while it owns the entry (see `overlay_agent`); the entry outlives its writer: when the
  writer leaves or fails, another agent of the network adopts it (`adoption`);
- checks before any change: fields (400), network exists (404), name free on create / the
  service exists on update and remove (409 / 404), VIP inside the subnet and used by no
  endpoint, gateway or other service (400 / 409), every backend an endpoint of the network
  (400);
- update replaces only the fields given (`backends` replaces the whole list).
"""

from __future__ import annotations

import logging
from typing import Any

from swimnet.agent import checks
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.errors import bad_request, conflict, not_found
from swimnet.agent.fields import Body
from swimnet.agent.http.answers import service_json
from swimnet.agent.logs import LOGGER, event
from swimnet.overlay import SERVICES_TABLE, NetworkRecord, ServiceRecord

log = logging.getLogger(LOGGER)


class _Fields:
    """The service fields of a request body (None: not given)."""

    def __init__(self, body: Body, *, creating: bool) -> None:
        self.name = checks.name(body.text("name", required=True) or "") if creating else None
        self.vip = body.text("vip")
        self.vip_given = body.has("vip")
        mode = body.text("mode")
        if mode is not None and mode not in ("vip", "dnsrr"):
            raise bad_request(f"mode: must be vip or dnsrr, got {mode!r}", "mode")
        self.mode = mode
        ports = body.objects("ports")
        self.ports = None if ports is None else tuple(_port(p) for p in ports)
        self.backends = body.texts("backends")
        body.done()


def _port(item: dict[str, Any]) -> tuple[str, int, int]:
    unknown = sorted(set(item) - {"protocol", "published", "target"})
    if unknown:
        raise bad_request(f"ports: unknown field {unknown[0]!r}", "ports")
    proto = item.get("protocol", "tcp")
    published, target = item.get("published"), item.get("target", item.get("published"))
    if type(proto) is not str or type(published) is not int or type(target) is not int:
        raise bad_request('ports: expected {"protocol": tcp|udp, "published": int, "target": int}', "ports")
    return checks.port_mapping(proto, published, target)


def _resolve_backends(agent: OverlayAgent, network: str, refs: list[str]) -> tuple[str, ...]:
    endpoints = agent.view.endpoints(network)
    ids = {endpoint_id for endpoint_id, _, _ in endpoints}
    out: list[str] = []
    for ref in refs:
        if ref in ids:
            out.append(ref)
            continue
        named = [endpoint_id for endpoint_id, record, _ in endpoints if record.name == ref]
        if len(named) != 1:
            why = "is ambiguous" if named else "is not an endpoint"
            raise bad_request(f"backends: {ref!r} {why} of network {network!r}", "backends")
        out.append(named[0])
    return tuple(dict.fromkeys(out))


def _check_vip(agent: OverlayAgent, record: NetworkRecord, service: str, vip: str | None) -> str | None:
    if vip is None:
        return None
    address = str(checks.host_in(vip, checks.subnet(record.subnet), "vip").ip)
    if address == record.gateway:
        raise conflict(f"vip: {address} is the gateway of network {record.name!r}", "vip")
    for endpoint_id, endpoint, owner in agent.view.endpoints(record.name):
        if endpoint.address == address:
            raise conflict(
                f"vip: {address} is used by endpoint {endpoint.name!r} ({endpoint_id}) on {owner}", "vip"
            )
    for name, other, _ in agent.view.services(record.name):
        if name != service and other.vip == address:
            raise conflict(f"vip: {address} is the VIP of service {name!r}", "vip")
    return address


def _build(
    agent: OverlayAgent, record: NetworkRecord, name: str, fields: _Fields, old: ServiceRecord | None
) -> ServiceRecord:
    mode = fields.mode or (old.mode if old is not None else "vip")
    if fields.vip_given:
        vip = fields.vip
    elif old is not None and mode == old.mode:
        vip = old.vip
    else:
        vip = None
    if mode == "vip" and vip is None:
        raise bad_request("vip: required in vip mode", "vip")
    if mode == "dnsrr" and vip is not None:
        raise bad_request("vip: dnsrr services have no VIP", "vip")
    vip = _check_vip(agent, record, name, vip)
    ports = fields.ports if fields.ports is not None else (old.ports if old is not None else ())
    if fields.backends is not None:
        backends = _resolve_backends(agent, record.name, fields.backends)
    else:
        backends = old.backends if old is not None else ()
    extra = dict(old.extra) if old is not None else {}
    return ServiceRecord(name=name, vip=vip, mode=mode, ports=ports, backends=backends, extra=extra)


def _network(agent: OverlayAgent, network: str) -> NetworkRecord:
    record = agent.view.network(network)
    if record is None:
        raise not_found(f"network {network!r} not found", "network")
    return record


def _current(agent: OverlayAgent, network: str, name: str) -> ServiceRecord | None:
    for key, record, _ in agent.view.services(network):
        if key == name:
            return record
    return None


async def create(agent: OverlayAgent, network: str, body: Body) -> dict[str, Any]:
    fields = _Fields(body, creating=True)
    assert fields.name is not None
    async with agent.lock:
        record = _network(agent, network)
        joined_now = await agent.hold(network)
        try:
            if _current(agent, network, fields.name) is not None:
                raise conflict(f"name: network {network!r} already has a service {fields.name!r}", "name")
            service = _build(agent, record, fields.name, fields, None)
            await agent.node.table(network, SERVICES_TABLE).put(service.name, service.encode())
        except BaseException:
            if joined_now:
                await agent.release(network)
            raise
        event(
            log,
            "service created",
            event="service_created",
            network=network,
            service=service.name,
            vip=service.vip,
        )
    agent.wake()
    return service_json(network, service, agent.me)


async def update(agent: OverlayAgent, network: str, name: str, body: Body) -> dict[str, Any]:
    fields = _Fields(body, creating=False)
    async with agent.lock:
        record = _network(agent, network)
        joined_now = await agent.hold(network)
        try:
            old = _current(agent, network, name)
            if old is None:
                raise not_found(f"service {name!r} not found in network {network!r}", "name")
            service = _build(agent, record, name, fields, old)
            await agent.node.table(network, SERVICES_TABLE).put(name, service.encode())
        except BaseException:
            if joined_now:
                await agent.release(network)
            raise
        event(log, "service updated", event="service_updated", network=network, service=name)
    agent.wake()
    return service_json(network, service, agent.me)


def listing(agent: OverlayAgent, network: str | None) -> dict[str, Any]:
    if network is not None and agent.view.network(network) is None:
        raise not_found(f"network {network!r} not found", "network")
    held = [n for n in agent.view.held() if network is None or n == network]
    rows = [service_json(n, r, o) for n in held for _, r, o in agent.view.services(n)]
    not_held = sorted(n for n in agent.view.networks() if n not in held and (network is None or n == network))
    return {"services": rows, "not_held": not_held}


def inspect(agent: OverlayAgent, network: str, name: str) -> dict[str, Any]:
    _network(agent, network)
    for key, record, owner in agent.view.services(network):
        if key == name:
            return service_json(network, record, owner)
    raise not_found(f"service {name!r} not found in network {network!r}", "name")


async def remove(agent: OverlayAgent, network: str, name: str) -> dict[str, Any]:
    async with agent.lock:
        _network(agent, network)
        joined_now = await agent.hold(network)
        try:
            if _current(agent, network, name) is None:
                raise not_found(f"service {name!r} not found in network {network!r}", "name")
            await agent.node.table(network, SERVICES_TABLE).delete(name)
        except BaseException:
            if joined_now:
                await agent.release(network)
            raise
        event(log, "service removed", event="service_removed", network=network, service=name)
    agent.wake()
    return {"removed": name, "network": network}
