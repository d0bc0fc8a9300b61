"""Integration: real trio runtimes on loopback UDP/TCP (127.0.0.1, port 0), fast timings."""

from __future__ import annotations

import os
import socket
from functools import partial

import pytest
import trio
from runtime_harness import converged, fast_config, run_node, sees, start_cluster, states, wait_for

from swimnet.config import Config
from swimnet.errors import JoinError, LocalProtocolError
from swimnet.membership.events import MemberEvent, MemberFailed, MemberJoined, MemberLeft, MemberUpdated
from swimnet.runtime import Node, open_node, serve_node
from swimnet.security.keyring import Keyring
from swimnet.wire.messages import State


async def test_five_nodes_converge() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 5)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="5 nodes alive everywhere")
        for node in nodes:
            assert node.local_member.address == node.address
            assert node.health_score >= 0
            assert node.stats["udp_packets_sent"] > 0
        nursery.cancel_scope.cancel()


async def test_crashed_node_is_declared_dead_and_events_come_in_order() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 5)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="convergence")
        victim, survivors = handles[-1], nodes[:-1]
        async with survivors[0].subscribe() as events:
            await victim.crash()
            await wait_for(
                lambda: all(sees(n, {victim.name: "dead"}) for n in survivors), what="dead everywhere"
            )
            seen: list[MemberEvent] = []
            while len(events):
                seen.append(events.receive_nowait())
        about_victim = [type(e).__name__ for e in seen if e.member.name == victim.name]
        # suspected (possibly refreshed) first, then failed once, never left
        assert about_victim[-1] == "MemberFailed" and about_victim.count("MemberFailed") == 1
        assert set(about_victim) <= {"MemberSuspected", "MemberFailed"}
        assert converged(survivors)
        nursery.cancel_scope.cancel()


async def test_graceful_leave_is_seen_as_left_not_dead() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 5)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="convergence")
        leaver, survivors = handles[2], [h.node for h in handles if h is not handles[2]]
        async with survivors[0].subscribe() as events:
            await leaver.stop()  # normal exit of `async with open_node()`: leaves first
            await wait_for(lambda: all(sees(n, {leaver.name: "left"}) for n in survivors), what="left")
            await trio.sleep(1.0)  # long enough for a wrong "dead" verdict to show up
            assert all(sees(n, {leaver.name: "left"}) for n in survivors)
            event = events.receive_nowait()
            assert isinstance(event, MemberLeft) and event.member.name == leaver.name
        nursery.cancel_scope.cancel()


async def test_explicit_leave_then_exit() -> None:
    async with trio.open_nursery() as nursery:
        a, b, c = await start_cluster(nursery, 3)
        await wait_for(lambda: converged([a.node, b.node, c.node]), what="convergence")
        await c.node.leave()
        await wait_for(lambda: sees(a.node, {c.name: "left"}) and sees(b.node, {c.name: "left"}), what="left")
        with pytest.raises(LocalProtocolError):
            await c.node.join([a.seed])
        with pytest.raises(LocalProtocolError):
            await c.node.set_meta(b"x")
        await c.stop()
        assert sees(a.node, {c.name: "left"})
        nursery.cancel_scope.cancel()


async def test_meta_update_propagates() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 5)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="convergence")
        target = nodes[3]
        before = target.local_member.incarnation
        async with nodes[0].subscribe() as events:
            await target.set_meta(b"role=edge")
            assert target.local_member.incarnation > before

            def everyone_has_meta() -> bool:
                return all(
                    m.meta == b"role=edge" for n in nodes for m in n.members() if m.name == target.name
                )

            await wait_for(everyone_has_meta, what="meta everywhere")
            event = await events.receive()
            assert isinstance(event, MemberUpdated) and event.member.meta == b"role=edge"
        with pytest.raises(LocalProtocolError):
            await target.set_meta(b"x" * 513)
        nursery.cancel_scope.cancel()


