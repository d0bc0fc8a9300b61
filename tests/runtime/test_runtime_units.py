"""Unit tests of the runtime's small parts: framing, subscriptions, resolve, transport."""

from __future__ import annotations

import socket
from collections import Counter
from typing import Any

import pytest
import trio
import trio.testing

from swimnet.config import Config
from swimnet.errors import ConfigError, LocalProtocolError
from swimnet.membership.events import MemberJoined
from swimnet.membership.member import Member
from swimnet.runtime.framing import FrameError, encode_frame, receive_frame, send_frame
from swimnet.runtime.guard import MAX_SOURCES, StreamGuard, source_key
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
        assert transport.address[1] == transport.tcp.getsockname()[1]
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


# -- stream guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # the same /64: one source
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_source_key(host: str, source: str) -> None:
    assert source_key(host) == source


def _guard(stats: Counter[str], now: list[float], **limits: Any) -> StreamGuard:
    settings: dict[str, Any] = dict(
        prefix_timeout=1.0, max_per_source=2, buffer_budget=1000, inflate_rate=100.0, inflate_burst=500
    )
    settings.update(limits)
    return StreamGuard(stats, clock=lambda: now[0], **settings)


def test_guard_caps_connections_per_source() -> None:
    stats: Counter[str] = Counter()
    guard = _guard(stats, [0.0])
    sources = [guard.admit("10.0.0.1"), guard.admit("10.0.0.1"), guard.admit("10.0.0.1")]
    assert sources == ["10.0.0.1", "10.0.0.1", None] and stats["drop_stream_source_busy"] == 1
    assert guard.admit("10.0.0.2") == "10.0.0.2"  # another source is not affected
    guard.leave("10.0.0.1")
    assert guard.connections("10.0.0.1") == 1 and guard.admit("10.0.0.1") == "10.0.0.1"
    for _ in range(2):
        guard.leave("10.0.0.1")
    guard.leave("10.0.0.2")
    assert guard._connections == {}  # nothing is kept for sources without connections


def test_buffer_budget_reserves_and_records_its_peak() -> None:
    stats: Counter[str] = Counter()
    budget = _guard(stats, [0.0]).budget
    assert budget.reserve(600) and not budget.reserve(401) and budget.reserve(400)
    budget.release(600)
    budget.release(400)
    assert budget.in_use == 0 and budget.peak == 1000 == stats["stream_buffer_peak_bytes"]


def test_inflation_allowance_is_a_token_bucket_per_source() -> None:
    stats: Counter[str] = Counter()
    now = [0.0]
    guard = _guard(stats, now)
    take = guard.allowance("10.0.0.1")
    assert take(300) and take(200) and not take(1)  # the burst, then nothing
    assert guard.allowance("10.0.0.2")(500)  # another source has its own bucket
    now[0] = 2.0  # 100 bytes/s
    assert take(200) and not take(1)
    now[0] = 100.0
    assert take(500) and not take(1)  # refilled to the burst, never beyond
    assert stats["drop_stream_inflate_rate"] == 3 and stats["stream_inflated_bytes"] == 1700


def test_inflation_buckets_are_bounded() -> None:
    stats: Counter[str] = Counter()
    now = [0.0]
    guard = _guard(stats, now)
    for i in range(MAX_SOURCES + 10):
        assert guard.allowance(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")(500)
    assert len(guard._buckets) <= MAX_SOURCES


@pytest.mark.parametrize(
    "bad",
    [
        {"stream_prefix_timeout": 0},
        {"max_streams_per_source": 0},
        {"stream_buffer_budget": 1000},
        {"stream_inflate_rate": -1.0},
        {"stream_inflate_burst": 10},
    ],
)
def test_stream_limit_settings_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        Config.lan(**bad)
