"""Checks of control-request values: each returns the normalised value or raises an INVALID OperationError
(400, naming the field and what is wrong). Pure: no tables, no I/O.

Rules: the verdict on a network value (names, subnets, addresses, MACs, interface names,
namespaces, ports, VNI, MTU) is swimnet.values's, the same the overlay records and the
datapath give (see that module for the rules); a parser's InvalidValue becomes a 400 with
its field. Keys and key ids are the agent's own values, checked here. A record whose
encoding is larger than a table value may be (`MAX_DOCUMENT`: many or long network options,
a long backend list) is INVALID naming the field that made it so (`encoded`), never an
encoder's ValueError escaping as a 500.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from swimnet import values
from swimnet.agent.errors import bad_request
from swimnet.overlay import EndpointRecord, NetworkRecord, ServiceRecord
from swimnet.overlay.documents import MAX_DOCUMENT
from swimnet.security.keyring import KEY_SIZE

P = ParamSpec("P")
R = TypeVar("R")

_KEY_ID = re.compile(r"[0-9a-f]{8}")


def _api(parse: Callable[P, R]) -> Callable[P, R]:
    """`parse` with its InvalidValue raised as an INVALID OperationError (HTTP 400) naming the field."""

    @functools.wraps(parse)
    def check(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return parse(*args, **kwargs)
        except values.InvalidValue as exc:
            raise bad_request(str(exc), exc.field) from None

    return check


name = _api(values.name)
subnet = _api(values.subnet)
vni = _api(values.vni)
mtu = _api(values.mtu)
mac = _api(values.mac)
ifname = _api(values.ifname)
netns = _api(values.netns_name)
pid = _api(values.pid)
port_mapping = _api(values.port_mapping)
network_options = _api(values.network_options)
host_in = _api(values.host_in)
"""An address of `net` usable by a host, with the network's prefix length."""


def encoded(record: NetworkRecord | ServiceRecord | EndpointRecord, field: str) -> bytes:
    """The record's table value; INVALID naming `field` when it is too large for one."""
    try:
        return record.encode()
    except ValueError:
        raise bad_request(
            f"{field}: too large: the encoded {type(record).__name__} must be at most {MAX_DOCUMENT} bytes",
            field,
        ) from None


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
