"""Name resolution over a `NamesView`, as one container sees it: the decision, no wire format.

    lookup(view, ("front", "back"), "tasks.web", A, rng)
        -> Lookup(ANSWER, ((A, "10.1.0.3"), (A, "10.1.0.2")), network="front", kind="tasks")

Rules (the asking container is attached to `networks`, in order):
- `qname` is lower-case, without the trailing dot; it is ours when it names something in a
  network of the view; anything else is FORWARD (the caller sends it upstream);
- a name in an attached network answers from the FIRST attached network that has it;
  `NAME.NETWORK` answers NAME from that attached network (Docker's qualified form);
- a name only another network has (bare or qualified) is NXDOMAIN: a container sees the
  names of its own networks only, and another network's names never leave for upstream;
- an unknown single-label name (no dot) is NXDOMAIN unless `forward_single_label` (then,
  like every unknown name, FORWARD); `localhost` is always left to upstream;
- a name with no address at all is NXDOMAIN; A answers the IPv4 addresses, AAAA the IPv6
  ones, ANY both; a known name asked for a type it has no records of is NODATA (ANSWER with
  no records: NOERROR, empty answer);
- reverse names (`in-addr.arpa`, `ip6.arpa`) of an address with PTR targets in an attached
  network answer those targets; an address inside an attached network's subnet, or known to
  or inside another network, is NXDOMAIN; other addresses are FORWARD;
- answers with several addresses are shuffled with the given `rng` (the only randomness);
  the function is otherwise pure and does not change the view.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Sequence

import attrs

from swimnet.dns.names import NameEntry, NamesView, NetworkIndex

A = 1
PTR = 12
AAAA = 28
ANY = 255

_V4_REVERSE = ".in-addr.arpa"
_V6_REVERSE = ".ip6.arpa"


class Outcome(enum.Enum):
    ANSWER = "answer"
    """Ours: the records (none: NODATA, i.e. NOERROR with an empty answer)."""
    NXDOMAIN = "nxdomain"
    """Ours, and no such name for this container."""
    FORWARD = "forward"
    """Not ours: ask the upstream resolvers."""


@attrs.frozen
class Lookup:
    outcome: Outcome
    records: tuple[tuple[int, str], ...] = ()
    """(rdtype, text): an address for A/AAAA, a name without trailing dot for PTR."""
    network: str | None = None
    """The network that answered (ANSWER), for debugging."""
    kind: str | None = None
    """What the name is ("endpoint", "vip", "dnsrr", "tasks", "ptr"), for debugging."""


FORWARD = Lookup(Outcome.FORWARD)
NXDOMAIN = Lookup(Outcome.NXDOMAIN)


def _attached(view: NamesView, networks: Sequence[str]) -> list[NetworkIndex]:
    seen: set[str] = set()
    out: list[NetworkIndex] = []
    for name in networks:
        index = view.networks.get(name)
        if index is not None and name not in seen:
            seen.add(name)
            out.append(index)
    return out


def _records(entry: NameEntry, qtype: int, rng: random.Random) -> tuple[tuple[int, str], ...]:
    if qtype == A:
        chosen = [(A, a) for a in entry.v4]
    elif qtype == AAAA:
        chosen = [(AAAA, a) for a in entry.v6]
    elif qtype == ANY:
        chosen = [(A, a) for a in entry.v4] + [(AAAA, a) for a in entry.v6]
    else:
        return ()
    if len(chosen) > 1:
        rng.shuffle(chosen)
    return tuple(chosen)


def _found(entry: NameEntry, qtype: int, rng: random.Random, network: str) -> Lookup:
    if entry.empty:
        return Lookup(Outcome.NXDOMAIN, network=network, kind=entry.kind)
    return Lookup(Outcome.ANSWER, _records(entry, qtype, rng), network=network, kind=entry.kind)


def _in_network(qname: str, index: NetworkIndex) -> NameEntry | None:
    entry = index.names.get(qname)
    if entry is not None:
        return entry
    suffix = "." + index.name.lower()
    if qname.endswith(suffix) and len(qname) > len(suffix):
        return index.names.get(qname[: -len(suffix)])
    return None


def lookup(
    view: NamesView,
    networks: Sequence[str],
    qname: str,
    qtype: int,
    rng: random.Random,
    *,
    forward_single_label: bool = False,
) -> Lookup:
    """What the container attached to `networks` gets for (qname, qtype); see the rules."""
    if not qname:
        return FORWARD
    if qname.endswith((_V4_REVERSE, _V6_REVERSE)):
        return _reverse(view, networks, qname, qtype)
    attached = _attached(view, networks)
    for index in attached:
        entry = index.names.get(qname)
        if entry is not None:
            return _found(entry, qtype, rng, index.name)
    for index in attached:
        entry = _in_network(qname, index)
        if entry is not None:
            return _found(entry, qtype, rng, index.name)
    mine = {ix.name for ix in attached}
    for name, index in view.networks.items():
        if name not in mine and _in_network(qname, index) is not None:
            return NXDOMAIN
    if not forward_single_label and "." not in qname and qname != "localhost":
        return NXDOMAIN
    return FORWARD


def reverse_address(qname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a full reverse name stands for (None: not one)."""
    if qname.endswith(_V4_REVERSE):
        labels = qname[: -len(_V4_REVERSE)].split(".")
        if len(labels) != 4 or not all(x.isdigit() and x.isascii() and len(x) <= 3 for x in labels):
            return None
        try:
            return ipaddress.IPv4Address(".".join(reversed(labels)))
        except ValueError:
            return None
    if qname.endswith(_V6_REVERSE):
        nibbles = qname[: -len(_V6_REVERSE)].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            return None
        return ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16))
    return None


def _reverse(view: NamesView, networks: Sequence[str], qname: str, qtype: int) -> Lookup:
    addr = reverse_address(qname)
    if addr is None:
        return FORWARD
    text = str(addr)
    attached = _attached(view, networks)
    for index in attached:
        targets = index.ptr.get(text)
        if targets:
            records = tuple((PTR, t) for t in targets) if qtype in (PTR, ANY) else ()
            return Lookup(Outcome.ANSWER, records, network=index.name, kind="ptr")
    for index in view.networks.values():
        if text in index.ptr or (index.subnet is not None and addr in index.subnet):
            return NXDOMAIN
    return FORWARD
