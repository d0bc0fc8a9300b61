"""Stream framing under a security policy: authenticated frames, and how much a receiver
reads (= buffers) before it can tell a key holder from anyone else.

Attack class: frames are buffered before they are authenticated. A counting stream records
every byte the receiver pulled from the connection; the bound is asserted on that count.
"""

from __future__ import annotations

import os
import random

import pytest
import trio
import trio.testing

from swimnet.runtime.framing import (
    UNAUTHENTICATED_MAX,
    FrameError,
    FrameReader,
    FrameSecurity,
    encode_frame,
    read_body,
    read_head,
    receive_frame,
    send_frame,
)
from swimnet.security.keyring import Keyring, key_id
from swimnet.security.seal import SecurityPolicy
from swimnet.security.streamauth import CHUNK_SIZE, HEADER_SIZE, MARKER, TAG_SIZE, body_size

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
NOW = 1_700_000_000.0


def _security(
    keyring: Keyring | None,
    label: str = "lab",
    *,
    verify: bool = True,
    encrypt: bool = True,
    now: float = NOW,
) -> FrameSecurity:
    policy = None if keyring is None else SecurityPolicy(keyring, label, verify, encrypt)
    rng = random.Random(7)
    return FrameSecurity(
        lambda: policy, replay_window=30.0, wall_clock=lambda: now, nonce_source=rng.randbytes
    )


class CountingStream(trio.abc.ReceiveStream):
    """Serves `data` in pieces of at most the asked size, then blocks (a peer that stalls);
    `pulled` counts the bytes handed to the reader."""

    def __init__(self, data: bytes, close: bool = False) -> None:
        self.data = data
        self.pulled = 0
        self.close = close

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.pulled >= len(self.data):
            if self.close:
                return b""
            await trio.sleep_forever()
        n = len(self.data) - self.pulled if max_bytes is None else max_bytes
        piece = self.data[self.pulled : self.pulled + n]
        self.pulled += len(piece)
        return piece

    async def aclose(self) -> None:
        pass


async def _wire(payload: bytes, security: FrameSecurity) -> bytes:
    """The bytes send_frame writes."""
    send, receive = trio.testing.memory_stream_pair()
    chunks: list[bytes] = []

    async def drain() -> None:
        while chunk := await receive.receive_some():
            chunks.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        await send_frame(send, payload, security)
        await send.aclose()
    return b"".join(chunks)


async def _read(data: bytes, security: FrameSecurity | None, max_size: int = 1 << 26) -> bytes:
    return await receive_frame(CountingStream(data, close=True), max_size, security)


async def _refused(data: bytes, security: FrameSecurity | None, max_size: int = 1 << 26) -> tuple[str, int]:
    """Read until refused; the reason and the bytes pulled from the peer."""
    stream = CountingStream(data, close=True)
    with trio.fail_after(5), pytest.raises(FrameError) as info:
        await receive_frame(stream, max_size, security)
    return info.value.reason, stream.pulled


@pytest.mark.parametrize("size", [0, 1, 1000, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
async def test_authenticated_round_trip(size: int) -> None:
    ring = Keyring([KEY])
    payload = os.urandom(size)
    data = await _wire(payload, _security(ring))
    assert data[0] == MARKER
    assert len(data) == HEADER_SIZE + body_size(size)
    assert await _read(data, _security(ring)) == payload
    # a receiver with the key in its ring (not primary) and verify off reads it too
    assert await _read(data, _security(Keyring([OTHER, KEY]), verify=False)) == payload


async def test_plain_policies_send_plain_frames() -> None:
    for security in (_security(None), _security(Keyring([KEY]), encrypt=False)):
        assert await _wire(b"hello", security) == encode_frame(b"hello")


async def test_plain_frames_are_small_while_authentication_is_required() -> None:
    ring = Keyring([KEY])
    small = encode_frame(b"x" * UNAUTHENTICATED_MAX)
    assert await _read(small, _security(ring)) == b"x" * UNAUTHENTICATED_MAX
    big = (60 << 20).to_bytes(4, "big") + os.urandom(1 << 20)
    assert await _refused(big, _security(ring)) == ("unauthenticated_oversize", HEADER_SIZE)
    # migrating (verify off) or no keyring: plain frames up to max_size
    assert (await _refused(big, _security(ring, verify=False)))[0] == "truncated"
    assert (await _refused(big, _security(None)))[0] == "truncated"


async def test_a_non_key_holder_is_refused_at_the_header() -> None:
    ring = Keyring([KEY])
    body = os.urandom(1 << 20)
    length = (60 << 20).to_bytes(4, "big")
    random_header = bytes([MARKER]) + os.urandom(HEADER_SIZE - 1)
    assert await _refused(random_header + body, _security(ring)) == ("auth_unknown_key", HEADER_SIZE)
    # the key id is public (it is in every sealed packet): a header naming it, with a made-up tag
    forged = bytes([MARKER]) + key_id(KEY) + int(NOW).to_bytes(4, "big") + os.urandom(16) + length
    forged += os.urandom(TAG_SIZE)
    assert await _refused(forged + body, _security(ring)) == ("auth_failed", HEADER_SIZE)
    # a key holder of another cluster (other key, or same key and another label)
    other = await _wire(body, _security(Keyring([OTHER])))
    assert await _refused(other, _security(ring)) == ("auth_unknown_key", HEADER_SIZE)
    relabelled = await _wire(body, _security(ring, label="other"))
    assert await _refused(relabelled, _security(ring)) == ("auth_failed", HEADER_SIZE)
    # no keyring at all
    assert (await _refused(other, _security(None)))[0] == "no_keyring"


async def test_a_replayed_header_with_other_data_costs_at_most_one_chunk() -> None:
    ring = Keyring([KEY])
    genuine = await _wire(os.urandom(4 * CHUNK_SIZE), _security(ring))
    header = genuine[:HEADER_SIZE]
    reason, pulled = await _refused(header + os.urandom(4 * (CHUNK_SIZE + TAG_SIZE)), _security(ring))
    assert reason == "auth_failed"
    assert pulled <= HEADER_SIZE + CHUNK_SIZE + TAG_SIZE
    # chunks swapped, or the last one cut off, are refused too
    first = slice(HEADER_SIZE, HEADER_SIZE + CHUNK_SIZE + TAG_SIZE)
    second = slice(first.stop, first.stop + CHUNK_SIZE + TAG_SIZE)
    swapped = header + genuine[second] + genuine[first] + genuine[second.stop :]
    assert (await _refused(swapped, _security(ring)))[0] == "auth_failed"
    with pytest.raises(FrameError, match="truncated"):
        await _read(genuine[:-1], _security(ring))


async def test_a_stale_header_is_refused() -> None:
    ring = Keyring([KEY])
    old = await _wire(b"payload", _security(ring, now=NOW - 31))
    assert await _refused(old, _security(ring)) == ("auth_stale", HEADER_SIZE)
    assert await _read(await _wire(b"payload", _security(ring, now=NOW - 29)), _security(ring)) == b"payload"


async def test_the_head_is_known_before_the_body_is_read() -> None:
    ring = Keyring([KEY])
    data = await _wire(os.urandom(3 * CHUNK_SIZE), _security(ring))
    stream = CountingStream(data)
    reader = FrameReader(stream)
    head = await read_head(reader, 1 << 26, _security(ring))
    assert head.length == 3 * CHUNK_SIZE and stream.pulled == HEADER_SIZE
    assert len(await read_body(reader, head)) == 3 * CHUNK_SIZE
    assert stream.pulled == len(data)
