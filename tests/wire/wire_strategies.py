"""Hypothesis strategies for swimnet.wire messages, within the documented bounds (limits.py).

Also helpers to build raw (possibly invalid) datagrams and stream frames, so negative tests
can say exactly which field is wrong.
"""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import strategies as st

from swimnet.wire import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    PushPull,
    State,
    Suspect,
)
from swimnet.wire.limits import (
    MAX_HOST,
    MAX_META,
    MAX_NAME,
    MAX_PAYLOAD,
    MAX_UINT32,
    PROTOCOL_VERSION,
)

VERSION = bytes([PROTOCOL_VERSION])

# -- raw frames -----------------------------------------------------------------------------


def packb(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def raw_packet(*items: Any) -> bytes:
    """A datagram whose msgpack body is the list `items` (each item one message list)."""
    return VERSION + packb(list(items))


def raw_stream(item: Any) -> bytes:
    return VERSION + packb(item)


# -- field strategies -----------------------------------------------------------------------

# utf-8 encodable characters only (no surrogates): everything a peer can legally send
_chars = st.characters(codec="utf-8")


def _truncate_utf8(value: str, max_bytes: int) -> str:
    return value.encode()[:max_bytes].decode(errors="ignore")


def bounded_text(max_bytes: int) -> st.SearchStrategy[str]:
    """Non-empty strings of at most `max_bytes` bytes of UTF-8, biased to hit the bound."""
    short = st.text(_chars, min_size=1, max_size=12)
    long = st.text(_chars, min_size=1, max_size=max_bytes).map(lambda s: _truncate_utf8(s, max_bytes))
    exact_ascii = st.integers(1, max_bytes).map(lambda k: "n" * k)
    exact_multibyte = st.sampled_from(["é", "€", "😀"]).map(lambda c: c * (max_bytes // len(c.encode())))
    return st.one_of(short, long, exact_ascii, exact_multibyte).filter(bool)


names = bounded_text(MAX_NAME)
hosts = bounded_text(MAX_HOST)
uint32 = st.one_of(st.integers(0, MAX_UINT32), st.sampled_from([0, 1, 127, 128, 255, 256, 65535, MAX_UINT32]))
ports = st.integers(0, 65_535)
addresses = st.tuples(hosts, ports)
metas = st.binary(max_size=MAX_META)
payloads = st.binary(max_size=MAX_PAYLOAD)


@st.composite
def vsns(draw: st.DrawFn) -> tuple[int, int, int]:
    lo, cur, hi = sorted(draw(st.lists(st.integers(0, 255), min_size=3, max_size=3)))
    return (lo, hi, cur)


# -- message strategies ---------------------------------------------------------------------

pings = st.builds(Ping, seq=uint32, target=names, source=names)
indirect_pings = st.builds(
    IndirectPing, seq=uint32, target=names, target_addr=addresses, source=names, nack=st.booleans()
)
acks = st.builds(Ack, seq=uint32, payload=payloads)
nacks = st.builds(Nack, seq=uint32)
alives = st.builds(Alive, incarnation=uint32, node=names, addr=addresses, meta=metas, vsn=vsns())
suspects = st.builds(Suspect, incarnation=uint32, node=names, sender=names)
deads = st.builds(Dead, incarnation=uint32, node=names, sender=names)
member_states = st.builds(
    MemberState,
    name=names,
    addr=addresses,
    meta=metas,
    incarnation=uint32,
    state=st.sampled_from(State),
    vsn=vsns(),
)
push_pulls = st.builds(
    PushPull,
    join=st.booleans(),
    members=st.lists(member_states, max_size=8).map(tuple),
    user=st.binary(max_size=2048),
)

MESSAGE_STRATEGIES = {
    "ping": pings,
    "indirect_ping": indirect_pings,
    "ack": acks,
    "nack": nacks,
    "alive": alives,
    "suspect": suspects,
    "dead": deads,
    "push_pull": push_pulls,
}

messages = st.one_of(*MESSAGE_STRATEGIES.values())
"""Any membership message."""

small_messages = st.one_of(pings, indirect_pings, nacks, suspects, deads, acks)
"""Messages that stay small, for packets of many messages."""

# -- arbitrary msgpack-able python objects ----------------------------------------------------

msgpack_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(_chars, max_size=20),
    st.binary(max_size=20),
)
msgpack_objects = st.recursive(
    msgpack_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=8),
        st.dictionaries(st.text(_chars, max_size=8), children, max_size=4),
    ),
    max_leaves=40,
)
"""Anything msgpack can encode: lists, dicts, ints (incl. negative, uint64), str, bytes, ..."""


@st.composite
def message_like_lists(draw: st.DrawFn) -> list[Any]:
    """A list that starts like a message (a known or nearby code) followed by junk fields.

    These reach the per-field validators far more often than fully random objects.
    """
    code = draw(st.one_of(st.integers(0, 9), st.just(1), st.just(8)))
    fields = draw(st.lists(msgpack_objects, max_size=7))
    return [code, *fields]
