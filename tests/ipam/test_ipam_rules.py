"""The IPAM rules on hand-driven records (`ipam_board.Board`): pools, encodings, claims and
votes, pinned addresses, failures, partitions, restarts, releases, a full network."""

from __future__ import annotations

import contextlib
import ipaddress
import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ipam_board import Board

from swimnet.errors import DecodeError
from swimnet.ipam import (
    AddressReserved,
    AddressTaken,
    Claim,
    Granted,
    IpamView,
    Memory,
    NoFreeAddress,
    Pool,
    Record,
    Waiting,
    adopt,
    allocate,
    block_size,
    decode_records,
    maintain,
    needs_sync,
    overlapping_claims,
    release,
    remember,
    restore,
    view_from_tables,
    waits_on_others,
)
from swimnet.ipam.knowledge import Knowledge
from swimnet.ipam.record import BLOCKS, PIN, SPARE
from swimnet.ipam.view import attested_departures
from swimnet.tables.entry import Entry

# -- pool ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subnet", "block", "blocks"),
    [("10.0.0.0/30", 4, 1), ("10.0.0.0/28", 4, 4), ("10.0.0.0/24", 4, 64), ("10.0.0.0/22", 16, 64),
     ("10.0.0.0/20", 64, 64), ("10.0.0.0/16", 256, 256), ("10.0.0.0/8", 256, 65536)],
)  # fmt: skip
def test_block_size_table(subnet: str, block: int, blocks: int) -> None:
    pool = Pool(subnet)
    assert (pool.block, pool.blocks) == (block, blocks)
    assert block_size(pool.size) == block


def test_pool_reserves_network_broadcast_gateway() -> None:
    pool = Pool("10.1.0.0/24", "10.1.0.1")
    assert pool.reserved == {0, 1, 255}
    assert [pool.usable(o) for o in (0, 1, 2, 254, 255, 256)] == [False, False, True, True, False, False]
    assert pool.reserved_reason(1) == "the gateway"
    assert pool.address(7) == ipaddress.IPv4Address("10.1.0.7")
    with pytest.raises(ValueError):
        Pool("10.1.0.0/24", "10.2.0.1")


# -- encodings ---------------------------------------------------------------------------------------

claims = st.builds(
    lambda stamp, kind, confirmed, items: (stamp, kind, confirmed, items),
    st.integers(0, 10**6),
    st.sampled_from([BLOCKS, SPARE, PIN]),
    st.booleans(),
    st.lists(st.integers(0, 63), min_size=1, max_size=5, unique=True),
)


@given(st.lists(claims, max_size=6, unique_by=lambda c: c[0]),
       st.sets(st.tuples(st.sampled_from(["a", "b", "n-1"]), st.integers(0, 10**6)), max_size=4),
       st.sets(st.tuples(st.sampled_from(["a", "c"]), st.integers(0, 10**6)), max_size=4))  # fmt: skip
def test_record_round_trip(raw: list[tuple[int, int, bool, list[int]]], ayes: set, nays: set) -> None:
    pool = Pool("10.0.0.0/24")
    built = []
    for stamp, kind, confirmed, items in raw:
        items = sorted(items) if kind == BLOCKS else [items[0] * 4 + 2]
        built.append(Claim("m", stamp, kind, tuple(items), confirmed, pool.block if kind == BLOCKS else 1))
    high = max([c.stamp for c in built], default=0)
    record = Record(pool.block, high, tuple(built), frozenset(ayes), frozenset(nays))
    assert Record.decode(record.encode(), "m", pool.size) == record
    memory = Memory(tuple(attrs_confirmed(c) for c in built), since=5.0)
    assert Memory.decode(memory.encode(), 5.0, pool.size) == memory


def attrs_confirmed(c: Claim) -> Claim:
    return Claim(c.owner, c.stamp, c.kind, c.items, True, c.unit)


@given(st.binary(max_size=200))
def test_record_decode_raises_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Record.decode(data, "m", 256)


