"""The nfnetlink codec of set elements, without a kernel: what `batch` encodes, the dump
parser reads back, on its fast (uniform) and its general path alike."""

from __future__ import annotations

import struct

import pytest

from swimnet.datapath.lb import nfnetlink as nf
from swimnet.datapath.lb.ops import AddElements, DeleteElements
from swimnet.datapath.lb.table import CATCH_ALL, Data, backend_data, frontend_key, ip_bytes


def elements_attr(items: list[tuple[bytes, Data]], *, with_data: bool = True) -> bytes:
    body = b"".join(nf._element(k, d, with_data=with_data) for k, d in items)
    return nf._attr(nf.NFTA_SET_ELEM_LIST_ELEMENTS | nf.NLA_F_NESTED, body)


def parse(attr: bytes) -> tuple[dict[bytes, Data], dict[bytes, Data], bool]:
    """(fast path result, general path result, whether the fast path took it)."""
    fast: dict[bytes, Data] = {}
    general: dict[bytes, Data] = {}
    inner = (4, len(attr))
    took = nf._take_uniform(attr, *inner, fast)
    nf._take_any(attr, *inner, general)
    both: dict[bytes, Data] = {}
    nf._take_elements(attr, 0, len(attr), both)
    assert both == general
    return fast, general, took


KEYS = [frontend_key(f"10.1.{i // 250}.{i % 250 + 1}", "tcp" if i % 2 else "udp", 80 + i) for i in range(600)]


@pytest.mark.parametrize(
    "items",
    [
        [(ip_bytes(f"10.1.0.{i}"), None) for i in range(1, 200)],  # a plain set
        [(k, backend_data("10.2.0.9", 8080 + i)) for i, k in enumerate(KEYS)],  # a map
        [(k, "pick-3") for k in KEYS[:50]] + [(k, "pick-7") for k in KEYS[50:99]],  # a verdict map
    ],
    ids=["set", "map", "vmap"],
)
def test_uniform_lists_take_the_fast_path_and_read_the_same(items: list[tuple[bytes, Data]]) -> None:
    fast, general, took = parse(elements_attr(items, with_data=items[0][1] is not None))
    assert took and fast == general == dict(items)


@pytest.mark.parametrize(
    "items",
    [
        [(KEYS[0], "pick-3"), (KEYS[1], "pick-12")],  # chain names of two lengths
        [(KEYS[0], "pick-3"), (CATCH_ALL, "pick-2")],  # the catch-all has no key
        [(KEYS[0], b"\x0a\x00\x00\x01\x00\x50")],  # a value that needs padding
    ],
    ids=["lengths", "catch-all", "padded"],
)
def test_other_lists_read_right_through_the_general_path(items: list[tuple[bytes, Data]]) -> None:
    fast, general, took = parse(elements_attr(items))
    assert general == dict(items)
    assert not took or fast == general


def test_a_non_goto_verdict_reads_as_something_the_table_never_wants() -> None:
    verdict = nf._attr(nf.NFTA_VERDICT_CODE, struct.pack("!i", -3)) + nf._attr(nf.NFTA_VERDICT_CHAIN, b"x\0")
    body = nf._attr(nf.NFTA_SET_ELEM_KEY, nf._attr(nf.NFTA_DATA_VALUE, KEYS[0]))
    body += nf._attr(nf.NFTA_SET_ELEM_DATA, nf._attr(nf.NFTA_DATA_VERDICT, verdict))
    attr = nf._attr(nf.NFTA_SET_ELEM_LIST_ELEMENTS, nf._attr(nf.NFTA_LIST_ELEM, body))
    _, general, _ = parse(attr)
    assert general == {KEYS[0]: "verdict -3 x"}


def test_a_batch_is_chunked_into_messages_of_one_set_each() -> None:
    sock = object.__new__(nf.NfSocket)  # batch() only encodes: no socket needed
    items = tuple((k, backend_data("10.2.0.9", 8080)) for k in KEYS)
    messages = sock.batch(
        "swimnet", [DeleteElements("backend-0", tuple(KEYS[:10])), AddElements("backend-1", items)]
    )
    per = nf.ELEMENTS_PER_MESSAGE
    assert len(messages) == 1 + -(-len(KEYS) // per)
    kinds = [struct.unpack_from("=IH", m)[1] & 0xFF for m in messages]
    assert kinds == [nf.NFT_MSG_DELSETELEM] + [nf.NFT_MSG_NEWSETELEM] * (len(messages) - 1)
    assert all(struct.unpack_from("=I", m)[0] == len(m) for m in messages)
    read: dict[bytes, Data] = {}
    for m in messages[1:]:
        nf._take_elements(m, 20, len(m), read)
    assert read == dict(items)
