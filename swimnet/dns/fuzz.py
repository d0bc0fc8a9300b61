"""The fuzz harness of the resolver's input path: a corpus, a mutator and the invariants.

    for data in inputs(count, random.Random(seed)):
        check(data, view, ("front",), random.Random(seed))   # raises FuzzFailure

Used by the test suite (a few thousand inputs, plus Hypothesis) and by the `dnsfuzz`
benchmark (a million and more). Pure: no I/O; `random.Random` drives everything, so a
failure is reproduced from its seed and index.

Invariants `check` asserts for every input (UDP and TCP):
- `handle` returns (never raises) one of Respond / Relay / Ignore;
- a Respond carries the query's id, has QR set, parses with dnspython, and fits the client:
  at most 65535 bytes over TCP, over UDP at most the query's own limit (512 without EDNS,
  its payload up to `MAX_UDP_REPLY`) or `MAX_UDP_REPLY` when the query does not parse;
- a Relay is the query as received, with a question of at most 259 bytes, and only for a
  query dnspython parses;
- when the fast path takes the input, the dnspython path decides exactly the same bytes
  (same rng seed), so the fast path never answers what dnspython would answer otherwise.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence

import dns.edns
import dns.flags
import dns.message
import dns.name

from swimnet.dns import fastpath
from swimnet.dns.exchange import Ignore, Relay, Respond, handle, slow_path
from swimnet.dns.limits import DEFAULT_POLICY, MAX_TCP_MESSAGE, MAX_UDP_REPLY, Policy, udp_limit
from swimnet.dns.names import NamesView

_INTERESTING = (0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xC0, 0xFF)


class FuzzFailure(AssertionError):
    """An invariant did not hold; the message names it, `data` is the input."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(f"{message}: {data.hex()}")
        self.data = data


def seed_corpus(names: Sequence[str] = ("web1", "tasks.web", "rr", "empty", "cache")) -> list[bytes]:
    """Valid queries of many shapes: the starting points of the mutations."""
    out: list[bytes] = []
    qnames = [*names, *(n.upper() for n in names), "example.com", "2.0.1.10.in-addr.arpa", "."]
    for i, qname in enumerate(qnames):
        for rdtype in ("A", "AAAA", "PTR", "ANY", "MX", "HTTPS"):
            out.append(dns.message.make_query(qname, rdtype, id=i).to_wire())
            out.append(dns.message.make_query(qname, rdtype, use_edns=0, payload=1232, id=i).to_wire())
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)
    out.append(dns.message.make_query("web1", "A", use_edns=0, options=[cookie]).to_wire())
    out.append(dns.message.make_query("web1", "A", want_dnssec=True).to_wire())
    out.append(dns.message.make_query("web1", "A", use_edns=1).to_wire())
    two = dns.message.make_query("web1", "A")
    two.question.append(dns.message.make_query("rr", "A").question[0])
    out.append(two.to_wire())
    # a question name that is a pointer into the header, and one with a backward pointer
    plain = dns.message.make_query("web1", "A", id=7).to_wire()
    out.append(plain[:12] + b"\xc0\x04" + plain[-4:])
    out.append(plain[:12] + b"\x01a\xc0\x0c" + plain[-4:])
    return out


def mutate(data: bytes, rng: random.Random, corpus: Sequence[bytes] = ()) -> bytes:
    """1..4 random edits of `data` (bit flips, bytes, cuts, splices, counts, pointers)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(12)
        n = len(buf)
        if op == 0 and n:
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:
            at = rng.randint(0, n)
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and n:
            at = rng.randrange(n)
            del buf[at : at + rng.randint(1, 8)]
        elif op == 4 and n:
            del buf[rng.randrange(n) :]
        elif op == 5 and n > 2:
            start = rng.randrange(n)
            piece = buf[start : start + rng.randint(1, 16)]
            at = rng.randint(0, n)
            buf[at:at] = piece
        elif op == 6 and corpus:
            other = rng.choice(corpus)
            buf = buf[: rng.randint(0, n)] + bytearray(other[rng.randint(0, len(other)) :])
        elif op == 7 and n >= 12:
            field = 4 + 2 * rng.randrange(4)
            buf[field : field + 2] = struct.pack("!H", rng.choice((0, 1, 2, 3, 255, 0xFFFF)))
        elif op == 8 and n >= 4:
            buf[2:4] = rng.randbytes(2)
        elif op == 9 and n > 13:
            at = rng.randrange(12, n - 1)
            target = rng.choice((at, at + 1, at + 2, rng.randrange(n), 12, 0))
            buf[at : at + 2] = struct.pack("!H", 0xC000 | (target & 0x3FFF))
        elif op == 10 and n > 12:
            buf[rng.randrange(12, n)] = rng.randint(0x40, 0xFF)
        elif op == 11:
            buf += rng.randbytes(rng.randint(1, 64))
    return bytes(buf)


def inputs(count: int, rng: random.Random, corpus: Sequence[bytes] | None = None) -> Iterator[bytes]:
    """`count` inputs: mostly mutated corpus entries, some unmutated, some random bytes."""
    base = list(corpus) if corpus is not None else seed_corpus()
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            yield rng.choice(base)
        elif roll < 0.10:
            yield rng.randbytes(rng.randint(0, 64))
        else:
            yield mutate(rng.choice(base), rng, base)


def _query_limit(data: bytes) -> int:
    try:
        query = dns.message.from_wire(data)
    except Exception:
        return MAX_UDP_REPLY
    return udp_limit(query.payload if query.edns >= 0 else None)


def check(
    data: bytes,
    view: NamesView,
    networks: Sequence[str],
    seed: int,
    *,
    tcp: bool = False,
    differential: bool = True,
    policy: Policy = DEFAULT_POLICY,
) -> Respond | Relay | Ignore:
    """Handle `data` and assert the module's invariants (FuzzFailure otherwise)."""
    try:
        out = handle(data, view, networks, random.Random(seed), tcp=tcp, policy=policy)
    except Exception as exc:
        raise FuzzFailure(f"handle raised {exc!r}", data) from exc
    if isinstance(out, Respond):
        reply = out.data
        if reply[:2] != data[:2] or not reply[2] & 0x80:
            raise FuzzFailure("reply id or QR wrong", data)
        limit = MAX_TCP_MESSAGE if tcp else _query_limit(data)
        if len(reply) > limit:
            raise FuzzFailure(f"reply of {len(reply)} bytes over the limit {limit}", data)
        try:
            dns.message.from_wire(reply)
        except Exception as exc:
            raise FuzzFailure(f"our reply does not parse: {exc!r}", data) from exc
    elif isinstance(out, Relay):
        if out.query != data or len(out.question) > 259:
            raise FuzzFailure("relay does not carry the query", data)
        try:
            dns.message.from_wire(data)
        except Exception as exc:
            raise FuzzFailure("relayed a query dnspython refuses", data) from exc
    elif not isinstance(out, Ignore):
        raise FuzzFailure(f"unknown outcome {out!r}", data)
    if differential and fastpath.parse(data) is not None:
        slow = slow_path(data, view, networks, random.Random(seed), tcp, policy)
        if slow != out:
            raise FuzzFailure(f"fast path {out!r} != dnspython path {slow!r}", data)
    return out