def test_record_decode_checks_bounds() -> None:
    good = Record(4, 9, (Claim("m", 9, BLOCKS, (3,), True, 4),)).encode()
    assert Record.decode(good, "m", 256).claims[0].items == (3,)
    with pytest.raises(DecodeError):
        Record.decode(good, "m", 8)  # block 3 does not exist in a /29
    with pytest.raises(DecodeError):
        Record.decode(Record(3, 0).encode(), "m", 256)  # not a power of two
    with pytest.raises(DecodeError):
        stamp_above_high = Record(4, 1, (Claim("m", 9, BLOCKS, (3,), True, 4),))
        Record.decode(stamp_above_high.encode(), "m", 256)


# -- claims and votes ------------------------------------------------------------------------------


def test_first_allocation_claims_then_waits_for_every_voter() -> None:
    b = Board(["a", "b", "c"])
    d = b.allocate("a")
    assert isinstance(d, Waiting) and d.waiting_for == ("b", "c")
    b.spread()
    b.maintain("b")  # b votes
    b.spread()
    d = b.allocate("a")
    assert isinstance(d, Waiting) and d.waiting_for == ("c",)
    b.settle()
    d = b.allocate("a")
    assert isinstance(d, Granted)
    assert d.address in b.pool.subnet and b.pool.usable(b.pool.offset(d.address))


def test_later_allocations_come_from_the_own_block_without_waiting() -> None:
    b = Board(["a", "b"])
    assert isinstance(b.obtain("a"), Granted)
    got = [b.allocate("a") for _ in range(2)]
    assert all(isinstance(g, Granted) for g in got)


def test_concurrent_claims_of_one_block_never_both_confirm() -> None:
    """Every member claims at the same instant (no record delivered yet), many times over:
    the blocks confirmed never overlap, and everyone gets addresses in the end."""
    for seed in range(30):
        b = Board(["a", "b", "c", "d"], subnet="10.1.0.0/28", gateway=None)  # 4 blocks of 4
        b.rng = random.Random(seed)
        for m in b.members:
            b.allocate(m)
        for _ in range(6):
            b.settle(rounds=1)
            for m in b.members:
                assert not overlapping_claims(b.view(m)), seed
        granted = {m: b.obtain(m, rounds=20) for m in b.members}
        addresses = [g.address for g in granted.values() if isinstance(g, Granted)]
        assert len(addresses) == len(set(addresses)) == 4, (seed, granted)


def test_a_failed_voter_blocks_new_claims_until_it_is_reaped() -> None:
    b = Board(["a", "b", "c"])
    assert isinstance(b.obtain("a"), Granted)
    b.down.add("c")
    for m in ("a", "b"):
        b.fail(m, "c")
    b.allocations["b"] = {}
    d = b.obtain("b")  # b has no block: it needs c's yes
    assert isinstance(d, Waiting) and d.waiting_for == ("c",)
    assert isinstance(b.allocate("a"), Granted)  # a's own block keeps serving
    for m in ("a", "b"):
        b.reap(m, "c")
    assert isinstance(b.obtain("b"), Granted)


def test_partition_allocates_from_owned_blocks_and_waits_for_new_ones() -> None:
    b = Board(["a", "b", "c", "d"])
    for m in b.members:
        assert isinstance(b.obtain(m), Granted)
    sides = [["a", "b"], ["c", "d"]]
    for side, other in ((sides[0], sides[1]), (sides[1], sides[0])):
        for m in side:
            for o in other:
                b.fail(m, o)
    # each side keeps allocating from its blocks (2 blocks' worth kept spare: at least 7 more)
    for m in b.members:
        for _ in range(3):
            assert isinstance(b.allocate(m), Granted)
        b.settle(groups=sides)
    # exhaust a's blocks: the next request waits for the other side
    while isinstance(d := b.allocate("a"), Granted):
        b.settle(groups=sides)
    assert isinstance(d, Waiting) and set(d.waiting_for) >= {"c", "d"}
    b.settle(groups=sides)
    assert isinstance(b.allocate("a"), Waiting)
    # heal: the failures are refuted, the claim is voted on
    for m in b.members:
        b.failed[m].clear()
    assert isinstance(b.obtain("a"), Granted)
    everyone = [o for allocs in b.allocations.values() for o in allocs]
    assert len(everyone) == len(set(everyone))


