"""Digest-first anti-entropy moves kilobytes for agreeing nodes and ~d entries for d differences.

Bytes are the encoded stream frames (`encode_stream`) of every request and reply.
Printed figures are for the report (`pytest -s`); assertions are generous bounds.
"""

from __future__ import annotations

import pytest
from tables_harness import Cluster, SyncStats

from swimnet.tables.digest import Digest, leaf_of, pack_child_hashes, unpack_child_hashes
from swimnet.tables.entry import make_entry

N = 100_000


def value(i: int) -> bytes:
    return b"10.0.%d.%d/16 02:42:0a:00:%02x:%02x 192.168.1.%d" % (
        i >> 8 & 255,
        i & 255,
        i >> 8 & 255,
        i & 255,
        i % 7,
    )


def report(what: str, s: SyncStats) -> None:
    sizes = f"{s.request_bytes} + {s.reply_bytes} bytes"
    print(f"{what}: {s.rounds} round trips, {sizes}, {s.entries_shipped} entries")


@pytest.fixture(scope="module")
def big() -> Cluster:
    c = Cluster(["a", "b"])
    c.join("a", "net")
    for i in range(N):
        c.put("a", "net", f"endpoint-{i:08d}", value(i))
    c["b"].join_network("net", c.now)
    c.push_pull("a", "b")
    s = c.sync("b", "a", ["net"])
    report(f"bulk {N}", s)
    assert s.entries_shipped == N and s.rounds <= 8
    assert s.reply_bytes / s.rounds < 4.5 * 1024 * 1024
    assert len(c["b"].items("net", "t")) == N
    return c


def test_identical_tables_exchange_kilobytes(big: Cluster) -> None:
    for a, b in (("a", "b"), ("b", "a")):
        s = big.sync(a, b)
        report(f"identical {N}", s)
        assert s.entries_shipped == 0 and s.total_bytes < 64 * 1024


@pytest.mark.parametrize("diffs", [10, 1000])
def test_differences_ship_about_that_many_entries(big: Cluster, diffs: int) -> None:
    for i in range(diffs):  # half newer on each side
        big.put("a" if i % 2 else "b", "net", f"endpoint-{i * 97 % N:08d}", b"moved-%d" % diffs)
    s = big.sync("b", "a")
    report(f"{diffs} differences in {N}", s)
    assert diffs <= s.entries_shipped <= diffs * 1.1
    assert s.total_bytes < (64 * 1024 if diffs == 10 else 1024 * 1024)
    assert big["a"].digest_hash("net") == big["b"].digest_hash("net")
    assert big["a"].items("net", "t") == big["b"].items("net", "t")


def test_digest_is_incremental() -> None:
    d, fresh = Digest(), Digest()
    entries = [make_entry("t", f"k{i}", b"v", "o", i, i % 3 == 0, None) for i in range(300)]
    for e in entries:
        d.add(e)
    for e in entries[::2]:
        d.remove(e)
    for e in entries[1::2]:
        fresh.add(e)
    assert d.top_sums == fresh.top_sums and d.leaf_sums == fresh.leaf_sums and d.count == 150
    for top in range(256):
        leaves = sum(s for leaf, s in d.leaf_sums.items() if leaf >> 8 == top) % 2**64
        assert leaves == d.top_sums[top]
    assert {e.key for e in d.with_key_hash(entries[1].key_hash)} == {"k1"}
    assert leaf_of(entries[1].key_hash) in d.leaves
    ordered = [leaf_of(e.key_hash) for e in d.entries_in(0, 0)]
    assert ordered == sorted(ordered)
    for sums in ({}, {3: 7}, d.child_sums(0, 0)):
        assert unpack_child_hashes(pack_child_hashes(sums)) == sums
