"""The one home of value parsing: each parser returns the normal form or raises InvalidValue.

Every layer calls these parsers (overlay records, the datapath model, the agent's request
checks and settings), so one value gets one verdict everywhere; each layer maps
InvalidValue (`field`, `reason`) to its own error (DecodeError, ConfigError, the agent's
INVALID OperationError).
Pure: no I/O, no imports of the agent, the datapath or the runtime.

Rules:
- MAC: six pairs of hex digits separated by ':' (no other separator), any case; unicast
  (I/G bit clear) and not all zeros; normal form lower case (02:42:0a:01:00:02);
- interface name: 1..15 printable ASCII characters (the kernel's IFNAMSIZ), none of '/',
  ':', '%' (a name template) or white space, not '.' or '..';
- IPv4 (the overlay is IPv4 only): dotted quad without leading zeros; normal form is
  `ipaddress`'s. Overlay addresses (endpoint IPs, gateways, VIPs) and subnets never touch
  0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 (multicast) or 240.0.0.0/4 (reserved, broadcast);
  a VTEP (underlay address) may be loopback but not 0.0.0.0/8, multicast or reserved;
- subnet: an IPv4 network written with its network address (no host bits), prefix /30 or
  shorter (room for endpoints); normal form 10.1.0.0/24;
- host interface (an endpoint's IP): an IPv4 address with the prefix length of its subnet,
  that network being a valid subnet (so /30 or shorter: a bare address, a /31 or a /32 is
  refused) and the address neither its network nor its broadcast address; normal form
  10.1.0.2/24. `host_in` checks the same against a given subnet: inside it, with its
  prefix, or bare (the API's shorthand: the subnet's prefix is added);
- names (networks, endpoints, services, endpoint ids): 1..64 characters of [A-Za-z0-9_.-]
  starting with a letter or digit (so never with the reserved '_'); node names likewise
  with 1..63 characters; case is kept;
- Docker id (a network, endpoint or pool id in Docker's plugin protocol): 1..128
  characters of [A-Za-z0-9_.:/-]; kept as given;
- port: 1..65535, an integer or a string of ASCII digits; normal form the integer;
  protocol: tcp or udp (lower case);
- VNI 1..2**24-1; network MTU 576..9000; underlay MTU 576..65535; integers, never booleans;
- netns: a namespace name of 1..255 characters of [A-Za-z0-9_.-] (not '.' or '..'), an
  absolute path of at most 4096 bytes of printable characters, or a process id 1..4194303.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

VNI_MAX = 2**24 - 1
MTU_MIN = 576
MTU_MAX = 9000
UNDERLAY_MTU_MAX = 65_535
PORT_MAX = 65_535
PID_MAX = 2**22 - 1
"""Process ids are below the kernel's PID_MAX_LIMIT (2**22)."""
IFNAME_MAX = 15
DOCKER_ID_MAX = 128
PROTOCOLS = ("tcp", "udp")