def test_partitioned_concurrent_claims_of_the_same_block() -> None:
    """Both sides of a partition claim the same block: neither is confirmed while apart
    (each needs the other side's yes); after the heal exactly one holds it."""
    b = Board(["a", "b"], subnet="10.1.0.0/29", gateway=None)  # 2 blocks of 4
    b.rng = random.Random(1)
    da, db = b.allocate("a"), b.allocate("b")
    assert isinstance(da, Waiting) and isinstance(db, Waiting)
    b.fail("a", "b")
    b.fail("b", "a")
    b.settle(groups=[["a"], ["b"]])
    assert not any(c.confirmed for r in b.records.values() for c in Record.decode(r, "x", 8).claims)
    b.failed = {"a": set(), "b": set()}
    ga, gb = b.obtain("a", rounds=20), b.obtain("b", rounds=20)
    assert isinstance(ga, Granted) and isinstance(gb, Granted) and ga.address != gb.address


# -- pinned addresses ----------------------------------------------------------------------------


def test_pinned_reserved_and_taken_are_refused_with_the_field() -> None:
    b = Board(["a", "b"])
    for address, why in (("10.1.0.0", "network"), ("10.1.0.255", "broadcast"), ("10.1.0.1", "gateway"),
                         ("10.9.0.5", "outside")):  # fmt: skip
        with pytest.raises(AddressReserved) as exc:
            allocate(b.view("a"), b.rng, ipaddress.IPv4Address(address), field="vip")
        assert exc.value.field == "vip" and why in str(exc.value)
    assert isinstance(b.obtain("a", "10.1.0.50"), Granted)
    with pytest.raises(AddressTaken) as taken:
        b.allocate("b", "10.1.0.50")
    assert taken.value.field == "ip" and "endpoint of a" in str(taken.value)
    assert b.records["b"] == b.records.get("b")  # nothing written by a refusal


def test_pinned_inside_own_block_is_immediate() -> None:
    b = Board(["a", "b"])
    g = b.obtain("a")
    assert isinstance(g, Granted)
    neighbour = str(g.address + 1)
    assert isinstance(b.allocate("a", neighbour), Granted)


def test_pinned_inside_another_members_block_needs_its_yes() -> None:
    b = Board(["a", "b", "c"])
    g = b.obtain("a")
    assert isinstance(g, Granted)
    free_in_a = str(g.address + 1)
    d = b.allocate("b", free_in_a)
    assert isinstance(d, Waiting) and "a" in d.waiting_for
    assert isinstance(b.obtain("b", free_in_a), Granted)
    # a never hands it out now
    for _ in range(6):
        got = b.allocate("a")
        assert not (isinstance(got, Granted) and str(got.address) == free_in_a)
        b.settle()


def test_block_owner_refuses_an_address_it_allocated_meanwhile() -> None:
    b = Board(["a", "b"], subnet="10.1.0.0/29", gateway=None)
    assert isinstance(b.obtain("a"), Granted)
    record = Record.decode(b.records["a"], "a", 8)
    block = next(c for c in record.claims if c.kind == BLOCKS)
    target = next(o for o in block.offsets() if b.pool.usable(o) and o not in b.allocations["a"])
    address = str(b.pool.address(target))
    # b asks for it, but b's request reaches a only after a handed it out (a's own view of used)
    d = b.allocate("b", address)
    assert isinstance(d, Waiting)
    b.allocations["a"][target] = "endpoint of a"  # a allocated it before seeing b's claim
    b.settle()
    with pytest.raises(AddressTaken):
        b.allocate("b", address)


# -- failures, reaping, leaving, restarts ---------------------------------------------------------------


def test_hidden_allocations_stay_reserved_until_reaped() -> None:
    b = Board(["a", "b"], subnet="10.1.0.0/30", gateway=None)  # two usable addresses, one block
    assert isinstance(b.obtain("a"), Granted)
    assert isinstance(b.allocate("a"), Granted)
    b.down.add("a")
    b.fail("b", "a")
    with pytest.raises(NoFreeAddress):
        b.allocate("b")
    b.reap("b", "a")
    b.allocations["a"] = {}  # its endpoints were reaped with it
    assert isinstance(b.obtain("b"), Granted)