async def test_restarted_node_is_accepted_with_higher_incarnation() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 4)
        nodes = [h.node for h in handles]
        await wait_for(lambda: converged(nodes), what="convergence")
        victim = handles[-1]
        survivors = nodes[:-1]
        old_incarnation = victim.node.local_member.incarnation
        bind = victim.seed
        await victim.crash()
        await wait_for(lambda: all(sees(n, {victim.name: "dead"}) for n in survivors), what="dead")

        # same name, same address, the next incarnation
        async with open_node(fast_config(victim.name, bind=bind), incarnation=old_incarnation + 1) as node:
            assert node.address == victim.node.address
            assert node.local_member.incarnation == old_incarnation + 1
            assert await node.join([handles[0].seed]) == 1

            def accepted() -> bool:
                for n in survivors:
                    member = {m.name: m for m in n.members()}[victim.name]
                    if member.state != State.ALIVE or member.incarnation <= old_incarnation:
                        return False
                return True

            await wait_for(accepted, what="restarted node alive at a higher incarnation")
            await wait_for(lambda: converged([*survivors, node]), what="full convergence")
        nursery.cancel_scope.cancel()


async def test_garbage_is_counted_and_cluster_still_converges() -> None:
    async with trio.open_nursery() as nursery:
        handles = await start_cluster(nursery, 3)
        target = handles[0].node
        host, port = target.address

        # datagrams: random bytes, a wrong version byte, an empty one
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for payload in [os.urandom(100), os.urandom(1400), b"\xff" + os.urandom(20), b""]:
                await udp.sendto(payload, (host, port))

        async def tcp_send(data: bytes) -> trio.SocketStream:
            stream = await trio.open_tcp_stream(host, port)
            if data:
                await stream.send_all(data)
            return stream

        # streams: a huge length prefix, random bytes, a valid frame of garbage, a cut one, one
        # that stalls after its prefix, a silent one
        huge = await tcp_send(b"\xff\xff\xff\xff")
        noise = await tcp_send(b"\x00\x00\x00\x10" + os.urandom(16))
        truncated = await tcp_send(b"\x00\x00\x01\x00" + b"abc")
        await truncated.aclose()
        stalled = await tcp_send(b"\x00\x00\x01\x00" + b"abc")
        silent = await tcp_send(b"")

        def counted() -> bool:
            s = target.stats
            return (
                s["drop_decode"] >= 3
                and s["drop_stream_oversize"] >= 1
                and s["drop_stream_decode"] >= 1
                and s["drop_stream_truncated"] >= 1
                and s["drop_stream_timeout"] >= 1
                and s["drop_stream_prefix_timeout"] >= 1
            )

        await wait_for(counted, what="garbage counted by reason")
        # the server closed the silent and the stalled connections at their deadlines
        with trio.fail_after(5):
            assert await silent.receive_some(10) == b""
            assert await stalled.receive_some(10) == b""
        for stream in (huge, noise, stalled, silent):
            await stream.aclose()

        more = [await nursery.start(run_node, fast_config(f"late{i}")) for i in range(2)]
        for h in more:
            assert await h.node.join([handles[0].seed]) == 1
        everyone = [h.node for h in handles + more]
        await wait_for(lambda: converged(everyone), what="convergence after garbage")
        assert target.stats["internal_error_receive_datagram"] == 0
        nursery.cancel_scope.cancel()


