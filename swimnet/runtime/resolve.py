"""Names to addresses: the bind address, the advertised address, seeds.

Rules:
- only the runtime resolves names, and only what the local user gave it (bind, advertise,
  seeds), through `trio.socket.getaddrinfo`; addresses learnt from peers must already be
  numeric (`is_numeric`) and are never looked up, so a peer cannot make us query DNS;
- a node speaks one address family, the one its bind address resolved to; seeds are
  resolved in that family ("localhost" gives 127.0.0.1 to an IPv4 node);
- a wildcard bind (0.0.0.0 / ::) without `advertise` advertises the address the kernel
  would use to reach the outside (no packet is sent), else the loopback address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Sequence

import trio

from swimnet.config import DEFAULT_PORT, parse_address
from swimnet.wire.messages import Address

Seed = str | Address

_PROBE_TARGETS: dict[int, str] = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}
"""Documentation addresses (RFC 5737 / 3849): used only to ask the kernel for a route."""


def default_name() -> str:
    """A node name when the configuration gives none: the host name."""
    return socket.gethostname() or "localhost"


def is_numeric(host: str, family: int) -> bool:
    """True when `host` is a literal address of `family` (no lookup needed to use it)."""
    try:
        socket.inet_pton(family, host.partition("%")[0] if family == socket.AF_INET6 else host)
    except (OSError, ValueError):
        return False
    return True


def is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_unspecified
    except ValueError:
        return False


async def resolve(
    host: str, port: int, family: int = socket.AF_UNSPEC, *, passive: bool = False
) -> list[tuple[int, Address]]:
    """(family, (ip, port)) for `host`, distinct, in the resolver's order; OSError if none."""
    flags = socket.AI_PASSIVE if passive else 0
    infos = await trio.socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, flags)
    out: list[tuple[int, Address]] = []
    for fam, _, _, _, sockaddr in infos:
        if fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        item = (int(fam), (str(sockaddr[0]), int(sockaddr[1])))
        if item not in out:
            out.append(item)
    if not out:
        raise OSError(f"no IPv4/IPv6 address for {host!r}")
    return out


def outbound_host(family: int) -> str:
    """The local address the kernel picks to reach the outside, or loopback when there is none."""
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((_PROBE_TARGETS[family], 9))  # UDP connect: a route lookup, no packet
        return str(probe.getsockname()[0])
    return "127.0.0.1" if family == socket.AF_INET else "::1"


async def resolve_advertise(advertise: str | None, bound: Address, family: int) -> Address:
    """The address peers reach us at: `advertise` (port 0 = the bound port), else the bound one."""
    if advertise is None:
        host, port = bound
        if is_wildcard(host):
            host = outbound_host(family)
        return (host, port)
    host, port = parse_address(advertise, "advertise")
    if port == 0:
        port = bound[1]
    if not is_numeric(host, family):
        host = (await resolve(host, port, family))[0][1][0]
    return (host, port)


async def resolve_seed(seed: Seed, family: int) -> list[Address]:
    """A seed ('host:port', 'host', or an (host, port) tuple) -> its addresses in `family`."""
    if isinstance(seed, tuple):
        host, port = seed
    else:
        host, port = parse_address(seed, "seed", DEFAULT_PORT)
    if is_numeric(host, family):
        return [(host, port)]
    return [addr for _, addr in await resolve(host, port, family)]


def dedupe(addresses: Sequence[Address]) -> list[Address]:
    out: list[Address] = []
    for addr in addresses:
        if addr not in out:
            out.append(addr)
    return out