def test_a_restarted_member_defends_what_it_remembers() -> None:
    """b restarts alone (it knows nothing but its memory): it claims nothing before it has
    synced, and after that it still refuses a's remembered block until a's record shows up."""
    b = Board(["a", "b", "c"])
    assert isinstance(b.obtain("a"), Granted)
    memory = remember(b.view("b"))
    assert memory.claims
    # b restarts: empty tables, memory restored, not synced
    b.known["b"] = {"b": b.records["b"]} if "b" in b.records else {}
    b.memory["b"] = Memory(memory.claims, since=b.now)
    b.synced["b"] = False
    b.voters["b"] = {"b"}
    b.allocations["a"] = {}  # nor does b see a's endpoints: only its memory speaks for a
    d = b.allocate("b")
    assert isinstance(d, Waiting) and "sync" in d.reason
    # c (a fresh member that never saw a) claims a's block: b votes no from memory
    a_block = next(c for c in Record.decode(b.records["a"], "a", 256).claims if c.kind == BLOCKS)
    c_record = Record(4, 100, (Claim("c", 100, BLOCKS, a_block.items, False, 4),))
    b.records["c"] = c_record.encode()
    b.deliver("c", "b")
    b.maintain("b")
    assert ("c", 100) in Record.decode(b.records["b"], "b", 256).nays
    # memory expires after reap_interval
    b.now = 1801.0
    b.maintain("b")
    assert ("c", 100) in Record.decode(b.records["b"], "b", 256).ayes


def test_release_of_a_pinned_address_and_of_empty_blocks() -> None:
    b = Board(["a", "b"])
    pinned = b.obtain("a", "10.1.0.77")
    assert isinstance(pinned, Granted)
    b.remove("a", "10.1.0.77")
    assert not any(c.kind == PIN for c in Record.decode(b.records["a"], "a", 256).claims)
    # many allocations, then all removed: blocks are given back down to the spare capacity
    got = []
    for _ in range(40):
        g = b.obtain("a")
        assert isinstance(g, Granted)
        got.append(str(g.address))
    held = sum(len(c.items) for c in Record.decode(b.records["a"], "a", 256).claims if c.kind == BLOCKS)
    for address in got:
        b.remove("a", address)
    b.settle()
    kept = sum(len(c.items) for c in Record.decode(b.records["a"], "a", 256).claims if c.kind == BLOCKS)
    assert kept * b.pool.block <= 2 * b.pool.block + b.pool.block and kept < held


def test_full_network_is_refused_and_nothing_is_written() -> None:
    b = Board(["a", "b"], subnet="10.1.0.0/29", gateway="10.1.0.1")  # 5 usable addresses
    got = set()
    for m in ("a", "b", "a", "b", "a"):
        g = b.obtain(m, rounds=20)
        assert isinstance(g, Granted), g
        got.add(g.address)
    assert len(got) == 5
    b.settle()
    before = dict(b.records)
    with pytest.raises(NoFreeAddress) as exc:
        allocate(b.view("b"), b.rng, field="ip")
    assert str(exc.value) == "ip: network net has no free address" and exc.value.field == "ip"
    assert b.records == before


def test_an_address_freed_by_endpoint_rm_is_reused() -> None:
    b = Board(["a", "b"], subnet="10.1.0.0/29", gateway="10.1.0.1")  # 5 usable addresses
    got = [b.obtain(m, rounds=20) for m in ("a", "a", "b", "b", "a")]
    assert all(isinstance(g, Granted) for g in got)
    b.settle()
    with pytest.raises(NoFreeAddress):
        allocate(b.view("b"), b.rng)
    freed = str(got[2].address)  # one of b's
    b.remove("b", freed)
    again = b.obtain("b")
    assert isinstance(again, Granted) and str(again.address) == freed


