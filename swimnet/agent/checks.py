"""Checks of control-request values: each returns the normalised value or raises ApiError
(400, naming the field and what is wrong). Pure: no tables, no I/O.

Rules: subnets are IPv4 networks written with their network address (10.1.0.0/24, not
10.1.0.5/24); an endpoint IP is given with the network's prefix length or bare (the prefix
is added), and must be a host address inside the subnet (not the network or broadcast
address); names are 1..64 characters of [A-Za-z0-9_.-] starting alphanumeric (network
names may not start with "_", which is reserved for the agent's own scopes).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

from swimnet.agent.errors import bad_request
from swimnet.overlay.model import VNI_MAX
from swimnet.security.keyring import KEY_SIZE

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_IFNAME_BAD = re.compile(r"[/:\s]")
_NETNS = re.compile(r"[A-Za-z0-9_.-]{1,255}|/[^\0]{1,4095}")


def name(value: str, field: str = "name") -> str:
    if not _NAME.fullmatch(value):
        raise bad_request(
            f"{field}: {value!r} must be 1..64 characters of [A-Za-z0-9_.-], starting with a letter or digit",
            field,
        )
    return value


def subnet(value: str, field: str = "subnet") -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise bad_request(f"{field}: {value!r} is not a network address ({exc})", field) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise bad_request(f"{field}: only IPv4 subnets are supported, got {value!r}", field)
    if net.prefixlen > 30:
        raise bad_request(
            f"{field}: {value} has no room for endpoints (prefix must be /30 or shorter)", field
        )
    return net


def host_in(value: str, net: ipaddress.IPv4Network, field: str) -> ipaddress.IPv4Interface:
    """An address of `net` usable by a host, with the network's prefix length."""
    text = value if "/" in value else f"{value}/{net.prefixlen}"
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise bad_request(f"{field}: {value!r} is not an IP address ({exc})", field) from None
    if not isinstance(iface, ipaddress.IPv4Interface) or iface.ip not in net:
        raise bad_request(f"{field}: {iface.ip} is outside the network's subnet {net}", field)
    if iface.network.prefixlen != net.prefixlen:
        raise bad_request(
            f"{field}: prefix /{iface.network.prefixlen} differs from the subnet's /{net.prefixlen}", field
        )
    if iface.ip in (net.network_address, net.broadcast_address):
        raise bad_request(f"{field}: {iface.ip} is the network or broadcast address of {net}", field)
    return iface


def vni(value: int, field: str = "vni") -> int:
    if not 1 <= value <= VNI_MAX:
        raise bad_request(f"{field}: must be 1..{VNI_MAX}, got {value}", field)
    return value


def mtu(value: int, field: str = "mtu") -> int:
    if not 576 <= value <= 9000:
        raise bad_request(f"{field}: must be 576..9000, got {value}", field)
    return value


def mac(value: str, field: str = "mac") -> str:
    parts = value.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise bad_request(f"{field}: {value!r} is not a MAC address (six hex pairs separated by ':')", field)
    if int(parts[0], 16) & 1:
        raise bad_request(f"{field}: {value} is a multicast address", field)
    if parts == ["00"] * 6:
        raise bad_request(f"{field}: the all-zero MAC address is not usable", field)
    return ":".join(parts)


def ifname(value: str, field: str = "ifname") -> str:
    if not 1 <= len(value.encode()) <= 15 or _IFNAME_BAD.search(value) or value in (".", ".."):
        raise bad_request(
            f"{field}: {value!r} is not an interface name (1..15 characters, no '/', ':' or spaces)", field
        )
    return value


def netns(value: str, field: str = "netns") -> str:
    if not _NETNS.fullmatch(value) or value in (".", ".."):
        raise bad_request(f"{field}: {value!r} is not a network namespace name or path", field)
    return value


def pid(value: int, field: str = "pid") -> int:
    if value < 1:
        raise bad_request(f"{field}: must be a positive process id, got {value}", field)
    return value


def port_mapping(proto: str, published: int, target: int, field: str = "ports") -> tuple[str, int, int]:
    if proto not in ("tcp", "udp"):
        raise bad_request(f"{field}: protocol must be tcp or udp, got {proto!r}", field)
    for number in (published, target):
        if not 0 < number < 65_536:
            raise bad_request(f"{field}: ports must be 1..65535, got {number}", field)
    return (proto, published, target)


def key(value: str, field: str = "key") -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{field}: not valid base64", field) from None
    if len(raw) != KEY_SIZE:
        raise bad_request(f"{field}: a key must be {KEY_SIZE} bytes, got {len(raw)}", field)
    return raw


def key_id(value: str, field: str = "id") -> str:
    text = value.strip().lower()
    if not _KEY_ID.fullmatch(text):
        raise bad_request(f"{field}: a key id is 8 hex characters, got {value!r}", field)
    return text
