"""Hostile stream peers against real nodes on loopback (issue 16, items 3, 5 and 6).

Attack classes, each reproduced on loopback and pinned here:
- idle connections: many connections that never send a length prefix, re-opened as soon as
  the node closes them, used to take every stream slot (joins and push-pulls failed);
- memory: concurrent large frames, and frames from non-key-holders, buffered before they
  are authenticated; measured by the node's buffer budget (`stream_buffer_peak_bytes`),
  never by RSS;
- decompression: zlib bombs and a steady stream of compressed frames from one source;
  measured by the bytes the node agreed to inflate (`stream_inflated_bytes`, and a spy on
  zlib), never by time.
Attackers bind 127.0.0.2.. so that they are other sources than the real nodes (127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
from runtime_harness import converged, fast_config, run_node, wait_for

from swimnet.errors import JoinError
from swimnet.security.keyring import Keyring, key_id
from swimnet.wire.codec import COMPRESSED, encode_message, encode_stream
from swimnet.wire.messages import Address, PushPull

ATTACKERS = [f"127.0.0.{i}" for i in range(2, 7)]
MARKER = 0xE5  # first byte of an authenticated frame (swimnet.security.streamauth)


class Idle:
    """Keeps `per_source` connections open from each source that never send a byte; a
    connection the node closes is re-opened at once (after `pause` when refused at once)."""

    def __init__(self) -> None:
        self.opened = 0
        self.open_now = 0

    async def keep(self, target: Address, source: str, pause: float) -> None:
        while True:
            try:
                stream = await trio.open_tcp_stream(*target, local_address=source)
            except OSError:
                await trio.sleep(pause)
                continue
            self.opened += 1
            self.open_now += 1
            start = trio.current_time()
            try:
                await stream.receive_some(1)  # b"" once the node closes it
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                self.open_now -= 1
                await stream.aclose()
            if trio.current_time() - start < 0.1:
                await trio.sleep(pause)


@asynccontextmanager
async def idle_connections(
    target: Address, sources: list[str], per_source: int, pause: float = 0.2
) -> AsyncIterator[Idle]:
    idle = Idle()
    async with trio.open_nursery() as nursery:
        for source in sources:
            for _ in range(per_source):
                nursery.start_soon(idle.keep, target, source, pause)
        await wait_for(lambda: idle.opened >= len(sources) * per_source, what="idle connections open")
        yield idle
        nursery.cancel_scope.cancel()


async def _raw(target: Address, data: bytes, source: str = ATTACKERS[0]) -> trio.SocketStream:
    """A connection from `source` that sent `data` (or as much as the node read before it
    closed the connection)."""
    stream = await trio.open_tcp_stream(*target, local_address=source)
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(data)
    return stream


# -- item 3: idle connections ------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "encrypted"])
async def test_150_idle_connections_do_not_block_joins_or_push_pulls(encrypted: bool) -> None:
    """Before: the 128 slots were taken before a prefix arrived and held for tcp_timeout (10 s
    here, the LAN default), so the join below failed."""
    extra: dict[str, Any] = dict(keyring=Keyring([bytes(32)]), label="lab") if encrypted else {}
    async with trio.open_nursery() as nursery:
        target = (await nursery.start(run_node, fast_config("target", tcp_timeout=10.0, **extra))).node
        peer = (await nursery.start(run_node, fast_config("peer", **extra))).node
        async with idle_connections(target.address, ATTACKERS, 30) as idle:
            assert idle.open_now >= 140
            # a real node joins (push-pull into the target) and the target syncs with it
            assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
            await wait_for(lambda: converged([target, peer]), what="convergence under attack")
            assert await target.join([f"127.0.0.1:{peer.address[1]}"]) == 1
            # the idle ones hold no slot and are cut at the prefix deadline, then re-opened
            await wait_for(lambda: target.stats["drop_stream_prefix_timeout"] >= 150, what="prefix deadlines")
            await wait_for(lambda: idle.opened >= 300, what="idle connections re-opened")
            assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
        assert target.stats["drop_stream_busy"] == 0
        nursery.cancel_scope.cancel()


async def test_one_source_is_capped() -> None:
    async with trio.open_nursery() as nursery:
        target = (await nursery.start(run_node, fast_config("target", tcp_timeout=10.0))).node
        peer = (await nursery.start(run_node, fast_config("peer"))).node
        cap = target.config.max_streams_per_source
        async with idle_connections(target.address, ATTACKERS[:1], 150, pause=0.25):
            await wait_for(lambda: target.stats["drop_stream_source_busy"] >= 150 - cap, what="cap refusals")
            assert target._guard.connections(ATTACKERS[0]) <= cap
            assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
        assert target.stats["drop_stream_busy"] == 0
        nursery.cancel_scope.cancel()


# -- item 5: memory ----------------------------------------------------------------------------

MiB = 1 << 20


async def test_buffer_budget_bounds_concurrent_large_frames() -> None:
    """16 connections each announce 1 MiB and send half of it; the budget (2.5 MiB) lets two
    of them be buffered and refuses the rest. Before: all 16 were buffered (32 x 60 MiB frames
    took a node to 1.9 GB)."""
    budget = 5 * MiB // 2
    async with trio.open_nursery() as nursery:
        config = fast_config("target", tcp_timeout=10.0, stream_buffer_budget=budget)
        target = (await nursery.start(run_node, config)).node
        peer = (await nursery.start(run_node, fast_config("peer"))).node
        streams = []
        for i in range(16):
            prefix = MiB.to_bytes(4, "big")
            streams.append(await _raw(target.address, prefix + os.urandom(MiB // 2), ATTACKERS[i % 5]))
        await wait_for(lambda: target.stats["drop_stream_budget"] >= 14, what="budget refusals")
        assert 2 * MiB <= target.stats["stream_buffer_peak_bytes"] <= budget
        # the node keeps working: a join's frames are small enough to fit beside them
        assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
        for stream in streams:
            await stream.aclose()
        assert target.stats["stream_buffer_peak_bytes"] <= budget
        nursery.cancel_scope.cancel()


async def test_a_non_key_holder_never_makes_the_node_buffer_more_than_a_small_bound() -> None:
    """Before: 16 plain 60 MiB frames from a non-key-holder were buffered in full before the
    engine refused them (1 GB)."""
    ring = Keyring([os.urandom(32)])
    secure = partial(fast_config, keyring=ring, label="lab", tcp_timeout=10.0)
    async with trio.open_nursery() as nursery:
        target = (await nursery.start(run_node, secure("target"))).node
        peer = (await nursery.start(run_node, secure("peer"))).node
        body = os.urandom(MiB)
        big = (60 * MiB).to_bytes(4, "big")
        stamp = int(time.time())
        forged = bytes([MARKER]) + key_id(ring.primary) + stamp.to_bytes(4, "big") + os.urandom(16) + big
        attempts = [
            big + body,  # plain frame, announced 60 MiB
            bytes([MARKER]) + os.urandom(44) + body,  # made-up header
            forged + os.urandom(16) + body,  # the real (public) key id, a made-up tag
        ]
        streams = [await _raw(target.address, attempts[i % 3], ATTACKERS[i % 5]) for i in range(48)]
        # a small plain frame is accepted by the framing and refused by the engine (not sealed)
        small = await _raw(target.address, (1000).to_bytes(4, "big") + os.urandom(1000))

        def counted() -> bool:
            s = target.stats
            return (
                s["drop_stream_unauthenticated_oversize"] >= 16
                and s["drop_auth_unknown_key"] >= 16  # counted as the engine counts sealed input
                and s["drop_auth_auth_failed"] >= 16
                and s["drop_auth_plaintext_refused"] >= 1
            )

        await wait_for(counted, what="refusals at the header")
        assert target.stats["stream_buffer_peak_bytes"] <= 64 * 1024
        for stream in [*streams, small]:
            await stream.aclose()
        assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
        nursery.cancel_scope.cancel()


# -- item 6: decompression ---------------------------------------------------------------------


class InflateSpy:
    def __init__(self) -> None:
        self.produced = 0
        self._real = zlib.decompressobj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        spy, inner = self, self._real(*args, **kwargs)

        class Counting:
            def decompress(self, data: Any, max_length: int = 0) -> bytes:
                out = inner.decompress(data, max_length)
                spy.produced += len(out)
                return out

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        return Counting()


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _compressible(size: int, seed: int) -> bytes:
    """Bytes that compress about 4:1 (two bits of entropy per byte)."""
    return bytes(random.Random(seed).choices(b"abcd", k=size))


async def _send_and_wait_closed(target: Address, data: bytes, source: str) -> None:
    stream = await _raw(target, data, source)
    with trio.move_on_after(5):
        while await stream.receive_some(1024):
            pass
    await stream.aclose()


async def test_a_zlib_bomb_inflates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = InflateSpy()
    monkeypatch.setattr(zlib, "decompressobj", spy)
    async with trio.open_nursery() as nursery:
        target = (await nursery.start(run_node, fast_config("target"))).node
        peer = (await nursery.start(run_node, fast_config("peer"))).node
        plain = encode_message(PushPull(False, (), bytes(63 * MiB)))
        bomb = bytes([COMPRESSED]) + len(plain).to_bytes(4, "big") + zlib.compress(plain, 9)
        assert len(bomb) < 100_000
        for _ in range(4):
            await _send_and_wait_closed(target.address, _frame(bomb), ATTACKERS[0])
        await wait_for(lambda: target.stats["drop_stream_decode"] >= 4, what="bombs refused")
        assert spy.produced == 0 and target.stats["stream_inflated_bytes"] == 0
        assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
        nursery.cancel_scope.cancel()


async def test_inflation_per_source_is_bounded_by_its_token_bucket() -> None:
    """Frames within the ratio, from one source, as fast as it can: the node inflates at most
    the bucket's burst plus its rate over the attack, refuses the rest (counted), and still
    serves other sources."""
    rate, burst = 256 * 1024, MiB
    async with trio.open_nursery() as nursery:
        config = fast_config("target", stream_inflate_rate=rate, stream_inflate_burst=burst)
        target = (await nursery.start(run_node, config)).node
        peer = (await nursery.start(run_node, fast_config("peer"))).node
        frames = [encode_stream(PushPull(False, (), _compressible(256 * 1024, i))) for i in range(8)]
        assert all(f[0] == COMPRESSED for f in frames)
        start = trio.current_time()
        for i in range(40):
            await _send_and_wait_closed(target.address, _frame(frames[i % 8]), ATTACKERS[0])
        elapsed = trio.current_time() - start
        inflated = target.stats["stream_inflated_bytes"]
        assert target.stats["drop_stream_inflate_rate"] >= 1
        assert 0 < inflated <= burst + rate * elapsed
        # another source has its own bucket
        assert await peer.join([f"127.0.0.1:{target.address[1]}"]) == 1
        nursery.cancel_scope.cancel()


async def test_replies_are_charged_to_the_replying_source() -> None:
    """A "seed" that answers every join with a compressed frame: the joining node charges its
    inflation to that source's bucket (client side of the exchange)."""
    reply = _frame(encode_stream(PushPull(False, (), _compressible(512 * 1024, 1))))
    listener = (await trio.open_tcp_listeners(0, host=ATTACKERS[1]))[0]
    seed = listener.socket.getsockname()

    async def answer(stream: trio.SocketStream) -> None:
        with trio.move_on_after(5):
            await stream.receive_some(65536)
            await stream.send_all(reply)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, answer, [listener])
        plain = len(encode_message(PushPull(False, (), _compressible(512 * 1024, 1))))
        config = fast_config("joiner", stream_inflate_rate=1.0, stream_inflate_burst=2 * plain + 1000)
        joiner = (await nursery.start(run_node, config)).node
        seed_address = f"{seed[0]}:{seed[1]}"
        assert await joiner.join([seed_address]) == 1
        assert await joiner.join([seed_address]) == 1
        with pytest.raises(JoinError):  # the third reply would exceed the source's allowance
            await joiner.join([seed_address])
        assert joiner.stats["stream_inflated_bytes"] == 2 * plain
        assert joiner.stats["drop_stream_inflate_rate"] == 1
        nursery.cancel_scope.cancel()
