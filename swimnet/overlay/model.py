"""The overlay domain: networks, endpoints and services, and their table entries.

Tables (see swimnet.tables):
- network CLUSTER_SCOPE, table "networks": network name -> NetworkRecord (every agent joins
  this scope, so network definitions are cluster-wide);
- network <name>, table "overlay_peer": endpoint id -> EndpointRecord (endpoint name, IP
  with prefix, MAC, the owner's VTEP address): Docker's overlay_peer_table;
- network <name>, table "services": service name -> ServiceRecord (VIP, mode, ports,
  backend endpoint ids).

Rules: records validate and normalise their fields on construction with the parsers of
swimnet.values (InvalidValue, a ValueError naming the field), so a record the overlay
accepts is one the datapath and the agent accept too; decoding raises DecodeError instead;
unknown document fields are preserved through decode/encode.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs

from swimnet import values
from swimnet.errors import DecodeError
from swimnet.overlay.documents import decode_document, encode_document, take

CLUSTER_SCOPE = "_cluster"
NETWORKS_TABLE = "networks"
PEERS_TABLE = "overlay_peer"
SERVICES_TABLE = "services"
VNI_MIN = 4096
VNI_MAX = values.VNI_MAX
SERVICE_MODES = ("vip", "dnsrr")


def mac_from_ip(ip: str) -> str:
    """Docker's derivation: 02:42 followed by the four bytes of the IPv4 address."""
    addr = ipaddress.IPv4Address(ip.split("/")[0])
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


@attrs.frozen
class NetworkRecord:
    name: str
    subnet: str
    vni: int | None = None
    """Requested VNI (None: allocated); the effective one is `vni.assign_vnis`'s."""
    gateway: str | None = None
    mtu: int = 1450
    options: dict[str, str] = attrs.field(factory=dict)
    created: int = 0
    """Creation order (the creator's Lamport time): older networks keep contested VNIs."""
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        values.name(self.name, "name")
        net = values.subnet(self.subnet, "subnet")
        object.__setattr__(self, "subnet", str(net))
        if self.gateway is not None:
            object.__setattr__(self, "gateway", str(values.host_in(self.gateway, net, "gateway").ip))
        if self.vni is not None:
            values.vni(self.vni, "vni")
        values.mtu(self.mtu, "mtu")
        object.__setattr__(self, "options", values.network_options(self.options, "options"))

    def encode(self) -> bytes:
        fields = {
            "name": self.name,
            "subnet": self.subnet,
            "vni": self.vni,
            "gateway": self.gateway,
            "mtu": self.mtu,
            "options": dict(self.options),
            "created": self.created,
        }
        return encode_document(fields, self.extra)

    @classmethod
    def decode(cls, data: bytes) -> NetworkRecord:
        doc = decode_document(data, "network")
        try:
            options = take(doc, "options", dict, "network")
            if not all(type(k) is str and type(v) is str for k, v in options.items()):
                raise DecodeError("network.options: expected string -> string")
            return cls(
                name=take(doc, "name", str, "network"),
                subnet=take(doc, "subnet", str, "network"),
                vni=take(doc, "vni", int, "network", optional=True),
                gateway=take(doc, "gateway", str, "network", optional=True),
                mtu=take(doc, "mtu", int, "network"),
                options=options,
                created=take(doc, "created", int, "network"),
                extra=doc,
            )
        except ValueError as exc:
            raise DecodeError(f"network: {exc}") from None


@attrs.frozen
class EndpointRecord:
    name: str
    ip: str
    """With prefix length, e.g. 10.1.0.2/24."""
    mac: str
    vtep: str
    """Underlay address of the host that owns the endpoint."""
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        values.name(self.name, "name")
        object.__setattr__(self, "ip", str(values.host_interface(self.ip, "ip")))
        object.__setattr__(self, "mac", values.mac(self.mac, "mac"))
        object.__setattr__(self, "vtep", values.vtep(self.vtep, "vtep"))

    @property
    def address(self) -> str:
        return self.ip.split("/")[0]

    def encode(self) -> bytes:
        return encode_document(
            {"name": self.name, "ip": self.ip, "mac": self.mac, "vtep": self.vtep}, self.extra
        )

    @classmethod
    def decode(cls, data: bytes) -> EndpointRecord:
        doc = decode_document(data, "endpoint")
        try:
            return cls(
                name=take(doc, "name", str, "endpoint"),
                ip=take(doc, "ip", str, "endpoint"),
                mac=take(doc, "mac", str, "endpoint"),
                vtep=take(doc, "vtep", str, "endpoint"),
                extra=doc,
            )
        except ValueError as exc:
            raise DecodeError(f"endpoint: {exc}") from None


@attrs.frozen
class ServiceRecord:
    name: str
    vip: str | None
    mode: str = "vip"
    ports: tuple[tuple[str, int, int], ...] = ()
    """(protocol, published port, target port)."""
    backends: tuple[str, ...] = ()
    """Endpoint ids."""
    extra: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        values.name(self.name, "name")
        if self.mode not in SERVICE_MODES:
            raise values.InvalidValue("mode", f"one of {', '.join(SERVICE_MODES)}")
        if self.mode == "vip" and self.vip is None:
            raise values.InvalidValue("vip", "required in vip mode")
        if self.mode == "dnsrr" and self.vip is not None:
            raise values.InvalidValue("vip", "dnsrr services have no VIP")
        if self.vip is not None:
            object.__setattr__(self, "vip", values.address(self.vip, "vip"))
        ports = tuple(values.port_mapping(*p, "ports") for p in self.ports)
        object.__setattr__(self, "ports", ports)
        for backend in self.backends:
            values.name(backend, "backends")

    def encode(self) -> bytes:
        fields = {
            "name": self.name,
            "vip": self.vip,
            "mode": self.mode,
            "ports": [list(p) for p in self.ports],
            "backends": list(self.backends),
        }
        return encode_document(fields, self.extra)

    @classmethod
    def decode(cls, data: bytes) -> ServiceRecord:
        doc = decode_document(data, "service")
        try:
            ports = take(doc, "ports", list, "service")
            backends = take(doc, "backends", list, "service")
            if not all(
                type(p) is list
                and len(p) == 3
                and type(p[0]) is str
                and type(p[1]) is int
                and type(p[2]) is int
                for p in ports
            ):
                raise DecodeError("service.ports: expected [proto, published, target] lists")
            if not all(type(b) is str for b in backends):
                raise DecodeError("service.backends: expected strings")
            return cls(
                name=take(doc, "name", str, "service"),
                vip=take(doc, "vip", str, "service", optional=True),
                mode=take(doc, "mode", str, "service"),
                ports=tuple((p[0], p[1], p[2]) for p in ports),
                backends=tuple(backends),
                extra=doc,
            )
        except ValueError as exc:
            raise DecodeError(f"service: {exc}") from None
