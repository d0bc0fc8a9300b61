"""Docker's plugin protocol, decoded: one typed request per call, from hostile JSON.

Docker (libnetwork's remote driver and remote IPAM, `docs/remote.md` and `docs/ipam.md`)
POSTs a JSON object to `/<Interface>.<Method>`; the answer is a JSON object, `{"Err": ...}`
when the call cannot be done.

Rules:
- a body is at most MAX_BODY bytes (the server refuses more before reading it), UTF-8 JSON
  whose top level is an object (an empty body is `{}`: Docker sends none with
  `Plugin.Activate` and `GetCapabilities`); anything else is a `ProtocolError`;
- every field is checked for its JSON type and bounded: strings at most MAX_STRING
  characters, option maps at most MAX_OPTIONS entries; ids get `swimnet.values.docker_id`'s
  verdict (1..128 characters of [A-Za-z0-9_.:/-]); fields Docker may leave out default to
  empty; unknown fields are ignored (a newer Docker may add some), a known one of the wrong
  type is an error naming it;
- addresses are checked by `swimnet.values` where they are used (the plugin), not here:
  this module knows the wire shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from swimnet import values
from swimnet.errors import SwimnetError

MAX_BODY = 64 * 1024
MAX_STRING = 4096
MAX_OPTIONS = 256

GATEWAY_REQUEST = "com.docker.network.gateway"
"""RequestAddress option RequestAddressType: the network's gateway."""
ADDRESS_TYPE = "RequestAddressType"
GENERIC_OPTIONS = "com.docker.network.generic"
"""CreateNetwork option: the map of `docker network create -o KEY=VALUE`."""


class ProtocolError(SwimnetError):
    """A request Docker's protocol does not allow (the message names the field)."""


def _object(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ProtocolError(f"{field}: expected an object, got {type(value).__name__}")
    if len(value) > MAX_OPTIONS:
        raise ProtocolError(f"{field}: more than {MAX_OPTIONS} entries")
    return value


def _string(body: Mapping[str, Any], key: str, field: str | None = None) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise ProtocolError(f"{field or key}: expected a string, got {type(value).__name__}")
    if len(value) > MAX_STRING:
        raise ProtocolError(f"{field or key}: longer than {MAX_STRING} characters")
    return value


def _id(body: Mapping[str, Any], key: str) -> str:
    try:
        return values.docker_id(_string(body, key), key)
    except values.InvalidValue as exc:
        raise ProtocolError(str(exc)) from None


def _strings(value: Any, field: str) -> dict[str, str]:
    """An option map of strings to strings (other values: an error naming the key)."""
    out: dict[str, str] = {}
    for key, item in _object(value, field).items():
        if type(item) is not str or len(item) > MAX_STRING or len(key) > MAX_STRING:
            raise ProtocolError(f"{field}.{key[:40]}: expected a string")
        out[key] = item
    return out


def decode_body(body: bytes) -> dict[str, Any]:
    """The request's JSON object (see the module rules)."""
    if len(body) > MAX_BODY:
        raise ProtocolError(f"body: more than {MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"body: not JSON ({exc})") from None
    if type(value) is not dict:
        raise ProtocolError(f"body: expected an object, got {type(value).__name__}")
    return _object(value, "body")


# -- IPAM ---------------------------------------------------------------------------------------


@attrs.frozen
class RequestPool:
    address_space: str
    pool: str
    sub_pool: str
    options: dict[str, str]
    v6: bool

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> RequestPool:
        v6 = body.get("V6", False)
        if type(v6) is not bool:
            raise ProtocolError("V6: expected a boolean")
        return cls(
            _string(body, "AddressSpace"),
            _string(body, "Pool"),
            _string(body, "SubPool"),
            _strings(body.get("Options"), "Options"),
            v6,
        )


@attrs.frozen
class PoolRef:
    pool_id: str

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> PoolRef:
        return cls(_id(body, "PoolID"))


@attrs.frozen
class RequestAddress:
    pool_id: str
    address: str
    options: dict[str, str]

    @property
    def gateway(self) -> bool:
        return self.options.get(ADDRESS_TYPE) == GATEWAY_REQUEST

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> RequestAddress:
        return cls(_id(body, "PoolID"), _string(body, "Address"), _strings(body.get("Options"), "Options"))


@attrs.frozen
class ReleaseAddress:
    pool_id: str
    address: str

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> ReleaseAddress:
        address = _string(body, "Address")
        if not address:
            raise ProtocolError("Address: missing")
        return cls(_id(body, "PoolID"), address)


# -- the network driver -------------------------------------------------------------------------


@attrs.frozen
class IpData:
    pool: str
    gateway: str
    address_space: str


@attrs.frozen
class CreateNetwork:
    network_id: str
    ipv4: tuple[IpData, ...]
    ipv6: int
    """How many IPv6 pools were given (swimnet refuses any)."""
    options: dict[str, str]
    """The driver options (`docker network create -o`)."""

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> CreateNetwork:
        options = _object(body.get("Options"), "Options")
        ipv4 = tuple(_ip_data(item, f"IPv4Data[{i}]") for i, item in enumerate(_list(body, "IPv4Data")))
        return cls(
            _id(body, "NetworkID"),
            ipv4,
            len(_list(body, "IPv6Data")),
            _strings(options.get(GENERIC_OPTIONS), f"Options.{GENERIC_OPTIONS}"),
        )


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if items is None:
        return []
    if type(items) is not list or len(items) > MAX_OPTIONS:
        raise ProtocolError(f"{key}: expected a list of at most {MAX_OPTIONS} items")
    return items


def _ip_data(item: Any, where: str) -> IpData:
    entry = _object(item, where)
    return IpData(
        _string(entry, "Pool", f"{where}.Pool"),
        _string(entry, "Gateway", f"{where}.Gateway"),
        _string(entry, "AddressSpace", f"{where}.AddressSpace"),
    )


@attrs.frozen
class NetworkRef:
    network_id: str

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> NetworkRef:
        return cls(_id(body, "NetworkID"))


@attrs.frozen
class EndpointRef:
    network_id: str
    endpoint_id: str

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> EndpointRef:
        return cls(_id(body, "NetworkID"), _id(body, "EndpointID"))


@attrs.frozen
class CreateEndpoint:
    network_id: str
    endpoint_id: str
    address: str
    address_v6: str
    mac: str

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> CreateEndpoint:
        iface = _object(body.get("Interface"), "Interface")
        return cls(
            _id(body, "NetworkID"),
            _id(body, "EndpointID"),
            _string(iface, "Address", "Interface.Address"),
            _string(iface, "AddressIPv6", "Interface.AddressIPv6"),
            _string(iface, "MacAddress", "Interface.MacAddress"),
        )


@attrs.frozen
class Join:
    network_id: str
    endpoint_id: str
    sandbox_key: str

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> Join:
        key = _string(body, "SandboxKey")
        if not key.startswith("/"):
            raise ProtocolError("SandboxKey: expected an absolute path")
        return cls(_id(body, "NetworkID"), _id(body, "EndpointID"), key)


@attrs.frozen
class Discovery:
    kind: int

    @classmethod
    def decode(cls, body: Mapping[str, Any]) -> Discovery:
        kind = body.get("DiscoveryType", 0)
        if type(kind) is not int:
            raise ProtocolError("DiscoveryType: expected an integer")
        _object(body.get("DiscoveryData"), "DiscoveryData")
        return cls(kind)