def _full_with_a_single_of_b() -> tuple[Board, str]:
    """A full /29: a holds every block, b holds one address by a single claim inside them."""
    b = Board(["a", "b"], subnet="10.1.0.0/29", gateway="10.1.0.1")  # 5 usable addresses
    got = [b.obtain("a", rounds=20) for _ in range(5)]
    assert all(isinstance(g, Granted) for g in got)
    b.settle()
    b.remove("a", str(got[0].address))
    b.settle()
    single = b.obtain("b", rounds=20)
    assert isinstance(single, Granted)
    b.settle()
    claims = Record.decode(b.records["b"], "b", b.pool.size).claims
    assert [c.single for c in claims] == [True]
    with pytest.raises(NoFreeAddress):
        allocate(b.view("a"), b.rng)
    return b, str(single.address)


def test_an_address_freed_under_another_members_single_claim_waits_for_its_release() -> None:
    """a sees b's endpoint deleted before b's record drops the single claim on its address:
    a waits for b (no "full" for that gossip round), then gets the address; never a duplicate."""
    b, freed = _full_with_a_single_of_b()
    b.drop("b", freed)  # the endpoint entry is gone; b has not released its claim yet
    before = dict(b.records)
    d = allocate(b.view("a"), b.rng)
    assert isinstance(d, Waiting) and d.waiting_for == ("b",) and "just freed" in d.reason
    assert b.records == before  # waiting writes nothing of a's
    pinned = allocate(b.view("a"), b.rng, ipaddress.IPv4Address(freed))
    assert isinstance(pinned, Waiting) and pinned.waiting_for == ("b",)
    b.write("b", release(b.view("b"), b.rng, ipaddress.IPv4Address(freed)).write)
    b.spread()
    again = b.obtain("a", rounds=20)
    assert isinstance(again, Granted) and str(again.address) == freed


def test_a_network_full_of_live_endpoints_is_still_full() -> None:
    """The wait is only for addresses whose holders are gone: a single claim over a live
    endpoint, or over an address never freed, keeps "no free address"."""
    b, held = _full_with_a_single_of_b()
    b.tombstones.add(b.pool.offset(ipaddress.IPv4Address(held)))  # deleted once, held again
    with pytest.raises(NoFreeAddress):
        allocate(b.view("a"), b.rng)


def test_waits_on_others_and_needs_sync() -> None:
    b = Board(["a", "b"])
    assert not waits_on_others(b.view("a")) and not needs_sync(b.view("a"))
    b.allocate("a")  # a pending claim
    assert waits_on_others(b.view("a"))
    b.spread()
    b.maintain("b")  # b's yes on it
    assert waits_on_others(b.view("b"))
    b.settle()
    assert not waits_on_others(b.view("a")) and not waits_on_others(b.view("b"))
    b.synced["a"] = False
    assert needs_sync(b.view("a"))
    b.synced["a"] = True
    b.memory["a"] = Memory((Claim("b", 10**6, BLOCKS, (9,), True, 4),), since=0.0)
    assert needs_sync(b.view("a"))  # defends a claim of a voter whose record is older than it


