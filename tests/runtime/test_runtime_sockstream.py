"""swimnet.runtime.sockstream: TCP streams over non-blocking sockets (loopback only)."""

from __future__ import annotations

import os
import socket
import struct
from collections import Counter

import pytest
import trio
import trio.testing

from swimnet.runtime import sockstream
from swimnet.runtime.sockstream import SockStream


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


async def _pair() -> tuple[SockStream, SockStream]:
    """A connected (client, server) pair through `serve`."""
    listener = _listener()
    accepted: list[SockStream] = []
    got = trio.Event()

    async def keep(stream: SockStream) -> None:
        accepted.append(stream)
        got.set()

    stats: Counter[str] = Counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sockstream.serve, listener, keep, stats)
        client = await sockstream.connect(socket.AF_INET, listener.getsockname())
        with trio.fail_after(5):
            await got.wait()
        nursery.cancel_scope.cancel()
    listener.close()
    return client, accepted[0]


async def test_round_trip_small_and_larger_than_the_socket_buffers() -> None:
    client, server = await _pair()
    try:
        await client.send_all(b"hello")
        assert await server.receive_some(100) == b"hello"
        big = os.urandom(8 * 1024 * 1024)  # far beyond the kernel buffers: send_all must wait

        async def read_all() -> bytes:
            out = bytearray()
            while len(out) < len(big):
                out += await client.receive_some(1 << 16)
            return bytes(out)

        received: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def reader() -> None:
                received.append(await read_all())

            nursery.start_soon(reader)
            with trio.fail_after(20):
                await server.send_all(big)
        assert received == [big]
    finally:
        client.close()
        server.close()


async def test_the_peer_address_is_the_clients() -> None:
    client, server = await _pair()
    try:
        assert server.peer == client._sock.getsockname()[:2]
        assert client.peer == client._sock.getpeername()[:2]
    finally:
        client.close()
        server.close()


async def test_end_of_stream_and_closed_streams() -> None:
    client, server = await _pair()
    client.close()
    client.close()  # idempotent
    assert client.closed
    with trio.fail_after(5):
        assert await server.receive_some(10) == b""
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some(10)
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")
    server.close()


async def test_close_wakes_a_blocked_reader() -> None:
    client, server = await _pair()
    woke: list[type[BaseException]] = []

    async def reader() -> None:
        try:
            await server.receive_some(10)
        except trio.ClosedResourceError as exc:
            woke.append(type(exc))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        server.close()
    client.close()
    assert woke == [trio.ClosedResourceError]


async def test_a_reset_connection_is_a_broken_resource() -> None:
    client, server = await _pair()
    # SO_LINGER 0: close() sends a RST instead of a FIN
    client._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        while await server.receive_some(10):
            pass
        await server.send_all(b"x" * 100_000)  # EOF seen first on some kernels: writing fails
        await server.send_all(b"x" * 100_000)
    server.close()


async def test_connect_refused_raises_and_leaves_no_socket() -> None:
    probe = _listener()
    addr = probe.getsockname()
    probe.close()  # nobody listens there any more
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError):
        await sockstream.connect(socket.AF_INET, addr)
    assert len(os.listdir("/proc/self/fd")) == before


async def test_operations_that_complete_at_once_do_not_yield() -> None:
    """The point of the module: no scheduler step when the kernel has the data / the room."""
    client, server = await _pair()
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    try:
        await client.send_all(b"ping")
        await trio.sleep(0.05)  # the bytes are in the server's receive buffer now
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            assert await server.receive_some(10) == b"ping"
            await server.send_all(b"pong")
            assert not ran  # neither operation let the other task run
        assert ran
    finally:
        client.close()
        server.close()


async def test_a_reader_that_never_waits_still_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer streaming faster than we read cannot outrun a deadline."""
    monkeypatch.setattr(sockstream, "YIELD_EVERY", 1000)
    client, server = await _pair()
    try:
        await client.send_all(b"x" * 100_000)
        await trio.sleep(0.05)
        with trio.CancelScope() as scope:
            scope.cancel()  # already cancelled: the first checkpoint raises Cancelled
            for _ in range(1000):
                await server.receive_some(100)  # buffered: never waits
        assert scope.cancelled_caught
    finally:
        client.close()
        server.close()
