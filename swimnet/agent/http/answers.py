"""The JSON shapes of the control API's answers (one function per resource).

Rules: every answer is plain JSON (str, int, float, bool, None, lists, objects); values come
from records and the tables, never from key material; field names are stable (the CLI and
scripts read them).
"""

from __future__ import annotations

from typing import Any

from swimnet.config import format_address
from swimnet.membership.member import Member
from swimnet.overlay import EndpointRecord, LocalEndpointSpec, NetworkRecord, ServiceRecord
from swimnet.security.keyops import KeyOpResult

Json = dict[str, Any]


def network_json(record: NetworkRecord, owner: str, vni: int | None, *, held: bool, collision: bool) -> Json:
    return {
        "name": record.name,
        "subnet": record.subnet,
        "gateway": record.gateway,
        "mtu": record.mtu,
        "vni": vni,
        "vni_requested": record.vni,
        "vni_collision": collision,
        "options": dict(record.options),
        "created": record.created,
        "owner": owner,
        "held": held,
    }


def endpoint_json(
    endpoint_id: str,
    network: str,
    record: EndpointRecord,
    owner: str,
    *,
    local: LocalEndpointSpec | None = None,
    conflict: bool = False,
) -> Json:
    out: Json = {
        "id": endpoint_id,
        "network": network,
        "name": record.name,
        "ip": record.ip,
        "mac": record.mac,
        "vtep": record.vtep,
        "owner": owner,
        "local": local is not None,
        "conflict": conflict,
    }
    if local is not None:
        out.update(netns=local.netns, pid=local.pid, ifname=local.ifname)
    return out


def local_endpoint_json(spec: LocalEndpointSpec, vtep: str, owner: str, *, published: bool) -> Json:
    return {
        "id": spec.endpoint_id,
        "network": spec.network,
        "name": spec.name,
        "ip": spec.ip,
        "mac": spec.mac,
        "vtep": vtep,
        "owner": owner,
        "local": True,
        "conflict": False,
        "netns": spec.netns,
        "pid": spec.pid,
        "ifname": spec.ifname,
        "published": published,
    }


def service_json(network: str, record: ServiceRecord, owner: str) -> Json:
    return {
        "name": record.name,
        "network": network,
        "vip": record.vip,
        "mode": record.mode,
        "ports": [{"protocol": p, "published": a, "target": b} for p, a, b in record.ports],
        "backends": list(record.backends),
        "owner": owner,
    }


def member_json(member: Member, rtt: float | None, *, local: bool) -> Json:
    return {
        "name": member.name,
        "address": format_address(member.address),
        "state": member.state.label,
        "incarnation": member.incarnation,
        "rtt_ms": None if rtt is None else round(rtt * 1000.0, 3),
        "local": local,
    }


def key_result_json(result: KeyOpResult) -> Json:
    return {
        "action": result.action,
        "key_id": result.key_id,
        "ok": result.ok,
        "acked": list(result.acked),
        "failed": dict(result.failed),
        "missing": list(result.missing),
    }