_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_NETNS_NAME = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_DOCKER_ID = re.compile(r"[A-Za-z0-9_.:/-]+")
_DIGITS = re.compile(r"[0-9]{1,5}")
_IFNAME_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset("/:%")
_RESERVED = tuple(
    (ipaddress.IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/8", "'this network'"),
        ("127.0.0.0/8", "loopback"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)


class InvalidValue(ValueError):
    """A value a parser refuses: `field` names it, `reason` says why; str() is "field: reason"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _kind(value: object) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidValue(field, f"expected a string, got {_kind(value)}")
    return value


def _integer(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidValue(field, f"expected an integer, got {_kind(value)}")
    return value


def _in_range(value: object, low: int, high: int, field: str) -> int:
    number = _integer(value, field)
    if not low <= number <= high:
        raise InvalidValue(field, f"must be {low}..{high}, got {number}")
    return number


# -- link layer -------------------------------------------------------------------------------


def mac(value: str, field: str = "mac") -> str:
    """A unicast, non-zero MAC address in lower case."""
    text = _text(value, field)
    if not _MAC.fullmatch(text):
        raise InvalidValue(field, f"{text!r} is not a MAC address (six hex pairs separated by ':')")
    normal = text.lower()
    if int(normal[:2], 16) & 1:
        raise InvalidValue(field, f"{normal} is a multicast address")
    if normal == "00:00:00:00:00:00":
        raise InvalidValue(field, "the all-zero MAC address is not usable")
    return normal


def ifname(value: str, field: str = "ifname") -> str:
    """A network interface name the kernel takes as it is."""
    text = _text(value, field)
    if not 1 <= len(text) <= IFNAME_MAX or not set(text) <= _IFNAME_CHARS or text in (".", ".."):
        raise InvalidValue(
            field,
            f"{text!r} is not an interface name "
            f"(1..{IFNAME_MAX} ASCII characters, no '/', ':', '%' or spaces)",
        )
    return text


# -- IPv4 -------------------------------------------------------------------------------------


def _reserved(net: ipaddress.IPv4Network) -> str | None:
    for reserved, label in _RESERVED:
        if net.overlaps(reserved):
            return f"{reserved} ({label})"
    return None


def _ipv4(value: str, field: str) -> ipaddress.IPv4Address:
    text = _text(value, field)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidValue(field, f"{text!r} is not an IPv4 address") from None


def address(value: str, field: str = "address") -> str:
    """An overlay address (gateway, VIP) without prefix."""
    addr = _ipv4(value, field)
    clash = _reserved(ipaddress.IPv4Network(addr))
    if clash is not None:
        raise InvalidValue(field, f"{addr} is in {clash}, not an overlay address")
    return str(addr)


def vtep(value: str, field: str = "vtep") -> str:
    """An underlay (VTEP) address: unicast IPv4, loopback allowed (one-host labs)."""
    addr = _ipv4(value, field)
    for reserved, label in _RESERVED:
        if label != "loopback" and addr in reserved:
            raise InvalidValue(field, f"{addr} is in {reserved} ({label}), not a unicast address")
    return str(addr)


def subnet(value: str, field: str = "subnet") -> ipaddress.IPv4Network:
    """An overlay subnet with room for endpoints."""
    text = _text(value, field)
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise InvalidValue(field, f"{text!r} is not a network address ({exc})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InvalidValue(field, f"only IPv4 subnets are supported, got {text!r}")
    if net.prefixlen > 30:
        raise InvalidValue(field, f"{net} has no room for endpoints (prefix must be /30 or shorter)")
    clash = _reserved(net)
    if clash is not None:
        raise InvalidValue(field, f"{net} overlaps {clash}")
    return net


def _interface(text: str, field: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise InvalidValue(field, f"{text!r} is not an IP address ({exc})") from None


def _check_host(iface: ipaddress.IPv4Interface, field: str) -> None:
    net = iface.network
    if net.prefixlen > 30:
        raise InvalidValue(field, f"{iface} is not in an overlay subnet (prefix must be /30 or shorter)")
    clash = _reserved(net)
    if clash is not None:
        raise InvalidValue(field, f"{iface} is in a subnet that overlaps {clash}")
    if iface.ip in (net.network_address, net.broadcast_address):
        raise InvalidValue(field, f"{iface.ip} is the network or broadcast address of {net}")


def host_interface(value: str, field: str = "ip") -> ipaddress.IPv4Interface:
    """An endpoint's address with its subnet's prefix length, e.g. 10.1.0.2/24."""
    text = _text(value, field)
    if "/" not in text:
        raise InvalidValue(field, f"{text!r} has no prefix length (e.g. 10.1.0.2/24)")
    iface = _interface(text, field)
    if not isinstance(iface, ipaddress.IPv4Interface):
        raise InvalidValue(field, f"only IPv4 addresses are supported, got {text!r}")
    _check_host(iface, field)
    return iface


def host_in(value: str, net: ipaddress.IPv4Network, field: str) -> ipaddress.IPv4Interface:
    """An address of `net` usable by a host, with the network's prefix length."""
    text = _text(value, field)
    iface = _interface(text if "/" in text else f"{text}/{net.prefixlen}", field)
    if not isinstance(iface, ipaddress.IPv4Interface) or iface.ip not in net:
        raise InvalidValue(field, f"{iface.ip} is outside the network's subnet {net}")
    if iface.network.prefixlen != net.prefixlen:
        raise InvalidValue(
            field, f"prefix /{iface.network.prefixlen} differs from the subnet's /{net.prefixlen}"
        )
    _check_host(iface, field)
    return iface


# -- names ------------------------------------------------------------------------------------


def name(value: str, field: str = "name") -> str:
    """A network, endpoint or service name, or an endpoint id."""
    text = _text(value, field)
    if not _NAME.fullmatch(text):
        raise InvalidValue(
            field, f"{text!r} must be 1..64 characters of [A-Za-z0-9_.-], starting with a letter or digit"
        )
    return text


def docker_id(value: str, field: str = "id") -> str:
    """A network, endpoint or pool id of Docker's plugin protocol."""
    text = _text(value, field)
    if not text:
        raise InvalidValue(field, "missing")
    if len(text) > DOCKER_ID_MAX or not _DOCKER_ID.fullmatch(text):
        raise InvalidValue(field, f"{text[:40]!r} is not an id")
    return text


def node_name(value: str, field: str = "name") -> str:
    """An agent's node name (also the datapath's node tag)."""
    text = _text(value, field)
    if not _NODE_NAME.fullmatch(text):
        raise InvalidValue(
            field, f"{text!r} must be 1..63 characters of [A-Za-z0-9_.-], starting with a letter or digit"
        )
    return text


# -- numbers ----------------------------------------------------------------------------------


def port(value: int | str, field: str = "port") -> int:
    """A UDP/TCP port, given as an integer or as decimal digits."""
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= PORT_MAX:
            raise InvalidValue(field, f"must be 1..{PORT_MAX}, got {value!r}")
        return int(value)
    return _in_range(value, 1, PORT_MAX, field)


def port_mapping(
    protocol: str, published: int | str, target: int | str, field: str = "ports"
) -> tuple[str, int, int]:
    """(protocol, published port, target port) of a service."""
    if protocol not in PROTOCOLS:
        raise InvalidValue(field, f"protocol must be tcp or udp, got {protocol!r}")
    numbers = []
    for number in (published, target):
        try:
            numbers.append(port(number, field))
        except InvalidValue:
            raise InvalidValue(field, f"ports must be 1..{PORT_MAX}, got {number!r}") from None
    return (protocol, numbers[0], numbers[1])


def vni(value: int, field: str = "vni") -> int:
    return _in_range(value, 1, VNI_MAX, field)


def mtu(value: int, field: str = "mtu") -> int:
    """An overlay network's MTU."""
    return _in_range(value, MTU_MIN, MTU_MAX, field)


def underlay_mtu(value: int, field: str = "underlay_mtu") -> int:
    return _in_range(value, MTU_MIN, UNDERLAY_MTU_MAX, field)


def network_options(value: Mapping[str, str], field: str = "options") -> dict[str, str]:
    """A network's options (string -> string); `vxlan_port`, when given, is a port."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidValue(field, "expected string -> string")
    options = dict(value)
    if "vxlan_port" in options:
        options["vxlan_port"] = str(port(options["vxlan_port"], f"{field}.vxlan_port"))
    return options


# -- network namespaces -----------------------------------------------------------------------


def pid(value: int, field: str = "pid") -> int:
    number = _integer(value, field)
    if not 1 <= number <= PID_MAX:
        raise InvalidValue(field, f"must be a positive process id (at most {PID_MAX}), got {number}")
    return number


def netns_name(value: str, field: str = "netns") -> str:
    """A network namespace name (`ip netns`) or an absolute path to one."""
    text = _text(value, field)
    if text.startswith("/"):
        ok = len(text) > 1 and text.isprintable() and len(text.encode()) <= 4096
    else:
        ok = _NETNS_NAME.fullmatch(text) is not None and text not in (".", "..")
    if not ok:
        raise InvalidValue(field, f"{text!r} is not a network namespace name or path")
    return text


def netns(value: str | int, field: str = "netns") -> str | int:
    """A namespace name, an absolute path or a process id."""
    if isinstance(value, str):
        return netns_name(value, field)
    return pid(value, field)
