"""Bytes in, decision out: what the server does with one received DNS message.

    handle(data, view, networks, rng, tcp=False) -> Respond(bytes) | Relay(...) | Ignore(reason)

Rules:
- pure (no I/O; randomness only from `rng`); every input gives one of the three outcomes,
  and the outcome carries the labels the metrics count (type, rcode, reason);
- shorter than a header, larger than `MAX_QUERY_SIZE`, or a response (QR set): Ignore,
  never answered (answering responses would let two servers loop);
- another opcode than QUERY: NOTIMP; bytes dnspython cannot parse (truncated, bad labels,
  compression pointers that do not point backwards, trailing junk, ...): FORMERR, a bare
  header echoing the id (there may be no question to echo);
- the common query shape goes through `fastpath`, everything else through dnspython and
  `answer`; both make the same bytes for the same decision;
- a UDP reply is at most the client's size (512 without EDNS, its EDNS payload otherwise,
  `MAX_UDP_REPLY` at most); a larger one is cut to the question (and OPT) with TC set, so
  the client retries over TCP; a TCP reply larger than 65535 bytes keeps as many answer
  records as fit, with TC set;
- a query that is not ours is a `Relay`: the query bytes as received, the question
  (lower-cased, uncompressed, for matching the upstream's reply), and the client's size;
  `upstream_reply` checks an upstream's bytes against it and `clip` fits them to the client.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from swimnet.dns import fastpath
from swimnet.dns.answer import Forward, answer
from swimnet.dns.limits import (
    DEFAULT_POLICY,
    HEADER_SIZE,
    MAX_QUERY_SIZE,
    MAX_TCP_MESSAGE,
    OUR_PAYLOAD,
    Policy,
    udp_limit,
)
from swimnet.dns.lookup import Outcome, lookup
from swimnet.dns.metrics import qtype_label, rcode_label
from swimnet.dns.names import NamesView

FORMERR = 1
SERVFAIL = 2
NOTIMP = 4
_TC = 0x02  # in the third header byte
_QR = 0x80  # in the third header byte


@attrs.frozen
class Respond:
    """Send these bytes back to the client."""

    data: bytes
    qtype: str
    rcode: str
    truncated: bool = False
    malformed: str | None = None
    """Why the query was refused as malformed (the parser's error class), if it was."""


@attrs.frozen
class Relay:
    """Ask the upstream resolvers, then answer the client with what they say."""

    query: bytes
    question: bytes
    """The question section, uncompressed and lower-cased."""
    limit: int
    """The largest reply the client takes."""
    edns: bool
    qtype: str


@attrs.frozen
class Ignore:
    """Send nothing."""

    reason: str


def header_reply(data: bytes, rcode: int) -> bytes:
    """A bare reply header: the query's id, opcode and RD, QR and RA set, no sections."""
    flags = 0x8000 | ((data[2] & 0x79) << 8) | 0x0080 | rcode
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


def handle(
    data: bytes,
    view: NamesView,
    networks: Sequence[str],
    rng: random.Random,
    *,
    tcp: bool = False,
    policy: Policy = DEFAULT_POLICY,
) -> Respond | Relay | Ignore:
    """The server's decision for one received message (see the module rules)."""
    size = len(data)
    if size < HEADER_SIZE:
        return Ignore("short")
    if size > MAX_QUERY_SIZE:
        return Ignore("oversized")
    if data[2] & _QR:
        return Ignore("not_a_query")
    if data[2] & 0x78:
        return Respond(header_reply(data, NOTIMP), "unknown", "NOTIMP")
    simple = fastpath.parse(data)
    if simple is not None:
        decided = _fast(data, simple, view, networks, rng, tcp, policy)
        if decided is not None:
            return decided
    return slow_path(data, view, networks, rng, tcp, policy)


def _fast(
    data: bytes,
    query: fastpath.SimpleQuery,
    view: NamesView,
    networks: Sequence[str],
    rng: random.Random,
    tcp: bool,
    policy: Policy,
) -> Respond | Relay | None:
    found = lookup(
        view, networks, query.key, query.qtype, rng, forward_single_label=policy.forward_single_label
    )
    limit = MAX_TCP_MESSAGE if tcp else udp_limit(query.payload)
    if found.outcome is Outcome.FORWARD:
        return Relay(data, fold_question(query.question), limit, query.edns, qtype_label(query.qtype))
    wire = fastpath.build(query, found, policy.ttl, limit)
    if wire is None:
        return None
    rcode = "NXDOMAIN" if found.outcome is Outcome.NXDOMAIN else "NOERROR"
    return Respond(wire, qtype_label(query.qtype), rcode)


def slow_path(
    data: bytes,
    view: NamesView,
    networks: Sequence[str],
    rng: random.Random,
    tcp: bool,
    policy: Policy = DEFAULT_POLICY,
) -> Respond | Relay:
    try:
        query = dns.message.from_wire(data)
    except Exception as exc:  # every parse failure dnspython has, foreseen or not
        return Respond(header_reply(data, FORMERR), "unknown", "FORMERR", malformed=type(exc).__name__)
    qtype = qtype_label(int(query.question[0].rdtype)) if len(query.question) == 1 else "unknown"
    limit = MAX_TCP_MESSAGE if tcp else udp_limit(query.payload if query.edns >= 0 else None)
    result = answer(query, view, networks, rng, policy=policy)
    if isinstance(result, Forward):
        q = query.question[0]
        question = q.name.to_digestable() + struct.pack("!HH", q.rdtype, q.rdclass)
        return Relay(data, question, limit, query.edns >= 0, qtype)
    wire, truncated = fit(result.message, limit, tcp)
    return Respond(wire, qtype, rcode_label(result.message.rcode()), truncated)


def fit(message: dns.message.Message, limit: int, tcp: bool) -> tuple[bytes, bool]:
    """The message's bytes within `limit`, and whether it had to be truncated (TC set)."""
    try:
        return _wire(message, limit), False
    except dns.exception.TooBig:
        pass
    message.flags |= dns.flags.TC
    if not tcp or len(message.answer) != 1:
        message.answer, message.authority, message.additional = [], [], []
        return _wire(message, limit), True
    full = message.answer[0]
    items = list(full)
    low, high = 0, len(items)  # low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        message.answer = [_subset(full, items[:mid])]
        try:
            _wire(message, limit)
            low = mid
        except dns.exception.TooBig:
            high = mid
    message.answer = [_subset(full, items[:low])] if low else []
    return _wire(message, limit), True


def _wire(message: dns.message.Message, limit: int) -> bytes:
    # dnspython shuffles rdata with the global `random` unless told not to: the order is
    # the lookup's (our injected rng), so replies are reproducible from a seed
    return message.to_wire(max_size=limit, want_shuffle=False)


def _subset(full: dns.rrset.RRset, items: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
    part = dns.rrset.RRset(full.name, full.rdclass, full.rdtype)
    part.update_ttl(full.ttl)
    for item in items:
        part.add(item)
    return part


# -- relayed queries ----------------------------------------------------------------------


def fold_question(question: bytes) -> bytes:
    """An uncompressed question section with its name lower-cased (type and class kept)."""
    return question[:-4].lower() + question[-4:]


def upstream_reply(reply: bytes, relay: Relay, sent_id: bytes) -> bytes | None:
    """The upstream's reply with the client's id put back, None if it does not answer
    the query we sent (wrong id, not a response, another question, too short)."""
    end = HEADER_SIZE + len(relay.question)
    if len(reply) < end or reply[:2] != sent_id or not reply[2] & _QR:
        return None
    if reply[4:6] != b"\x00\x01" or fold_question(reply[HEADER_SIZE:end]) != relay.question:
        return None
    return relay.query[:2] + reply[2:]


def is_truncated(reply: bytes) -> bool:
    return len(reply) > 2 and bool(reply[2] & _TC)


def reply_rcode(reply: bytes) -> int:
    return reply[3] & 0x0F if len(reply) >= 4 else SERVFAIL


def clip(reply: bytes, relay: Relay) -> tuple[bytes, bool]:
    """An upstream reply fitted to the client: as is, or the question (and OPT) with TC."""
    if len(reply) <= relay.limit:
        return reply, False
    end = HEADER_SIZE + len(relay.question)
    head = reply[:2] + bytes([reply[2] | _TC, reply[3]])
    counts = struct.pack("!HHHH", 1, 0, 0, 1 if relay.edns else 0)
    opt = b"\x00" + struct.pack("!HHIH", 41, OUR_PAYLOAD, 0, 0) if relay.edns else b""
    return head + counts + reply[HEADER_SIZE:end] + opt, True


def servfail(relay: Relay) -> bytes:
    """SERVFAIL for a relayed query no upstream answered (echoing its question)."""
    data = relay.query
    flags = 0x8000 | ((data[2] & 0x79) << 8) | 0x0080 | SERVFAIL
    end = HEADER_SIZE + len(relay.question)
    if fold_question(data[HEADER_SIZE:end]) != relay.question:  # compressed: no echo
        return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)
    return data[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + data[HEADER_SIZE:end]
