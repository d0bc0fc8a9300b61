"""The resolver serving inside a real network namespace, queried from inside it.

Every test makes its own namespaces (removed also on failure, see dns_lab) and its own stub
upstream on a 127.x address of the host namespace; no query ever leaves this machine.
"""

from __future__ import annotations

import contextlib
import os
import random
import struct
import subprocess
import sys

import dns.message
import dns.rcode
import pytest
import trio
from dns_fixtures import BACK, FRONT, endpoint
from dns_lab import (
    BIG_COUNT,
    UPSTREAM_ANSWER,
    StubUpstream,
    a_records,
    in_thread,
    namespaces,
    probe,
    query_tcp,
    query_udp,
    query_with_fallback,
    send_raw,
    tcp_raw,
    truncated,
)
from pyroute2 import IPRoute

from swimnet.dns import DnsMetrics, NamesIndex, ResolverConfig
from swimnet.dns.names import EndpointRow, NetworkRecords, ServiceRow
from swimnet.dns.server import ResolverError, ResolverService, open_resolver
from swimnet.dns.upstream import Upstreams
from swimnet.overlay.model import ServiceRecord

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def big_network() -> NetworkRecords:
    """front plus a dnsrr service `big` with BIG_COUNT backends (too many for 512 bytes)."""
    eps = tuple(
        EndpointRow(f"ep-big{i}", endpoint(f"big{i}", f"10.1.1.{i + 1}", 16)) for i in range(BIG_COUNT)
    )
    svc = ServiceRow(ServiceRecord("big", None, "dnsrr", backends=tuple(r.endpoint_id for r in eps)))
    return NetworkRecords("front", "10.1.0.0/16", FRONT.endpoints + eps, (*FRONT.services, svc))


def index_of(*networks: NetworkRecords) -> NamesIndex:
    index = NamesIndex()
    for records in networks:
        index.set_network(records)
    return index


def q(name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]


def lo_addresses(ns: str) -> set[str]:
    with IPRoute(netns=ns, flags=0) as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        return {m.get_attr("IFA_ADDRESS") for m in ipr.get_addr(index=lo, family=2)}


async def test_names_scoping_removal_forwarding_and_truncation(tmp_path: os.PathLike[str]) -> None:
    stub = StubUpstream()
    conf = stub.resolv_conf(os.path.join(tmp_path, "resolv.conf"))
    index = index_of(big_network(), BACK)
    metrics = DnsMetrics()
    etc = os.path.join(tmp_path, "netns")
    with namespaces(1) as (ns,):
        async with trio.open_nursery() as nursery:
            await nursery.start(stub.serve)
            async with open_resolver(
                ns,
                index.view,
                lambda: ("front",),
                upstreams=Upstreams(conf),
                metrics=metrics,
                config=ResolverConfig(netns_etc=etc),
            ):
                assert "127.0.0.11" in lo_addresses(ns)
                with open(os.path.join(etc, ns, "resolv.conf")) as f:
                    assert f.read() == "nameserver 127.0.0.11\noptions ndots:0\n"

                # an endpoint name, case-insensitively, over UDP and TCP
                r = await in_thread(query_udp, ns, q("Web1."))
                assert r.rcode() == dns.rcode.NOERROR and a_records(r) == ["10.1.0.2"]
                assert r.question[0].name.to_text() == "Web1."
                r = await in_thread(query_tcp, ns, q("web1."))
                assert a_records(r) == ["10.1.0.2"]

                # tasks.web: both healthy backends (the unknown backend id is skipped)
                r = await in_thread(query_udp, ns, q("tasks.web."))
                assert sorted(a_records(r)) == ["10.1.0.2", "10.1.0.3"]
                r = await in_thread(query_udp, ns, q("web."))
                assert a_records(r) == ["10.1.0.100"]

                # another network's name: NXDOMAIN, and not asked upstream
                r = await in_thread(query_udp, ns, q("cache."))
                assert r.rcode() == dns.rcode.NXDOMAIN
                assert not any("cache" in k for k in stub.seen)

                # a known name asked for AAAA: NOERROR, no answer
                r = await in_thread(query_udp, ns, q("web2.", "AAAA"))
                assert r.rcode() == dns.rcode.NOERROR and not r.answer

                # removed from the tables: NXDOMAIN at the very next query
                index.set_network(
                    NetworkRecords(
                        "front",
                        "10.1.0.0/16",
                        tuple(e for e in big_network().endpoints if e.endpoint_id != "ep-web2"),
                        big_network().services,
                    )
                )
                r = await in_thread(query_udp, ns, q("web2."))
                assert r.rcode() == dns.rcode.NXDOMAIN and not any("web2" in k for k in stub.seen)
                r = await in_thread(query_udp, ns, q("tasks.web."))
                assert a_records(r) == ["10.1.0.2"]

                # forwarded to the stub upstream
                r = await in_thread(query_udp, ns, q("upstream.example."))
                assert a_records(r) == [UPSTREAM_ANSWER]
                assert stub.seen["udp upstream.example."] == 1
                r = await in_thread(query_udp, ns, q("nothing.example."))
                assert r.rcode() == dns.rcode.NXDOMAIN

                # truncation: our own big answer, then a forwarded one
                r = await in_thread(query_udp, ns, q("tasks.big."))
                assert truncated(r) and not r.answer
                r, used_tcp = await in_thread(query_with_fallback, ns, q("tasks.big."))
                assert used_tcp and len(a_records(r)) == BIG_COUNT and not truncated(r)
                r = await in_thread(query_udp, ns, q("big.example."))
                assert truncated(r)
                assert stub.seen["tcp big.example."] == 1  # we retried upstream over TCP
                r, used_tcp = await in_thread(query_with_fallback, ns, q("big.example."))
                assert used_tcp and len(a_records(r)) == BIG_COUNT
                # with EDNS and room for it, one UDP round trip is enough
                r = await in_thread(query_udp, ns, q("tasks.big.", use_edns=0, payload=4096))
                assert not truncated(r) and len(a_records(r)) == BIG_COUNT
            nursery.cancel_scope.cancel()

        assert os.listdir(etc) == []  # the namespace's folder is gone
        assert "127.0.0.11" not in lo_addresses(ns)
    assert metrics.forwarded["answered"] >= 4 and metrics.forwarded["tcp_retry"] >= 2
    assert metrics.queries[("A", "NXDOMAIN")] >= 2
    assert metrics.truncated["udp"] >= 2


