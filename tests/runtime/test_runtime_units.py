"""Unit tests of the runtime's small parts: framing, subscriptions, resolve, transport."""

from __future__ import annotations

import socket
from collections import Counter

import pytest
import trio
import trio.testing

from swimnet.errors import ConfigError, LocalProtocolError
from swimnet.membership.events import MemberJoined
from swimnet.membership.member import Member
from swimnet.runtime.framing import FrameError, encode_frame, receive_frame, send_frame
from swimnet.runtime.resolve import is_numeric, is_wildcard, resolve_advertise, resolve_seed
from swimnet.runtime.subscriptions import Subscription
from swimnet.runtime.transport import open_transport
from swimnet.wire.messages import State

# -- framing --------------------------------------------------------------------------------


async def _frame_from(data: bytes, max_size: int = 1000, close: bool = True) -> bytes:
    send, receive = trio.testing.memory_stream_pair()
    await send.send_all(data)
    if close:
        await send.aclose()
    return await receive_frame(receive, max_size)


async def test_frame_round_trip() -> None:
    send, receive = trio.testing.memory_stream_pair()
    assert await send_frame(send, b"hello") == 9
    assert await receive_frame(receive, 100) == b"hello"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert await _frame_from(encode_frame(b"")) == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x00\x00", "truncated"),
        (b"\x00\x00\x00\x05abc", "truncated"),
        (b"\xff\xff\xff\xff", "oversize"),
        (b"\x00\x00\x03\xe9", "oversize"),  # 1001 > 1000
        (b"\x00\x00\x00\x01ab", "trailing"),
    ],
)
async def test_frame_errors(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        await _frame_from(data)
    assert info.value.reason == reason


async def test_oversize_is_refused_before_the_body_arrives() -> None:
    with trio.fail_after(5), pytest.raises(FrameError):
        await _frame_from(b"\x7f\xff\xff\xff", close=False)


# -- subscriptions --------------------------------------------------------------------------


def _event(i: int) -> MemberJoined:
    return MemberJoined(Member(f"n{i}", ("127.0.0.1", 7000 + i), State.ALIVE, 1))


async def test_subscription_drops_oldest_when_full() -> None:
    registered: list[Subscription[MemberJoined]] = []
    sub: Subscription[MemberJoined] = Subscription(3, registered.append, registered.remove)
    async with sub:
        assert registered == [sub]
        for i in range(5):
            sub.push(_event(i))
        assert sub.dropped == 2 and len(sub) == 3
        assert [(await sub.receive()).member.name for _ in range(3)] == ["n2", "n3", "n4"]
    assert registered == [] and sub.closed
    sub.push(_event(9))  # ignored once closed
    assert [e async for e in sub] == []


async def test_subscription_wakes_a_waiting_receiver_and_ends_on_close() -> None:
    sub: Subscription[MemberJoined] = Subscription(4, lambda s: None, lambda s: None)
    await sub.__aenter__()
    got: list[str] = []

    async def consume() -> None:
        async for event in sub:
            got.append(event.member.name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        sub.push(_event(1))
        sub.push(_event(2))
        await trio.testing.wait_all_tasks_blocked()
        sub.close()
    assert got == ["n1", "n2"]


async def test_subscription_must_be_entered_once() -> None:
    sub: Subscription[MemberJoined] = Subscription(4, lambda s: None, lambda s: None)
    with pytest.raises(LocalProtocolError, match="async with"):
        await sub.receive()
    async with sub:
        pass
    with pytest.raises(LocalProtocolError, match="once"):
        await sub.__aenter__()


def test_subscription_buffer_must_be_positive() -> None:
    with pytest.raises(ValueError, match="buffer"):
        Subscription(0, lambda s: None, lambda s: None)


# -- resolve --------------------------------------------------------------------------------


def test_numeric_and_wildcard() -> None:
    assert is_numeric("127.0.0.1", socket.AF_INET)
    assert not is_numeric("localhost", socket.AF_INET)
    assert not is_numeric("::1", socket.AF_INET)
    assert is_numeric("::1", socket.AF_INET6)
    assert is_numeric("fe80::1%lo", socket.AF_INET6)
    assert is_wildcard("0.0.0.0") and is_wildcard("::") and not is_wildcard("127.0.0.1")
    assert not is_wildcard("localhost")


async def test_resolve_seed_forms() -> None:
    assert await resolve_seed("10.0.0.1:8000", socket.AF_INET) == [("10.0.0.1", 8000)]
    assert await resolve_seed("10.0.0.1", socket.AF_INET) == [("10.0.0.1", 7946)]
    assert await resolve_seed(("10.0.0.2", 1), socket.AF_INET) == [("10.0.0.2", 1)]
    assert await resolve_seed("localhost:9", socket.AF_INET) == [("127.0.0.1", 9)]
    with pytest.raises(ConfigError):
        await resolve_seed("host:notaport", socket.AF_INET)
    with pytest.raises(OSError):
        await resolve_seed("no-such-host.invalid:1", socket.AF_INET)


async def test_resolve_advertise() -> None:
    bound = ("127.0.0.1", 4000)
    assert await resolve_advertise(None, bound, socket.AF_INET) == bound
    assert await resolve_advertise("10.1.2.3:0", bound, socket.AF_INET) == ("10.1.2.3", 4000)
    assert await resolve_advertise("10.1.2.3:5000", bound, socket.AF_INET) == ("10.1.2.3", 5000)
    assert await resolve_advertise("localhost:0", bound, socket.AF_INET) == bound
    host, port = await resolve_advertise(None, ("0.0.0.0", 4000), socket.AF_INET)
    assert port == 4000 and is_numeric(host, socket.AF_INET) and not is_wildcard(host)


# -- transport ------------------------------------------------------------------------------


async def test_send_errors_are_counted_never_raised() -> None:
    stats: Counter[str] = Counter()
    transport = open_transport(socket.AF_INET, "127.0.0.1", 0, stats)
    try:
        assert transport.address[1] == transport.listener.socket.getsockname()[1]
        assert not transport.send_datagram(("evil.example", 7946), b"x")  # never looked up
        assert not transport.send_datagram(("::1", 7946), b"x")  # foreign family
        assert not transport.send_datagram(("127.0.0.1", 0), b"x")
        assert stats["drop_send_bad_address"] == 3
        assert not transport.send_datagram(("127.0.0.1", 9), b"x" * 70_000)  # EMSGSIZE
        assert stats["send_errors"] == 1 and stats["send_error_EMSGSIZE"] == 1
        assert transport.send_datagram(("127.0.0.1", 9), b"x")
        with pytest.raises(ValueError):
            await transport.connect(("localhost", 9))
    finally:
        transport.close()
        transport.close()
    assert transport.closed
