"""Request bodies -> the typed arguments of the domain's operations.

Rules: a body is read field by field with `fields.Body` (types, required fields, unknown
fields: INVALID naming the field); the fields a body's later fields are read after are
checked as they are read (`checks`, the domain's own rules), so the first bad field a
client is told about is the first in this order, as it always was; the domain checks every
argument again (it does for any caller), so nothing here is the only guard of a rule.
"""

from __future__ import annotations

from typing import Any

import attrs

from swimnet.agent import checks
from swimnet.agent.domain.services import Port, check_mode
from swimnet.agent.errors import invalid
from swimnet.agent.fields import Body


@attrs.frozen
class NetworkCreate:
    name: str
    subnet: str
    gateway: str | None
    vni: int | None
    mtu: int | None
    options: dict[str, str]


@attrs.frozen
class EndpointCreate:
    name: str
    ip: str | None
    """None: a free address from the network's IPAM."""
    mac: str | None
    netns: str | None
    pid: int | None
    ifname: str
    service: str | None


@attrs.frozen
class ServiceFields:
    """A service's fields (None: not given)."""

    name: str | None
    """Given on create only."""
    vip: str | None
    mode: str | None
    ports: tuple[Port, ...] | None
    backends: list[str] | None
    add_backends: list[str]
    rm_backends: list[str]


def network_create(raw: bytes) -> NetworkCreate:
    body = Body(raw)
    name = checks.name(body.text("name", required=True) or "")
    subnet = body.text("subnet", required=True) or ""
    checks.subnet(subnet)
    gateway = body.text("gateway")
    vni = body.integer("vni")
    mtu = body.integer("mtu")
    options = checks.network_options(body.string_map("options") or {})
    body.done()
    return NetworkCreate(name, subnet, gateway, vni, mtu, options)


def endpoint_create(raw: bytes) -> EndpointCreate:
    body = Body(raw)
    name = checks.name(body.text("name", required=True) or "")
    ip = body.text("ip")
    mac = body.text("mac")
    netns = body.text("netns")
    pid = body.integer("pid")
    ifname = checks.ifname(body.text("ifname") or "eth0")
    service = body.text("service")
    if service is not None:
        checks.name(service, "service")
    body.done()
    return EndpointCreate(name, ip, mac, netns, pid, ifname, service)


def service_fields(raw: bytes, *, creating: bool) -> ServiceFields:
    body = Body(raw)
    name = checks.name(body.text("name", required=True) or "") if creating else None
    vip = body.text("vip")
    mode = body.text("mode")
    if mode is not None:
        check_mode(mode)
    objects = body.objects("ports")
    ports = None if objects is None else tuple(_port(p) for p in objects)
    backends = body.texts("backends")
    add = body.texts("add_backends") if not creating else None
    remove = body.texts("rm_backends") if not creating else None
    body.done()
    return ServiceFields(name, vip, mode, ports, backends, add or [], remove or [])


def _port(item: dict[str, Any]) -> Port:
    unknown = sorted(set(item) - {"protocol", "published", "target"})
    if unknown:
        raise invalid(f"ports: unknown field {unknown[0]!r}", "ports")
    proto = item.get("protocol", "tcp")
    published, target = item.get("published"), item.get("target", item.get("published"))
    if type(proto) is not str or type(published) is not int or type(target) is not int:
        raise invalid('ports: expected {"protocol": tcp|udp, "published": int, "target": int}', "ports")
    return checks.port_mapping(proto, published, target)


def key_install(raw: bytes) -> bytes:
    """{"key": base64} -> the key (INVALID: not base64, not 32 bytes)."""
    body = Body(raw)
    text = body.text("key", required=True) or ""
    body.done()
    return checks.key(text)


def key_use(raw: bytes) -> str:
    """{"id": "8 hex"} -> the id as given (the domain checks and normalises it)."""
    body = Body(raw)
    key_id = body.text("id", required=True) or ""
    body.done()
    return key_id