async def test_garbage_is_counted_and_the_server_keeps_answering(tmp_path: os.PathLike[str]) -> None:
    index = index_of(FRONT, BACK)
    metrics = DnsMetrics()
    good = q("web1.").to_wire()
    loop = bytearray(q("web1.").to_wire())
    loop[12:14] = b"\xc0\x0c"  # the question name points at itself
    garbage = [
        b"",
        b"\x00",
        b"hello, world",
        good[:15],
        bytes(loop),
        good[:2] + b"\x81\x80" + good[4:],  # a response
        good[:4] + b"\x00\x05" + good[6:],  # five questions, one present
        good + b"junk",
        b"\x12\x34\x01\x00" + random.Random(7).randbytes(296),  # random, but a query
        b"\x12\x34\x01\x00" + b"\xff" * 5000,  # oversized
    ]
    with namespaces(1) as (ns,):
        async with open_resolver(
            ns,
            index.view,
            lambda: ("front",),
            upstreams=Upstreams.fixed([]),
            metrics=metrics,
            config=ResolverConfig(netns_etc=None),
        ):
            replies = [await in_thread(send_raw, ns, data, 0.3) for data in garbage]
            assert replies[0] is None and replies[1] is None  # too short for a header
            assert replies[5] is None  # responses are never answered
            assert replies[-1] is None  # oversized
            formerr = dns.message.from_wire(replies[4])  # type: ignore[arg-type]
            assert formerr.rcode() == dns.rcode.FORMERR and formerr.id == struct.unpack("!H", loop[:2])[0]
            # TCP: a frame announcing more than we read, and a short one: closed, counted
            assert await in_thread(tcp_raw, ns, b"\xff\xff" + b"x" * 100) == b""
            assert await in_thread(tcp_raw, ns, b"\x00\x05hello") == b""
            r = await in_thread(query_udp, ns, q("web1."))
            assert a_records(r) == ["10.1.0.2"]
            # no upstream configured: SERVFAIL for what would be forwarded
            r = await in_thread(query_udp, ns, q("upstream.example."))
            assert r.rcode() == dns.rcode.SERVFAIL
    dropped = metrics.dropped
    assert dropped["short"] == 2 and dropped["not_a_query"] == 1 and dropped["oversized"] == 1
    assert dropped["tcp_oversized"] == 1 and dropped["tcp_short"] == 1
    assert sum(metrics.malformed.values()) >= 4
    assert metrics.forwarded["servfail"] == 1


