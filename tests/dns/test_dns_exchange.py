"""Bytes in, decision out: `handle`, the fast path against dnspython, sizes and truncation,
and the checks on relayed replies (pure)."""

from __future__ import annotations

import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset
import pytest
from dns_fixtures import many_names, two_networks
from hypothesis import given
from hypothesis import strategies as st

from swimnet.dns import Ignore, Relay, Respond, answer, build_view, handle
from swimnet.dns.exchange import clip, fold_question, is_truncated, servfail, slow_path, upstream_reply
from swimnet.dns.fastpath import FAST_TYPES, parse
from swimnet.dns.limits import DEFAULT_TTL, MAX_UDP_REPLY

VIEW = two_networks()
NETS = ("front",)


def wire(name: str, rdtype: str | int = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def reply_of(out: Respond | Relay | Ignore) -> dns.message.Message:
    assert isinstance(out, Respond), out
    return dns.message.from_wire(out.data)


def test_an_answer_is_authoritative_offers_recursion_and_echoes_the_question() -> None:
    query = dns.message.make_query("WeB1.", "A", use_edns=0, payload=1232)
    query.flags |= dns.flags.CD
    out = handle(query.to_wire(), VIEW, NETS, random.Random(0))
    r = reply_of(out)
    assert r.id == query.id and r.flags & dns.flags.AA and r.flags & dns.flags.RA and r.flags & dns.flags.RD
    assert r.question[0].name.to_text() == "WeB1." and r.edns == 0
    assert [rrset.ttl for rrset in r.answer] == [DEFAULT_TTL]
    assert (out.qtype, out.rcode) == ("A", "NOERROR")  # type: ignore[union-attr]
    no_rd = dns.message.make_query("web1.", "A")
    no_rd.flags = 0
    assert not reply_of(handle(no_rd.to_wire(), VIEW, NETS, random.Random(0))).flags & dns.flags.RD


def test_errors_by_shape() -> None:
    status = dns.message.make_query("web1.", "A")
    status.set_opcode(dns.opcode.STATUS)
    out = handle(status.to_wire(), VIEW, NETS, random.Random(0))
    assert reply_of(out).rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query("web1.", "A")
    two.question.append(dns.message.make_query("rr.", "A").question[0])
    assert reply_of(handle(two.to_wire(), VIEW, NETS, random.Random(0))).rcode() == dns.rcode.FORMERR
    none = dns.message.make_query("web1.", "A")
    none.question = []
    assert reply_of(handle(none.to_wire(), VIEW, NETS, random.Random(0))).rcode() == dns.rcode.FORMERR
    v1 = wire("web1.", use_edns=1)
    assert reply_of(handle(v1, VIEW, NETS, random.Random(0))).rcode() == dns.rcode.BADVERS
    assert handle(b"\x00" * 11, VIEW, NETS, random.Random(0)) == Ignore("short")
    assert handle(b"\x00" * 5000, VIEW, NETS, random.Random(0)) == Ignore("oversized")
    response = bytearray(wire("web1."))
    response[2] |= 0x80
    assert handle(bytes(response), VIEW, NETS, random.Random(0)) == Ignore("not_a_query")
    garbage = wire("web1.")[:-2]
    out = handle(garbage, VIEW, NETS, random.Random(0))
    assert isinstance(out, Respond) and out.rcode == "FORMERR" and out.malformed is not None
    assert out.data[:2] == garbage[:2] and len(out.data) == 12


def test_a_compression_loop_is_formerr() -> None:
    plain = wire("web1.", id=99)
    for name in (b"\xc0\x0c", b"\x01a\xc0\x0e", b"\xc0\x20"):  # itself, forwards, beyond the end
        out = handle(plain[:12] + name + plain[-4:], VIEW, NETS, random.Random(0))
        assert isinstance(out, Respond) and out.rcode == "FORMERR", name


def test_names_not_ours_are_relayed_as_received() -> None:
    data = wire("Example.COM.", "A", use_edns=0, payload=1400)
    out = handle(data, VIEW, NETS, random.Random(0))
    assert isinstance(out, Relay) and out.query == data and out.edns and out.limit == 1400
    assert out.question == b"\x07example\x03com\x00\x00\x01\x00\x01"
    odd = wire("we\\.b1.", "A")  # a label with a dot in it is nobody's name here
    assert isinstance(handle(odd, VIEW, NETS, random.Random(0)), Relay)
    chaos = dns.message.make_query("web1.", "TXT", rdclass="CH").to_wire()
    assert isinstance(handle(chaos, VIEW, NETS, random.Random(0)), Relay)
    tcp = handle(wire("example.com."), VIEW, NETS, random.Random(0), tcp=True)
    assert isinstance(tcp, Relay) and tcp.limit == 65535


def test_udp_replies_fit_the_client_and_set_tc() -> None:
    view = build_view([many_names(400, per_service=200)])
    plain = handle(wire("svc0."), view, ("big",), random.Random(0))
    r = reply_of(plain)
    assert r.flags & dns.flags.TC and not r.answer and len(plain.data) <= 512  # type: ignore[union-attr]
    assert plain.truncated  # type: ignore[union-attr]
    edns = handle(wire("svc0.", use_edns=0, payload=1232), view, ("big",), random.Random(0))
    r = reply_of(edns)
    assert r.flags & dns.flags.TC and len(edns.data) <= 1232 and r.edns == 0  # type: ignore[union-attr]
    roomy = handle(wire("svc0.", use_edns=0, payload=65000), view, ("big",), random.Random(0))
    r = reply_of(roomy)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 200
    assert len(roomy.data) <= MAX_UDP_REPLY  # type: ignore[union-attr]
    over_tcp = reply_of(handle(wire("svc0."), view, ("big",), random.Random(0), tcp=True))
    assert not over_tcp.flags & dns.flags.TC and len(over_tcp.answer[0]) == 200


def test_a_tcp_reply_over_64k_keeps_what_fits() -> None:
    view = build_view([many_names(4500, per_service=4500)])
    out = handle(wire("svc0."), view, ("big",), random.Random(0), tcp=True)
    assert isinstance(out, Respond) and out.truncated and len(out.data) <= 65535
    r = dns.message.from_wire(out.data)
    assert r.flags & dns.flags.TC and 4000 < len(r.answer[0]) < 4500


QUERY_NAMES = ["web1", "WEB2", "tasks.web", "Tasks.RR", "rr", "empty", "cache", "db", "client.front",
               "example.com", "a-b_c.d", "2.0.1.10.in-addr.arpa", ""]  # fmt: skip


@given(
    name=st.sampled_from(QUERY_NAMES),
    rdtype=st.sampled_from([*sorted(FAST_TYPES), 12, 255, 99]),
    edns=st.sampled_from([None, 0]),
    payload=st.integers(0, 65535),
    flags=st.integers(0, 0xFFFF),
    ident=st.integers(0, 0xFFFF),
    seed=st.integers(0, 2**32),
    tcp=st.booleans(),
    networks=st.sampled_from([("front",), ("back",), ("front", "back"), ()]),
)
def test_the_fast_path_writes_what_dnspython_writes(
    name: str,
    rdtype: int,
    edns: int | None,
    payload: int,
    flags: int,
    ident: int,
    seed: int,
    tcp: bool,
    networks: tuple[str, ...],
) -> None:
    query = dns.message.make_query(name + ".", rdtype, id=ident)
    if edns is not None:
        query.use_edns(edns, 0, payload)
    data = bytearray(query.to_wire())
    data[2:4] = struct.pack("!H", flags & 0x07FF)  # QR and opcode clear; any other flag
    data = bytes(data)
    fast = handle(data, VIEW, networks, random.Random(seed), tcp=tcp)
    slow = slow_path(data, VIEW, networks, random.Random(seed), tcp)
    assert fast == slow
    if parse(data) is None:
        assert flags & 0x0200 or rdtype not in FAST_TYPES or name == "" or "\\" in name


def test_answer_reports_forward_for_unknown_names() -> None:
    query = dns.message.make_query("example.com.", "A")
    assert not hasattr(answer(query, VIEW, NETS, random.Random(0)), "message")


# -- relayed replies ----------------------------------------------------------------------


def relay_for(name: str = "Example.com.", **kw: object) -> Relay:
    out = handle(wire(name, **kw), VIEW, NETS, random.Random(0))
    assert isinstance(out, Relay)
    return out


def upstream_bytes(relay: Relay, sent_id: bytes, count: int = 1, case: str = "EXAMPLE.com.") -> bytes:
    query = dns.message.from_wire(relay.query)
    query.id = struct.unpack("!H", sent_id)[0]
    response = dns.message.make_response(query)
    response.question[0].name = dns.name.from_text(case)
    addrs = [f"198.51.100.{i % 250 + 1}" for i in range(count)]
    response.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "A", *addrs))
    return response.to_wire(max_size=65535)


