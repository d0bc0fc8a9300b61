"""How the plugin refuses a call: the `Refused` exception, where its message goes in the
answer, and the checks that turn a record lookup or a `swimnet.values` verdict into one.

Rules: a refusal is answered `{"Err": message}` (`{"Error": message}` for the IPAM calls:
libnetwork's remote IPAM reads that key); an unknown id names what was looked for; a value
`swimnet.values` refuses names its field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from swimnet import values

Answer = dict[str, Any]
T = TypeVar("T")


def error_key(call: str) -> str:
    """Where a refusal goes: libnetwork's remote IPAM reads `Error`, its remote driver `Err`."""
    return "Error" if call.startswith("IpamDriver.") else "Err"


class Refused(Exception):
    """A call that cannot be done: answered `{"Err": message}`."""


def known(table: Mapping[str, T], key: str, what: str) -> T:
    """A record of the plugin's, or the refusal naming the unknown id."""
    found = table.get(key)
    if found is None:
        raise Refused(f"unknown {what} {key[:40]!r}")
    return found


def parsed(parse: Callable[..., Any], *args: Any) -> Any:
    """A swimnet.values verdict; its InvalidValue refused with the field named."""
    try:
        return parse(*args)
    except values.InvalidValue as exc:
        raise Refused(f"{exc.field}: {exc.reason}") from None


def with_prefix(address: str, subnet: str) -> str:
    return f"{address}/{ipaddress.IPv4Network(subnet).prefixlen}"


def bare(address: str) -> str:
    return address.split("/")[0]
