"""Decompression bombs: a compressed stream frame never inflates out of proportion.

Attack class: a peer sends a small zlib stream that declares (and really holds) a huge plain
frame; before the fix a 65 KB frame inflated to 64 MiB (0.33 s of CPU). These tests measure
the bytes the decoder asks zlib to produce (a spy on `zlib.decompressobj`), never time.
"""

from __future__ import annotations

import contextlib
import hashlib
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from swimnet.errors import DecodeError
from swimnet.wire import limits
from swimnet.wire.codec import COMPRESSED, decode_stream, encode_message, encode_stream
from swimnet.wire.limits import MAX_STREAM_FRAME, PROTOCOL_VERSION
from swimnet.wire.messages import MemberState, PushPull, State
from swimnet.wire.tables import AttachmentRecord, AttachmentState


class _Spy:
    """Wraps zlib.decompressobj: counts the output bytes every decompress call may produce."""

    def __init__(self) -> None:
        self.requested = 0
        self.produced = 0
        self._real = zlib.decompressobj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        spy = self
        inner = self._real(*args, **kwargs)

        class Counting:
            def decompress(self, data: Any, max_length: int = 0) -> bytes:
                spy.requested += max_length if max_length else 1 << 62
                out = inner.decompress(data, max_length)
                spy.produced += len(out)
                return out

            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

        return Counting()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Spy]:
    s = _Spy()
    monkeypatch.setattr(zlib, "decompressobj", s)
    yield s


RATIO = 32
"""limits.MAX_INFLATE_RATIO (spelt out so these tests also run against the code before it)."""


def _hexes(n: int) -> bytes:
    """`n` bytes of hex digits: compresses about 2:1."""
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).hexdigest().encode() for i in range(n // 64 + 1))[:n]


def _compressed_frame(plain_message: bytes, level: int = 9) -> bytes:
    return bytes([COMPRESSED]) + len(plain_message).to_bytes(4, "big") + zlib.compress(plain_message, level)


def _bomb(size: int) -> bytes:
    """A frame declaring (and holding) `size` bytes: a push-pull whose user state is zeros."""
    message = encode_message(PushPull(False, (), bytes(size - 16)))
    return _compressed_frame(message)


def test_the_64_mib_bomb_is_refused_before_inflating(spy: _Spy) -> None:
    frame = _bomb(MAX_STREAM_FRAME - 64)
    assert len(frame) < 100_000  # ~65 KB on the wire
    with pytest.raises(DecodeError, match="ratio"):
        decode_stream(frame)
    assert spy.produced == 0 and spy.requested == 0


@pytest.mark.parametrize("declared", [64 * 1024, 1 << 20, 8 << 20])
def test_inflation_never_exceeds_the_ratio_of_wire_bytes(spy: _Spy, declared: int) -> None:
    frame = _bomb(declared)
    with contextlib.suppress(DecodeError):
        decode_stream(frame)
    assert spy.produced <= RATIO * len(frame)


def test_a_frame_within_the_ratio_still_decodes(spy: _Spy) -> None:
    members = tuple(MemberState(f"node-{i}", ("10.0.0.1", 7000 + i), b"", 1, State.ALIVE) for i in range(500))
    message = PushPull(True, members, b"")
    frame = encode_stream(message)
    assert frame[0] == COMPRESSED
    assert decode_stream(frame) == message
    assert 0 < spy.produced <= RATIO * len(frame)


def test_the_encoder_never_compresses_beyond_the_ratio() -> None:
    message = PushPull(False, (), bytes(4 << 20))  # compresses ~1000:1
    frame = encode_stream(message)
    assert frame[0] == PROTOCOL_VERSION  # sent plain rather than as something receivers refuse
    assert decode_stream(frame) == message


def test_declared_size_above_the_absolute_cap_is_refused(spy: _Spy) -> None:
    frame = bytes([COMPRESSED]) + (MAX_STREAM_FRAME + 1).to_bytes(4, "big") + b"\x78\x9c" + bytes(4 << 20)
    with pytest.raises(DecodeError):
        decode_stream(frame)
    assert spy.requested == 0


def test_the_ratio_and_the_absolute_cap_are_derived_from_the_wire_limits() -> None:
    from swimnet.wire.limits import MAX_INFLATED, MAX_MEMBER_ENCODED, MAX_PUSH_PULL_ENCODED

    assert limits.MAX_INFLATE_RATIO == RATIO

    big = MemberState("n" * 255, ("h" * 255, 65_535), b"m" * 512, 2**32 - 1, State.LEFT, (255, 255, 255))
    empty = len(encode_message(PushPull(False, (), b"")))
    assert len(encode_message(PushPull(False, (big,), b""))) - empty == MAX_MEMBER_ENCODED
    assert MAX_PUSH_PULL_ENCODED > MAX_STREAM_FRAME  # a legitimate push-pull can fill a frame
    assert min(MAX_STREAM_FRAME, MAX_PUSH_PULL_ENCODED) == MAX_INFLATED


# -- the allowance: every inflation of one peer's input draws from one budget -------------------


def test_allowance_is_charged_the_declared_size_before_inflating(spy: _Spy) -> None:
    from swimnet.wire import inflate

    message = PushPull(False, (), _hexes(3000))
    frame = encode_stream(message)
    assert frame[0] == COMPRESSED
    asked: list[int] = []
    with inflate.charging(lambda n: asked.append(n) or True):
        assert decode_stream(frame) == message
    assert asked == [len(encode_message(message))]
    with inflate.charging(lambda n: False), pytest.raises(DecodeError, match="allowance"):
        decode_stream(frame)
    assert spy.produced == len(encode_message(message))  # the refused one inflated nothing


def test_nested_compressed_frames_draw_from_the_same_allowance() -> None:
    """The tables' attachment section travels as a (compressed) stream frame inside the
    push-pull user state: inflating it is charged like the outer frame."""
    from swimnet.wire import inflate

    records = tuple(AttachmentRecord(f"node-{i}", "overlay", i, False) for i in range(2000))
    inner = encode_stream(AttachmentState(records))
    assert inner[0] == COMPRESSED
    outer = encode_stream(PushPull(False, (), inner))
    asked: list[int] = []
    with inflate.charging(lambda n: asked.append(n) or True):
        decoded = decode_stream(outer)
        assert isinstance(decoded, PushPull)
        assert decode_stream(decoded.user) == AttachmentState(records)
    assert len(asked) == 2


def test_outside_an_allowance_block_nothing_is_charged() -> None:
    from swimnet.wire import inflate

    frame = encode_stream(PushPull(False, (), _hexes(3000)))
    with inflate.charging(lambda n: False):
        pass
    decode_stream(frame)  # no allowance in force any more