def test_a_departure_is_attested_and_ends_what_a_restarted_member_remembers() -> None:
    """c leaves gracefully while a is away; b saw the leave and attests it in its record
    (with c's high then). a comes back remembering c's block: membership never tells it
    of a leave it did not witness, b's record does; then a's ghost ends and it votes yes on
    a claim of that block. Without the attestation a would refuse the block for
    reap_interval. A member back (its record visible again) is no longer attested."""
    b = Board(["a", "b", "c"])
    assert isinstance(b.obtain("c"), Granted)
    c_high = Record.decode(b.records["c"], "c", 256).high
    c_block = next(x for x in Record.decode(b.records["c"], "c", 256).claims if x.kind == BLOCKS)
    memory = remember(b.view("a"))
    assert c_block.id in {x.id for x in memory.claims}
    # b sees c leave: the record stays (hidden) for the left grace, and b attests
    b.failed["b"].add("c")
    view = attrs.evolve(b.view("b"), departed=frozenset({"c"}))
    b.write("b", maintain(view, b.rng).write)
    assert ("c", c_high) in Record.decode(b.records["b"], "b", 256).gone
    # a restarts: it knows only b's record (c's is gone), and its memory
    b.known["a"] = {"b": b.records["b"]}
    b.memory["a"] = Memory(memory.claims, since=b.now)
    b.voters = {m: {"a", "b"} for m in b.members}
    b.allocations["c"] = {}
    b.write(
        "b",
        Record(
            4, 900, (Claim("b", 900, BLOCKS, c_block.items, False, 4),), gone=frozenset({("c", c_high)})
        ).encode(),
    )
    b.deliver("b", "a")
    assert not needs_sync(b.view("a"))  # no ghost left: nothing to wait for
    b.maintain("a")
    assert ("b", 900) in Record.decode(b.records["a"], "a", 256).ayes
    # the same memory without the attestation: a defends c's block
    b.write("b", Record(4, 901, (Claim("b", 901, BLOCKS, c_block.items, False, 4),)).encode())
    b.deliver("b", "a")
    b.maintain("a")
    assert ("b", 901) in Record.decode(b.records["a"], "a", 256).nays
    # c back (its record visible, not departed): b no longer attests its departure
    b.failed["b"].discard("c")
    b.write("b", maintain(b.view("b"), b.rng).write)
    assert not Record.decode(b.records["b"], "b", 256).gone


def test_adopting_a_service_claims_its_vip_again() -> None:
    """a's VIP outlives a (the service is adopted by b): b claims the address it now holds."""
    b = Board(["a", "b", "c"])
    vip = b.obtain("a")
    assert isinstance(vip, Granted)
    offset = b.pool.offset(vip.address)
    # a leaves: its record and allocations go; b re-publishes the service (now b's allocation)
    b.down.add("a")
    for m in ("b", "c"):
        b.reap(m, "a")
    b.allocations["a"] = {}
    b.allocations["b"][offset] = "service web (VIP)"
    with pytest.raises(AddressTaken):
        b.allocate("b", str(vip.address))  # an ordinary pin: it is ours already
    d = adopt(b.view("b"), b.rng, vip.address)
    assert isinstance(d, Waiting)
    b.write("b", d.write)
    b.settle()
    assert isinstance(adopt(b.view("b"), b.rng, vip.address), Granted)
    # c never gets it, whatever it claims
    for _ in range(20):
        g = b.obtain("c")
        assert isinstance(g, Granted) and g.address != vip.address


def test_a_remembered_claim_ends_with_a_newer_record_or_its_retraction() -> None:
    pool = Pool("10.1.0.0/24")
    ghost = Claim("c", 17, SPARE, (10,), True, 1)
    memory = Memory((ghost,), since=0.0)

    def ghosts(c_value: bytes | None, retracted: bool = False) -> list[Claim]:
        raw = {} if c_value is None else {"c": (c_value, False, retracted)}
        view = IpamView("net", "a", pool, decode_records(raw, pool), frozenset({"a", "c"}), 50, memory=memory)
        return [kn.claim for kn in Knowledge(view).others.values()]

    assert ghosts(None) == [ghost]  # nothing of c seen yet: defended
    assert ghosts(Record(4, 16).encode()) == [ghost]  # an older record of c: still defended
    assert ghosts(Record(4, 17).encode()) == []  # written after the claim, without it: gone
    assert ghosts(Record(4, 30).encode(), retracted=True) == []  # c retracted it (a new life)
    live = Record(4, 30, (attrs.evolve(ghost, confirmed=True),)).encode()
    assert ghosts(live) == [attrs.evolve(ghost, confirmed=True)]  # still claimed: from the record