async def test_many_idle_connections_do_not_stall_the_node() -> None:
    async with trio.open_nursery() as nursery:
        a, b = await start_cluster(nursery, 2)
        small = await nursery.start(partial(run_node, fast_config("small"), max_streams=4))
        # more silent connections than the node serves at once: none of them takes a slot
        idle = [await trio.open_tcp_stream(*small.node.address) for _ in range(10)]
        assert await b.node.join([small.seed]) == 1
        assert await small.node.join([a.seed]) == 1
        await wait_for(lambda: converged([a.node, b.node, small.node]), what="convergence")
        # each is cut at the prefix deadline
        await wait_for(lambda: small.node.stats["drop_stream_prefix_timeout"] >= 10, what="prefix deadlines")
        # connections that did send a length prefix hold the slots; beyond them: refused at once
        stalls = []
        for _ in range(10):
            stream = await trio.open_tcp_stream(*small.node.address)
            await stream.send_all(b"\x00\x00\x01\x00")
            stalls.append(stream)
        await wait_for(lambda: small.node.stats["drop_stream_busy"] >= 1, what="busy refusals")
        # they are cut at the stream deadline, freeing the slots
        await wait_for(lambda: small.node.stats["drop_stream_timeout"] >= 4, what="deadlines")
        assert await b.node.join([small.seed]) == 1
        for s in idle + stalls:
            await s.aclose()
        nursery.cancel_scope.cancel()


async def test_subscriber_overflow_drops_oldest() -> None:
    async with trio.open_nursery() as nursery:
        hub: Node = (await nursery.start(partial(run_node, fast_config("hub"), event_buffer=2))).node
        async with hub.subscribe() as slow, hub.subscribe(buffer=100) as roomy:
            assert slow.buffer == 2 and roomy.buffer == 100
            joiners = [await nursery.start(run_node, fast_config(f"j{i}")) for i in range(4)]
            for j in joiners:
                await j.node.join([format_seed(hub)])
            await wait_for(lambda: converged([hub, *[j.node for j in joiners]]), what="convergence")
            everything = []
            while len(roomy):
                everything.append(roomy.receive_nowait())
            assert len(everything) >= 4
            kept = [slow.receive_nowait(), slow.receive_nowait()]
            assert kept == everything[-2:]  # the newest, in order
            assert slow.dropped == len(everything) - 2
            assert roomy.dropped == 0
            with pytest.raises(trio.WouldBlock):
                slow.receive_nowait()
        assert slow.closed
        with pytest.raises(trio.EndOfChannel):
            await slow.receive()
        nursery.cancel_scope.cancel()


def format_seed(node: Node) -> str:
    return f"{node.address[0]}:{node.address[1]}"


async def test_join_error_when_no_seed_answers() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    async with open_node(fast_config("lonely")) as node:
        with pytest.raises(JoinError, match="no seed answered"):
            await node.join([f"127.0.0.1:{dead_port}"])
        with pytest.raises(JoinError):
            await node.join(["no-such-host.invalid:7946"])
        assert node.stats["join_resolve_failed"] == 1
        assert node.stats["stream_failed"] >= 1
        assert await node.join([]) == 0
        assert await node.join([format_seed(node)]) == 1  # ourselves: nothing to do
        assert states(node) == {"lonely": "alive"}


async def test_seeds_as_localhost_names() -> None:
    async with open_node(fast_config("a")) as a, open_node(fast_config("b", bind="localhost:0")) as b:
        assert b.address[0] == "127.0.0.1"
        assert await b.join([f"localhost:{a.address[1]}", ("127.0.0.1", a.address[1])]) == 2
        await wait_for(lambda: converged([a, b]), what="convergence")


async def test_port_zero_gives_one_port_for_udp_and_tcp() -> None:
    async with open_node(fast_config("p")) as node:
        host, port = node.address
        assert port != 0
        assert node.config.bind == f"{host}:{port}" and node.advertise_address == (host, port)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.connect((host, port))  # TCP listens there
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(OSError):
            udp.bind((host, port))  # and UDP holds the same port


async def test_crash_closes_sockets_and_port_can_be_reused() -> None:
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(run_node, fast_config("x"))
        host, port = handle.node.address
        await handle.crash()
        assert handle.node.closed
        with pytest.raises(LocalProtocolError):
            await handle.node.join(["127.0.0.1:1"])
        async with open_node(fast_config("x", bind=f"{host}:{port}")) as again:
            assert again.address == (host, port)