async def test_tcp_connections_are_bounded(tmp_path: os.PathLike[str]) -> None:
    index = index_of(FRONT)
    metrics = DnsMetrics()
    config = ResolverConfig(netns_etc=None, max_tcp_connections=2, tcp_idle_timeout=5.0)
    with namespaces(1) as (ns,):
        async with open_resolver(
            ns, index.view, lambda: ("front",), upstreams=Upstreams.fixed([]), metrics=metrics, config=config
        ):
            import socket

            from dns_lab import DNS

            from swimnet.datapath.netns import path_of, socket_in

            held = [socket_in(path_of(ns), socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
            try:
                for sock in held:
                    sock.connect((DNS, 53))
                await trio.sleep(0.2)
                assert await in_thread(tcp_raw, ns, b"\x00\x1d" + q("web1.").to_wire()) == b""
                assert metrics.dropped["tcp_limit"] >= 1
            finally:
                for sock in held:
                    sock.close()
            await trio.sleep(0.2)
            r = await in_thread(query_tcp, ns, q("web1."))
            assert a_records(r) == ["10.1.0.2"]


async def test_a_silent_upstream_gives_servfail_within_the_budget(tmp_path: os.PathLike[str]) -> None:
    stub = StubUpstream()
    conf = stub.resolv_conf(os.path.join(tmp_path, "resolv.conf"))
    metrics = DnsMetrics()
    with namespaces(1) as (ns,):
        async with trio.open_nursery() as nursery:
            await nursery.start(stub.serve)
            async with open_resolver(
                ns,
                index_of(FRONT).view,
                lambda: ("front",),
                upstreams=Upstreams(conf),
                metrics=metrics,
                config=ResolverConfig(netns_etc=None, forward_timeout=0.5),
            ):
                r = await in_thread(query_udp, ns, q("silent.example."))
                assert r.rcode() == dns.rcode.SERVFAIL
                r = await in_thread(query_udp, ns, q("fail.example."))
                assert r.rcode() == dns.rcode.SERVFAIL
                # resolv.conf changes are picked up at the next forwarded query
                with open(conf, "w") as f:
                    f.write("nameserver 127.255.255.254\n")  # nobody there: no answer, SERVFAIL
                r = await in_thread(query_udp, ns, q("upstream.example."))
                assert r.rcode() == dns.rcode.SERVFAIL
                stub.resolv_conf(conf)
                r = await in_thread(query_udp, ns, q("upstream.example."))
                assert a_records(r) == [UPSTREAM_ANSWER]
                nursery.cancel_scope.cancel()
    assert metrics.forwarded["timeout"] >= 1


def _remove_if_empty(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)


async def test_ip_netns_exec_resolves_through_the_resolver() -> None:
    """The real /etc/netns/NAME/resolv.conf: a process started by `ip netns exec` resolves
    overlay names with the C library's own resolver."""
    index = index_of(FRONT)
    script = "import socket; print(socket.gethostbyname('tasks.web'), socket.gethostbyname('web1'))"
    had_etc_netns = os.path.isdir("/etc/netns")
    with namespaces(1) as (ns,), contextlib.ExitStack() as cleanup:
        if not had_etc_netns:  # the resolver makes /etc/netns/NAME; leave /etc as we found it
            cleanup.callback(_remove_if_empty, "/etc/netns")
        async with open_resolver(
            ns, index.view, lambda: ("front",), upstreams=Upstreams.fixed([]), config=ResolverConfig()
        ):
            assert os.path.exists(f"/etc/netns/{ns}/resolv.conf")
            done = await trio.run_process(
                ["ip", "netns", "exec", ns, sys.executable, "-c", script],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            first, second = done.stdout.decode().split()
            assert first in ("10.1.0.2", "10.1.0.3") and second == "10.1.0.2"
        assert not os.path.exists(f"/etc/netns/{ns}")


async def test_a_missing_namespace_is_a_resolver_error() -> None:
    service = ResolverService(
        "dnst-no-such-namespace", index_of(FRONT).view, lambda: ("front",), upstreams=Upstreams.fixed([])
    )
    async with trio.open_nursery() as nursery:
        with pytest.raises(ResolverError):
            await nursery.start(service.serve)


async def test_the_address_is_left_alone_when_it_was_there(tmp_path: os.PathLike[str]) -> None:
    with namespaces(1) as (ns,):
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "127.0.0.11/32", "dev", "lo"], check=True)
        async with open_resolver(
            ns, index_of(FRONT).view, lambda: ("front",), config=ResolverConfig(netns_etc=None)
        ):
            r = await in_thread(query_udp, ns, q("web1."))
            assert a_records(r) == ["10.1.0.2"]
        assert "127.0.0.11" in lo_addresses(ns)
