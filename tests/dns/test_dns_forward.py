"""Relaying to upstream resolvers (trio, loopback of the host namespace only): the stub
upstream of dns_lab on a free port of a random 127.x address, and `Upstreams`."""

from __future__ import annotations

import os
import random
import socket
import struct

import dns.message
import dns.rcode
import trio
from dns_fixtures import two_networks
from dns_lab import BIG_COUNT, UPSTREAM_ANSWER, StubUpstream, a_records, truncated

from swimnet.dns import DnsMetrics, Relay, handle
from swimnet.dns.forward import forward
from swimnet.dns.upstream import Upstreams, parse_resolv_conf

VIEW = two_networks()


def relay(name: str, **kw: object) -> Relay:
    out = handle(dns.message.make_query(name, "A", **kw).to_wire(), VIEW, ("front",), random.Random(0))  # type: ignore[arg-type]
    assert isinstance(out, Relay)
    return out


async def test_forwarding_udp_then_tcp_on_truncation() -> None:
    stub = StubUpstream(port=0)
    metrics = DnsMetrics()
    async with trio.open_nursery() as nursery:
        await nursery.start(stub.serve)
        upstreams = [(stub.address, stub.port)]
        query = relay("upstream.example.")
        r = dns.message.from_wire(await forward(query, upstreams, metrics))
        assert a_records(r) == [UPSTREAM_ANSWER] and r.id == struct.unpack("!H", query.query[:2])[0]
        # too big for the client's 512 bytes: asked again over TCP, then cut for the client
        big = relay("big.example.")
        r = dns.message.from_wire(await forward(big, upstreams, metrics))
        assert truncated(r) and stub.seen["tcp big.example."] == 1
        roomy = relay("big.example.", use_edns=0, payload=4096)
        r = dns.message.from_wire(await forward(roomy, upstreams, metrics))
        assert not truncated(r) and len(a_records(r)) == BIG_COUNT
        nursery.cancel_scope.cancel()
    assert metrics.forwarded["answered"] == 3 and metrics.forwarded["tcp_retry"] == 1
    assert metrics.forwarded["truncated"] == 1


async def test_servfail_moves_on_and_silence_times_out() -> None:
    first, second = StubUpstream(port=0), StubUpstream(port=0)
    metrics = DnsMetrics()
    async with trio.open_nursery() as nursery:
        await nursery.start(first.serve)
        await nursery.start(second.serve)
        both = [(first.address, first.port), (second.address, second.port)]
        r = dns.message.from_wire(await forward(relay("fail.example."), both, metrics))
        assert r.rcode() == dns.rcode.SERVFAIL  # both said so: the last reply is passed on
        assert first.seen["udp fail.example."] == second.seen["udp fail.example."] == 1
        start = trio.current_time()
        r = dns.message.from_wire(await forward(relay("silent.example."), both, metrics, timeout=0.4))
        assert r.rcode() == dns.rcode.SERVFAIL and r.question[0].name.to_text() == "silent.example."
        assert trio.current_time() - start < 2.0
        assert first.seen["udp silent.example."] == second.seen["udp silent.example."] == 1
        r = dns.message.from_wire(await forward(relay("upstream.example."), [], metrics))
        assert r.rcode() == dns.rcode.SERVFAIL
        nursery.cancel_scope.cancel()
    assert metrics.forwarded["timeout"] == 2 and metrics.forwarded["servfail"] == 2


async def test_replies_to_another_query_are_ignored() -> None:
    """A rogue upstream that first sends a wrong id and another question, then the reply."""
    metrics = DnsMetrics()
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    async def rogue() -> None:
        data, addr = await sock.recvfrom(65535)
        query = dns.message.from_wire(data)
        good = dns.message.make_response(query)
        good.answer.append(dns.rrset.from_text(query.question[0].name, 5, "IN", "A", "192.0.2.7"))
        wrong_id = bytearray(good.to_wire())
        wrong_id[0] ^= 0xFF
        other = dns.message.make_response(dns.message.make_query("other.example.", "A", id=query.id))
        for out in (bytes(wrong_id), other.to_wire(), data, good.to_wire()):
            await sock.sendto(out, addr)

    with sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rogue)
            r = dns.message.from_wire(await forward(relay("x.example."), [("127.0.0.1", port)], metrics))
            assert a_records(r) == ["192.0.2.7"]
    assert metrics.forwarded["mismatched"] == 3


def test_parse_resolv_conf() -> None:
    text = """# comment
nameserver 10.0.0.2
nameserver   fe80::1%eth0
nameserver not-an-address
search example.com
nameserver 10.0.0.2
nameserver ::1
nameserver 10.0.0.3
nameserver 10.0.0.4
options ndots:2
"""
    assert parse_resolv_conf(text) == ("10.0.0.2", "::1", "10.0.0.3")
    assert parse_resolv_conf("") == ()


def test_upstreams_follow_the_file(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "resolv.conf")
    upstreams = Upstreams(path)
    assert upstreams.current() == ()
    with open(path, "w") as f:
        f.write("nameserver 10.0.0.2\n")
    assert upstreams.current() == (("10.0.0.2", 53),)
    assert upstreams.current() == (("10.0.0.2", 53),) and upstreams.reads == 1
    with open(path, "w") as f:
        f.write("nameserver 10.0.0.3\nnameserver 10.0.0.4\n")
    assert upstreams.current() == (("10.0.0.3", 53), ("10.0.0.4", 53))
    os.unlink(path)
    assert upstreams.current() == ()
    assert Upstreams.fixed([("127.0.0.1", 5353)]).current() == (("127.0.0.1", 5353),)