async def test_exception_in_body_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with open_node(fast_config("boom")) as node:
            raise KeyError("body")
    assert node.closed


async def test_serve_node_and_default_name() -> None:
    async with trio.open_nursery() as nursery:
        first: Node = await nursery.start(serve_node, fast_config(""))
        assert first.name == socket.gethostname()
        second: Node = await nursery.start(
            lambda task_status: serve_node(
                fast_config("second"), seeds=[format_seed(first)], task_status=task_status
            )
        )
        await wait_for(lambda: converged([first, second]), what="convergence")
        joined = [m.name for m in second.members()]
        assert sorted(joined) == sorted([first.name, "second"])
        nursery.cancel_scope.cancel()


async def test_events_from_join_are_member_joined() -> None:
    async with open_node(fast_config("a")) as a, a.subscribe() as events:
        async with open_node(fast_config("b")) as b:
            await b.join([format_seed(a)])
            event = await events.receive()
            assert isinstance(event, MemberJoined) and event.member.name == "b"
        # b left on exit
        event = await events.receive()
        assert isinstance(event, MemberLeft) and event.member.name == "b"
    assert not isinstance(event, MemberFailed)


async def test_open_node_rejects_a_taken_fixed_port() -> None:
    async with open_node(fast_config("a")) as a:
        with pytest.raises(OSError):
            async with open_node(Config.local(name="b", bind=format_seed(a))):
                pass


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_nodes() -> None:
    async with (
        open_node(fast_config("v6a", bind="[::1]:0")) as a,
        open_node(fast_config("v6b", bind="[::1]:0")) as b,
    ):
        assert a.address[0] == "::1" and a.config.bind.startswith("[::1]:")
        assert await b.join([f"[::1]:{a.address[1]}"]) == 1
        await wait_for(lambda: converged([a, b]), what="IPv6 convergence")
        assert b.stats["drop_send_bad_address"] == 0


async def test_table_entries_replicate_over_real_sockets() -> None:
    async with open_node(fast_config("ta")) as a, open_node(fast_config("tb")) as b:
        await b.join([format_seed(a)])
        await wait_for(lambda: converged([a, b]), what="convergence")
        await a.join_network("overlay1")
        await b.join_network("overlay1")
        assert a.tables.networks() == ["overlay1"]
        async with b.subscribe_tables() as changes, b.subscribe() as members:
            local = await a.table("overlay1", "endpoints").put("ep1", b"10.0.0.2")
            assert [c.key for c in local] == ["ep1"]
            change = await changes.receive()
            assert (change.network, change.table, change.key, change.value) == (
                "overlay1",
                "endpoints",
                "ep1",
                b"10.0.0.2",
            )
            assert change.owner == "ta"
            assert b.table("overlay1", "endpoints").items() == {"ep1": b"10.0.0.2"}
            await a.table("overlay1", "endpoints").delete("ep1")
            await wait_for(lambda: b.tables.get("overlay1", "endpoints", "ep1") is None, what="delete")
            assert len(members) == 0  # table changes never reach member subscriptions


async def test_encrypted_cluster_converges_and_refuses_plaintext() -> None:
    ring = Keyring([os.urandom(32)])
    secure = partial(fast_config, keyring=ring, label="swimnet-test")
    async with trio.open_nursery() as nursery:
        handles = [await nursery.start(run_node, secure(f"s{i}")) for i in range(3)]
        for h in handles[1:]:
            assert await h.node.join([handles[0].seed]) == 1
        await wait_for(lambda: converged([h.node for h in handles]), what="encrypted convergence")
        # a node without the key cannot join, and its traffic is refused by reason
        async with open_node(fast_config("intruder")) as intruder:
            with pytest.raises(JoinError):
                await intruder.join([handles[0].seed])
        target = handles[0].node.stats
        assert sum(v for k, v in target.items() if k.startswith("drop_auth_")) >= 1
        assert all("intruder" not in states(h.node) for h in handles)
        nursery.cancel_scope.cancel()
