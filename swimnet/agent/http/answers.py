"""The JSON shapes of the control API's answers (one function per resource), from the
domain's values.

Rules: every answer is plain JSON (str, int, float, bool, None, lists, objects); values come
from records and the tables, never from key material; field names are stable (the CLI and
scripts read them); table values that do not decode are shown as base64 (`raw`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import attrs

from swimnet.agent.domain.cluster import TablesDump
from swimnet.agent.domain.conflicts import Conflict
from swimnet.agent.domain.dns_ops import DnsAnswer
from swimnet.agent.domain.values import (
    EndpointInfo,
    EndpointListing,
    LocalEndpointInfo,
    MemberInfo,
    NetworkDetail,
    NetworkInfo,
    ServiceDetail,
    ServiceInfo,
    ServiceListing,
)
from swimnet.config import format_address
from swimnet.errors import DecodeError
from swimnet.overlay import (
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
    LocalEndpointSpec,
    NetworkRecord,
    ServiceRecord,
)
from swimnet.runtime import KeyringListing
from swimnet.security.keyops import KeyOpResult
from swimnet.tables.entry import Entry

Json = dict[str, Any]


def network_json(info: NetworkInfo) -> Json:
    record = info.record
    return {
        "name": record.name,
        "subnet": record.subnet,
        "gateway": record.gateway,
        "mtu": record.mtu,
        "vni": info.vni,
        "vni_requested": record.vni,
        "vni_collision": info.collision,
        "options": dict(record.options),
        "created": record.created,
        "owner": info.owner,
        "held": info.held,
        "endpoints": info.endpoints,
        "local_endpoints": info.local_endpoints,
    }


def conflict_json(conflict: Conflict) -> Json:
    return {
        "kind": conflict.kind,
        "value": conflict.value,
        "endpoints": [{"id": i, "owner": o} for i, o in conflict.endpoints],
    }


def network_detail_json(detail: NetworkDetail) -> Json:
    out = network_json(detail.info)
    out["agents"] = list(detail.agents)
    out["endpoint_list"] = None if detail.endpoints is None else [endpoint_json(e) for e in detail.endpoints]
    out["services"] = None if detail.services is None else [service_json(s) for s in detail.services]
    out["conflicts"] = None if detail.conflicts is None else [conflict_json(c) for c in detail.conflicts]
    return out


def endpoint_json(info: EndpointInfo | LocalEndpointInfo) -> Json:
    if isinstance(info, LocalEndpointInfo):
        return _local_endpoint_json(info.spec, info.vtep, info.owner, published=info.published)
    record: EndpointRecord = info.record
    out: Json = {
        "id": info.endpoint_id,
        "network": info.network,
        "name": record.name,
        "ip": record.ip,
        "mac": record.mac,
        "vtep": record.vtep,
        "owner": info.owner,
        "local": info.local is not None,
        "conflict": info.conflict,
    }
    if info.local is not None:
        out.update(netns=info.local.netns, pid=info.local.pid, ifname=info.local.ifname)
    return out


def _local_endpoint_json(spec: LocalEndpointSpec, vtep: str, owner: str, *, published: bool) -> Json:
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


def endpoint_listing_json(listing: EndpointListing, endpoints: list[Json] | None = None) -> Json:
    """`endpoints`: the rows already rendered with `endpoint_json` (None: render them here)."""
    if endpoints is None:
        endpoints = [endpoint_json(e) for e in listing.endpoints]
    return {"endpoints": endpoints, "not_held": list(listing.not_held)}


def endpoint_removed_json(spec: LocalEndpointSpec) -> Json:
    return {"removed": spec.endpoint_id, "network": spec.network, "name": spec.name}


def service_json(info: ServiceInfo) -> Json:
    record = info.record
    return {
        "name": record.name,
        "network": info.network,
        "vip": record.vip,
        "mode": record.mode,
        "ports": [{"protocol": p, "published": a, "target": b} for p, a, b in record.ports],
        "backends": list(record.backends),
        "owner": info.owner,
    }


def service_detail_json(detail: ServiceDetail) -> Json:
    """`service_json` plus `backend_states` and `programmed` (null: no datapath here)."""
    out = service_json(detail.info)
    out["backend_states"] = [
        {
            "id": b.endpoint_id,
            "state": b.state,
            "name": b.record.name if b.record else None,
            "ip": b.record.address if b.record else None,
            "owner": b.owner,
        }
        for b in detail.backends
    ]
    out["programmed"] = (
        None
        if detail.programmed is None
        else [{"endpoint": p.endpoint_id, "netns": p.netns, "state": p.state} for p in detail.programmed]
    )
    return out


def dns_json(found: DnsAnswer) -> Json:
    r = found.resolution
    return {
        "network": found.network,
        "name": found.name,
        "type": found.qtype,
        "from": found.endpoint,
        "networks": list(found.networks),
        "rcode": r.rcode,
        "records": list(r.records),
        "forwarded": r.forwarded,
        "answered_by": r.network,
        "kind": r.kind,
    }


def service_listing_json(listing: ServiceListing) -> Json:
    return {"services": [service_json(s) for s in listing.services], "not_held": list(listing.not_held)}


def member_json(info: MemberInfo) -> Json:
    member, rtt = info.member, info.rtt
    return {
        "name": member.name,
        "address": format_address(member.address),
        "state": member.state.label,
        "incarnation": member.incarnation,
        "rtt_ms": None if rtt is None else round(rtt * 1000.0, 3),
        "local": info.local,
    }


def key_listing_json(listed: KeyringListing) -> Json:
    return {"primary": listed.primary, "keys": list(listed.ids), "version": listed.version}


def key_result_json(result: KeyOpResult) -> Json:
    return {
        "action": result.action,
        "key_id": result.key_id,
        "ok": result.ok,
        "acked": list(result.acked),
        "failed": dict(result.failed),
        "missing": list(result.missing),
    }


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    NETWORKS_TABLE: NetworkRecord.decode,
    PEERS_TABLE: EndpointRecord.decode,
    SERVICES_TABLE: ServiceRecord.decode,
}


def _entry_json(e: Entry, hidden: bool) -> Json:
    out: Json = {
        "table": e.table,
        "key": e.key,
        "owner": e.owner,
        "ltime": e.ltime,
        "deleted": e.deleted,
        "hidden": hidden,
        "size": len(e.value),
    }
    decode = _DECODERS.get(e.table)
    try:
        if decode is None:
            raise DecodeError("unknown table")
        record = decode(e.value)
        out["value"] = attrs.asdict(record, filter=lambda a, _: a.name != "extra")
    except DecodeError:
        out["value"] = None
        out["raw"] = base64.b64encode(e.value).decode("ascii")
    return out


def tables_dump_json(dump: TablesDump) -> Json:
    return {
        "network": dump.network,
        "attachments": [
            {"node": a.node, "ltime": a.ltime, "leaving": a.leaving, "failed": a.failed}
            for a in dump.attachments
        ],
        "entries": [_entry_json(e, hidden) for e, hidden in dump.entries],
        "digest": {"count": dump.digest_count, "hash": f"{dump.digest_hash:016x}"},
        "table_clock": dump.table_clock,
    }