def test_upstream_replies_must_match_the_query_sent() -> None:
    relay = relay_for()
    good = upstream_bytes(relay, b"\xab\xcd")
    mine = upstream_reply(good, relay, b"\xab\xcd")
    assert mine is not None and mine[:2] == relay.query[:2] and mine[2:] == good[2:]
    assert upstream_reply(good, relay, b"\xab\xce") is None  # another id
    assert upstream_reply(relay.query, relay, relay.query[:2]) is None  # not a response
    other = relay_for("example.org.")
    assert upstream_reply(good, other, b"\xab\xcd") is None  # another question
    assert upstream_reply(good[:14], relay, b"\xab\xcd") is None
    aaaa = relay_for("example.com.", rdtype="AAAA")
    assert upstream_reply(good, aaaa, b"\xab\xcd") is None  # another type
    assert fold_question(b"\x01A\x00\x00\x41\x00\x01") == b"\x01a\x00\x00\x41\x00\x01"


def test_clip_and_servfail() -> None:
    relay = relay_for()
    big = upstream_reply(upstream_bytes(relay, b"\x00\x01", count=60), relay, b"\x00\x01")
    assert big is not None and len(big) > 512
    cut, truncated = clip(big, relay)
    r = dns.message.from_wire(cut)
    assert truncated and is_truncated(cut) and not r.answer and r.id == dns.message.from_wire(relay.query).id
    small = upstream_reply(upstream_bytes(relay, b"\x00\x01"), relay, b"\x00\x01")
    assert small is not None and clip(small, relay) == (small, False)
    edns = relay_for(use_edns=0, payload=600)
    big = upstream_reply(upstream_bytes(edns, b"\x00\x02", count=60), edns, b"\x00\x02")
    assert big is not None
    r = dns.message.from_wire(clip(big, edns)[0])
    assert r.edns == 0 and r.flags & dns.flags.TC
    failed = dns.message.from_wire(servfail(relay))
    assert failed.rcode() == dns.rcode.SERVFAIL and failed.question[0].name.to_text() == "Example.com."


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "MX"])
def test_our_replies_carry_edns_only_when_asked(rdtype: str) -> None:
    assert reply_of(handle(wire("web1.", rdtype), VIEW, NETS, random.Random(0))).edns == -1
    with_opt = wire("web1.", rdtype, use_edns=0, options=[dns.edns.GenericOption(10, b"\x01" * 8)])
    assert reply_of(handle(with_opt, VIEW, NETS, random.Random(0))).edns == 0
