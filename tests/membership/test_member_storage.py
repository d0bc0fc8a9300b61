"""Member storage: what every view holds of a member is shared, and emptied tables are freed.

A simulated cluster of N nodes holds N^2 member records, so the bytes of one record decide
whether 5,000 nodes fit in memory (benchmarks/bench_membership.py reports them).
"""

from __future__ import annotations

import random
import sys

from swimnet.config import Config
from swimnet.membership import member as member_module
from swimnet.membership.admission import Admission
from swimnet.membership.member import MemberRecord, identity
from swimnet.membership.queue import BroadcastQueue
from swimnet.membership.swim import Swim
from swimnet.wire.messages import Alive, State


def _swim(name: str, index: int) -> Swim:
    config = Config.lan(name=name, bind=f"10.0.0.{index}:7946")
    return Swim(config, random.Random(index), 0.0)


def _fresh(text: str) -> str:
    """An equal string that is a distinct object (as two decodes of one name are)."""
    return "".join(list(text))


def test_views_share_one_identity_per_member() -> None:
    a, b = _swim("a", 1), _swim("b", 2)
    for swim in (a, b):
        meta = _fresh("rack").encode("ascii")
        alive = Alive(3, _fresh("peer"), (_fresh("10.0.0.9"), 7946), meta, (2, 2, 2))
        swim.handle_message(alive, ("10.0.0.9", 7946), 1.0)
    in_a, in_b = a.members["peer"], b.members["peer"]
    assert in_a is not in_b  # each view has its own record (state_change, verified) ...
    assert in_a.identity is in_b.identity  # ... and both hold the same facts object
    assert (in_a.name, in_a.addr, in_a.meta, in_a.vsn) == ("peer", ("10.0.0.9", 7946), b"rack", (2, 2, 2))
    assert in_a.incarnation == 3 and in_a.state == State.ALIVE


def test_an_update_rebinds_one_view_only() -> None:
    a, b = _swim("a", 1), _swim("b", 2)
    for swim in (a, b):
        swim.handle_message(Alive(3, "peer", ("10.0.0.9", 7946), b"", (2, 2, 2)), ("10.0.0.9", 7946), 1.0)
    a.handle_message(Alive(4, "peer", ("10.0.0.9", 7946), b"v2", (2, 2, 2)), ("10.0.0.9", 7946), 2.0)
    assert a.members["peer"].meta == b"v2" and a.members["peer"].incarnation == 4
    assert b.members["peer"].meta == b"" and b.members["peer"].incarnation == 3
    b.handle_message(Alive(4, "peer", ("10.0.0.9", 7946), b"v2", (2, 2, 2)), ("10.0.0.9", 7946), 2.0)
    assert a.members["peer"].identity is b.members["peer"].identity


def test_a_new_address_moves_the_address_index() -> None:
    a = _swim("a", 1)
    a.handle_message(Alive(3, "peer", ("10.0.0.9", 7946), b"", (2, 2, 2)), ("10.0.0.9", 7946), 1.0)
    a.handle_message(Alive(4, "peer", ("10.0.0.9", 7946), b"", (2, 2, 2)), ("10.0.0.9", 7946), 1.0)
    a.members["peer"].state = State.LEFT  # a left member may come back from a new address
    a.handle_message(Alive(5, "peer", ("10.0.0.8", 7946), b"", (2, 2, 2)), ("10.0.0.8", 7946), 2.0)
    record = a.members["peer"]
    assert record.addr == ("10.0.0.8", 7946) and record.state == State.ALIVE
    a.heard_from(("10.0.0.8", 7946))  # found through the address index at its new address
    assert record.verified


def test_set_meta_keeps_name_and_address() -> None:
    a = _swim("a", 1)
    a.set_meta(b"rack-7", 1.0)
    me = a.local_member
    assert (me.name, me.address, me.meta, me.incarnation) == ("a", ("10.0.0.1", 7946), b"rack-7", 2)


def test_the_identity_table_is_bounded_and_sharing_never_decides_equality() -> None:
    first = identity("x", ("10.0.0.1", 1), b"", (2, 2, 2))
    for i in range(member_module._IDENTITIES_MAX + 10):
        identity(f"filler{i}", ("10.0.0.1", 1), b"", (2, 2, 2))
    assert len(member_module._identities) <= member_module._IDENTITIES_MAX
    again = identity("x", ("10.0.0.1", 1), b"", (2, 2, 2))
    assert again == first  # the table was cleared meanwhile: a new object, the same facts
    record = MemberRecord("x", ("10.0.0.1", 1), 1, State.ALIVE, 0.0)
    assert record.to_wire().name == "x" and record.snapshot().address == ("10.0.0.1", 1)


def test_a_drained_queue_frees_its_table() -> None:
    queue = BroadcastQueue(retransmit_mult=1)
    empty_size = sys.getsizeof(queue.items)
    items = queue.items
    for i in range(5000):
        queue.queue(f"member{i}", b"x" * 20)
    assert sys.getsizeof(queue.items) > 10 * empty_size
    while queue.take(1400, 0, 2):
        pass
    assert len(queue) == 0
    assert queue.items is items  # owners hold a reference to it: cleared in place
    assert sys.getsizeof(queue.items) == empty_size


def test_admission_frees_its_tables_once_every_member_is_verified() -> None:
    admission = Admission()
    records = [MemberRecord(f"m{i}", ("10.1.0.1", i), 1, State.ALIVE, 0.0) for i in range(3000)]
    empty_size = sys.getsizeof(admission.unverified)
    for r in records:
        admission.learned(r)
    assert len(admission) == 3000
    for r in records:
        admission.verify(r)
    assert len(admission) == 0
    assert sys.getsizeof(admission.unverified) == empty_size