def test_restore_after_a_graceful_leave_votes_the_claims_again() -> None:
    """a stops with a graceful leave (its record dropped everywhere), b claims a's block
    meanwhile; a comes back: its claim is pending again and loses, its address is taken."""
    b = Board(["a", "b"], subnet="10.1.0.0/29", gateway=None)  # 2 blocks of 4
    g = b.obtain("a")
    assert isinstance(g, Granted)
    saved = b.records["a"]
    assert restore(saved, "a", 8, left=False) == saved  # after a crash: as it was
    # a leaves: gone from b's tables (record, endpoints); b fills the pool
    b.reap("b", "a")  # as a leave: record and attachment gone at once
    b.down.add("a")
    kept = b.allocations["a"]
    b.allocations["a"] = {}
    with pytest.raises(NoFreeAddress):
        for _ in range(8):
            assert isinstance(b.obtain("b", rounds=20), Granted)
    assert b.pool.offset(g.address) in b.allocations["b"]
    # a comes back with its persisted record and endpoint
    b.down.discard("a")
    b.reaped["b"].discard("a")
    b.voters["b"].add("a")
    b.allocations["a"] = kept
    back = Record.decode(restore(saved, "a", 8, left=True), "a", 8)
    assert back.claims and not any(c.confirmed for c in back.claims)
    b.write("a", back.encode())
    b.settle()
    assert not any(c.confirmed for c in Record.decode(b.records["a"], "a", 8).claims)
    with pytest.raises(AddressTaken):
        adopt(b.view("a"), b.rng, g.address)


class _Tables:
    """The read calls `view_from_tables` makes, over a fixed attachment list."""

    def __init__(self, attached: list[str], strangers: frozenset[str] = frozenset()) -> None:
        self._attached = attached
        self.strangers = strangers

    def entries(self, network: str) -> list[Entry]:
        return []

    def attached(self, network: str) -> list[str]:
        return list(self._attached)

    def lamport_time(self) -> int:
        return 1

    def owner_failed(self, name: str) -> bool:
        return name in self.strangers

    def owner_unknown(self, name: str) -> bool:
        return name in self.strangers


def test_voters_leave_out_members_that_left_or_that_membership_never_reported() -> None:
    pool = Pool("10.1.0.0/24")
    tables = _Tables(["a", "b", "c", "d"])

    def voters(**kw: object) -> frozenset[str]:
        return view_from_tables(tables, scope="s", network="n", me="a", pool=pool, **kw).voters  # type: ignore[arg-type]

    assert voters() == {"a", "b", "c", "d"}
    # a member that left will never vote again: waiting for it would stall every claim
    assert voters(departed=["c"]) == {"a", "b", "d"}
    # this member itself always is one, even while it leaves
    assert voters(departed=["a", "b"]) == {"a", "c", "d"}
    # an attachment learnt by sync of a member membership never reported (it left while we
    # were away): not a voter either; a failed member membership reported stays one
    tables.strangers = frozenset({"d"})
    assert voters() == {"a", "b", "c"}


def test_a_member_seen_failed_but_attested_gone_neither_votes_nor_holds_claims() -> None:
    """a was cut off when c left: it sees c failed (record and endpoints hidden, until
    reaped). b saw the leave and attests it: for a, c is no voter, its claims and its
    endpoints' addresses ended (as for b, which dropped c's record and entries after the
    left grace), so a votes yes on b's claim of c's block."""
    b = Board(["a", "b", "c"])
    assert isinstance(b.obtain("c"), Granted)
    c_record = Record.decode(b.records["c"], "c", 256)
    c_block = next(x for x in c_record.claims if x.kind == BLOCKS)
    b.failed["a"].add("c")
    claim = Claim("b", 500, BLOCKS, c_block.items, False, 4)
    b.write("b", Record(4, 500, (claim,)).encode())
    b.deliver("b", "a")
    b.maintain("a")
    assert ("b", 500) in Record.decode(b.records["a"], "a", 256).nays  # c's block: no
    assert "c" not in attested_departures(decode_records({"b": (b.records["b"], False, False)}, b.pool))
    attesting = Record(4, 501, (attrs.evolve(claim, stamp=501),), gone=frozenset({("c", c_record.high)}))
    b.write("b", attesting.encode())
    b.deliver("b", "a")
    view = b.view("a")
    assert "c" in attested_departures(view.records)
    b.maintain("a")
    assert ("b", 501) in Record.decode(b.records["a"], "a", 256).ayes
