"""`ResolverPool`, the agent's API: a resolver per container namespace, from its first
attached endpoint to its last, scoped to the networks of its endpoints (real namespaces)."""

from __future__ import annotations

import os

import dns.message
import dns.rcode
import pytest
import trio
from dns_fixtures import BACK, FRONT
from dns_lab import a_records, in_thread, namespaces, probe, query_udp

from swimnet.dns import NamesIndex, ResolverConfig
from swimnet.dns.pool import open_resolver_pool
from swimnet.dns.server import ResolverError
from swimnet.dns.upstream import Upstreams

_reason = probe()
pytestmark = [pytest.mark.kernel, pytest.mark.skipif(_reason is not None, reason=_reason or "")]


def q(name: str) -> dns.message.Message:
    return dns.message.make_query(name, "A")


async def test_attach_and_detach_drive_the_resolvers(tmp_path: os.PathLike[str]) -> None:
    index = NamesIndex()
    index.set_network(FRONT)
    index.set_network(BACK)
    etc = os.path.join(tmp_path, "netns")
    with namespaces(2) as (ns0, ns1):
        async with open_resolver_pool(
            index.view, upstreams=Upstreams.fixed([]), config=ResolverConfig(netns_etc=etc)
        ) as pool:
            first = await pool.attach(ns0, "ep-a", "front")
            assert pool.networks_of(ns0) == ("front",)
            r = await in_thread(query_udp, ns0, q("web1."))
            assert a_records(r) == ["10.1.0.2"]
            r = await in_thread(query_udp, ns0, q("cache."))
            assert r.rcode() == dns.rcode.NXDOMAIN

            # a second endpoint on back: the same resolver now sees both networks
            assert await pool.attach(ns0, "ep-b", "back") is first
            r = await in_thread(query_udp, ns0, q("cache."))
            assert a_records(r) == ["10.2.0.5"]
            r = await in_thread(query_udp, ns0, q("web1."))
            assert a_records(r) == ["10.1.0.2"]  # front was attached first

            await pool.attach(ns1, "ep-c", "back")
            assert set(pool.services()) == {ns0, ns1}
            r = await in_thread(query_udp, ns1, q("web1."))
            assert a_records(r) == ["10.2.0.2"]

            await pool.detach("ep-a")
            assert pool.networks_of(ns0) == ("back",)
            r = await in_thread(query_udp, ns0, q("web1."))
            assert a_records(r) == ["10.2.0.2"]
            await pool.detach("ep-b")
            assert set(pool.services()) == {ns1}
            assert not os.path.exists(os.path.join(etc, ns0))
            await pool.detach("ep-b")  # unknown now: nothing happens

            with pytest.raises(ResolverError):
                await pool.attach("dnst-no-such-namespace", "ep-x", "front")
            assert pool.networks_of("dnst-no-such-namespace") == ()
            assert os.path.exists(os.path.join(etc, ns1, "resolv.conf"))
        # leaving the block stopped the rest
        assert not os.path.exists(os.path.join(etc, ns1))
        assert not os.path.exists(etc) or not os.listdir(etc)


async def test_a_stopped_service_frees_the_port(tmp_path: os.PathLike[str]) -> None:
    index = NamesIndex()
    index.set_network(FRONT)
    with namespaces(1) as (ns,):
        async with open_resolver_pool(
            index.view, upstreams=Upstreams.fixed([]), config=ResolverConfig(netns_etc=None)
        ) as pool:
            for _ in range(3):
                await pool.attach(ns, "ep", "front")
                r = await in_thread(query_udp, ns, q("web1."))
                assert a_records(r) == ["10.1.0.2"]
                await pool.detach("ep")
                await trio.sleep(0)
