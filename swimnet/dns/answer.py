"""The answer function: a parsed query (dnspython) in, a reply message or FORWARD out.

    answer(query, view, ("front",), rng) -> Reply(message) | FORWARD

Rules:
- pure: no I/O, no clock; the only randomness is the injected `rng` (answer order);
- only standard queries (opcode QUERY) with exactly one question are answered: another
  opcode is NOTIMP, another question count FORMERR, an EDNS version above 0 BADVERS;
- the question's name is ours only if every label is made of the characters overlay names
  use ([A-Za-z0-9_-]); then `lookup` decides (scoping, NXDOMAIN, NODATA, shuffling);
  class IN only: any other class, and every name `lookup` does not know, is FORWARD;
- our replies are authoritative (AA), offer recursion (RA, we forward), echo the question
  as asked (case preserved) and carry EDNS when the query did (`OUR_PAYLOAD`); records
  carry `ttl` (short: the tables are the cache, a removed name must not live on in a
  client's cache); negative answers carry no SOA, so they are not cached at all;
- `resolve` is the same decision for a name and type given as text (the CLI's `dns`
  command): it answers as a container attached to `networks` would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import attrs
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset

from swimnet.dns.limits import DEFAULT_POLICY, DEFAULT_TTL, OUR_PAYLOAD, Policy
from swimnet.dns.lookup import AAAA, Lookup, Outcome, lookup
from swimnet.dns.lookup import A as TYPE_A
from swimnet.dns.names import NamesView

_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
IN = dns.rdataclass.IN
_A_RDATA: Callable[..., dns.rdata.Rdata] = dns.rdtypes.IN.A.A
_AAAA_RDATA: Callable[..., dns.rdata.Rdata] = dns.rdtypes.IN.AAAA.AAAA
_PTR_RDATA: Callable[..., dns.rdata.Rdata] = dns.rdtypes.ANY.PTR.PTR


@attrs.frozen
class Reply:
    message: dns.message.Message
    lookup: Lookup | None = None
    """The name decision behind the reply (None: an error reply)."""


@attrs.frozen
class Forward:
    """Not ours: the query goes to the upstream resolvers."""


FORWARD = Forward()


def query_key(name: dns.name.Name) -> str | None:
    """The lower-case key of a question name, None when no overlay name can look like it."""
    labels = name.labels
    if not labels or labels[-1] != b"":
        return None
    parts = labels[:-1]
    for label in parts:
        if not _NAME_BYTES.issuperset(label):
            return None
    return b".".join(parts).decode("ascii").lower()


def error_reply(query: dns.message.Message, rcode: dns.rcode.Rcode) -> Reply:
    response = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    response.set_rcode(rcode)
    return Reply(response)


def _rdata(rdtype: int, text: str) -> dns.rdata.Rdata:
    if rdtype == TYPE_A:
        return _A_RDATA(IN, dns.rdatatype.A, text)
    if rdtype == AAAA:
        return _AAAA_RDATA(IN, dns.rdatatype.AAAA, text)
    return _PTR_RDATA(IN, dns.rdatatype.PTR, dns.name.from_text(text))


def build_reply(query: dns.message.Message, found: Lookup, ttl: int = DEFAULT_TTL) -> Reply:
    """The reply message for a decided (ANSWER / NXDOMAIN) lookup."""
    response = dns.message.make_response(query, recursion_available=True, our_payload=OUR_PAYLOAD)
    response.flags |= dns.flags.AA
    if found.outcome is Outcome.NXDOMAIN:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return Reply(response, found)
    qname = query.question[0].name
    sets: dict[int, dns.rrset.RRset] = {}
    for rdtype, text in found.records:
        rrset = sets.get(rdtype)
        if rrset is None:
            rrset = sets[rdtype] = dns.rrset.RRset(qname, IN, dns.rdatatype.RdataType.make(rdtype))
            rrset.update_ttl(ttl)
            response.answer.append(rrset)
        rrset.add(_rdata(rdtype, text))
    return Reply(response, found)


def answer(
    query: dns.message.Message,
    view: NamesView,
    networks: Sequence[str],
    rng: random.Random,
    *,
    policy: Policy = DEFAULT_POLICY,
) -> Reply | Forward:
    """The reply to `query` from a container attached to `networks`, or FORWARD."""
    if query.opcode() != dns.opcode.QUERY:
        return error_reply(query, dns.rcode.NOTIMP)
    if len(query.question) != 1:
        return error_reply(query, dns.rcode.FORMERR)
    if query.edns > 0:
        return error_reply(query, dns.rcode.BADVERS)
    question = query.question[0]
    if question.rdclass != IN:
        return FORWARD
    key = query_key(question.name)
    if key is None:
        return FORWARD
    found = lookup(
        view, networks, key, int(question.rdtype), rng, forward_single_label=policy.forward_single_label
    )
    if found.outcome is Outcome.FORWARD:
        return FORWARD
    return build_reply(query, found, policy.ttl)


@attrs.frozen
class Resolution:
    """What `resolve` found, for people: the rcode, the records as text, forwarded or not."""

    rcode: str
    records: tuple[str, ...]
    forwarded: bool
    network: str | None = None
    kind: str | None = None


def resolve(
    view: NamesView,
    network_names: Sequence[str],
    name: str,
    qtype: str | int = "A",
    *,
    rng: random.Random | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Resolution:
    """Answer (name, qtype) as a container attached to `network_names` would (pure).

    `forwarded` says the name is not the overlay's (a container's query would go upstream;
    nothing is sent here). Raises ValueError for a name or type that is not valid DNS.
    """
    try:
        rdtype = dns.rdatatype.RdataType.make(qtype)
        query = dns.message.make_query(dns.name.from_text(name), rdtype)
    except Exception as exc:  # dnspython raises its own tree for bad text
        raise ValueError(f"{name!r} {qtype!r}: {exc}") from None
    result = answer(query, view, network_names, rng or random.Random(0), policy=policy)
    if isinstance(result, Forward):
        return Resolution("FORWARD", (), True)
    message = result.message
    records = tuple(
        f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
        for rrset in message.answer
        for rdata in rrset
    )
    found = result.lookup
    return Resolution(
        dns.rcode.to_text(message.rcode()),
        records,
        False,
        network=found.network if found else None,
        kind=found.kind if found else None,
    )

