"""Allocation decisions: pure functions of an `IpamView` (and an injected `random.Random`)
that return an outcome and the member's new IPAM record to write.

Rules (the safety argument is in the package docstring):
- `maintain` is the member's duty on every change of the IPAM table (and periodically; it
  also attests in its record the departures it sees, `Record.gone`, so that members which
  did not see them learn them: see `knowledge`): it
  withdraws its own pending claims that were refused or are beaten (by a confirmed claim,
  or by an older pending one: the lower (stamp, owner) goes first), confirms those every
  voter agreed to, votes on the others' pending claims (yes is sticky: kept until the
  claim is confirmed or gone; no is recomputed each time), releases empty blocks beyond
  its spare capacity (as many free addresses as it uses, two blocks at least; one block
  when the pool has no unclaimed block and another member waits for a spare address);
- `allocate` claims more blocks ahead of need as it hands out an address (when less than
  a quarter of its use is free, unless unclaimed blocks are scarce);
- a member hands out an address only from its own confirmed claims (blocks, or single
  addresses), skipping every address held by an allocation (hidden ones included), its own
  allocations, the reserved ones and the others' single claims inside its blocks;
- no free address of its own: it claims fresh blocks (random among the unclaimed ones, as
  many as it already uses, at most its fair share), else a single free address elsewhere
  (inside another member's block: that owner's vote decides; never inside a failed
  member's block, which stays reserved: then it waits), else, if an address was just freed
  (`IpamView.freed`: its endpoint or VIP deleted) but another member's single claim still
  covers it, it waits for that owner to release it (the owner learns of the deletion at
  about the same time), else the network is full;
- a pinned address: refused if reserved (AddressReserved) or held (AddressTaken; a just
  freed one still under another member's single claim waits for its release), granted
  at once if free in an own confirmed claim, else claimed alone and granted once confirmed;
  it also claims blocks ahead of need like any allocation, so a member that only pins
  still has spare addresses of its own when a voter fails;
- an outcome that waits (`Waiting`) says for whom; the caller writes `write`, then asks
  again after the tables change (or gives up: `release` the pinned address it asked for);
- errors are raised before anything is decided: nothing to write, nothing changed.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Iterable

import attrs

from swimnet.errors import LocalProtocolError
from swimnet.ipam.errors import AddressReserved, AddressTaken, NoFreeAddress
from swimnet.ipam.knowledge import Knowledge, exclusive
from swimnet.ipam.record import BLOCKS, MAX_GONE, PIN, SPARE, Claim, ClaimId, Memory, Record
from swimnet.ipam.view import IpamView

MAX_BATCH = 64
"""Blocks claimed at most in one claim."""


@attrs.frozen
class Granted:
    """An address this member may hand out now; write `write` (if any) with the allocation."""

    address: ipaddress.IPv4Address
    write: bytes | None
    notes: tuple[str, ...] = ()


@attrs.frozen
class Waiting:
    """No address yet: a claim is pending (or this node has not synced). Write `write` (if
    any), then ask again once the tables change; `waiting_for` names the members whose vote
    is missing (failed ones can only answer once back, or are reaped)."""

    reason: str
    waiting_for: tuple[str, ...]
    write: bytes | None
    notes: tuple[str, ...] = ()


@attrs.frozen
class Maintenance:
    """What `maintain` decided: the record to write (None: unchanged) and what happened."""

    write: bytes | None
    notes: tuple[str, ...]


class _Plan:
    """One decision in progress: the member's own record being rewritten."""

    def __init__(self, view: IpamView, rng: random.Random) -> None:
        self.k = Knowledge(view)
        gone = self.k.seen_failed
        if gone:  # their hidden entries hold nothing any more (see `knowledge`)
            view = attrs.evolve(view, used={o: u for o, u in view.used.items() if u.owner not in gone})
        self.view = view
        self.pool = view.pool
        self.rng = rng
        own = self.k.own
        if own.block != self.pool.block:
            raise LocalProtocolError(f"own IPAM record has blocks of {own.block}, the pool {self.pool.block}")
        self.claims: dict[int, Claim] = {c.stamp: c for c in own.claims}
        self.ayes: set[ClaimId] = set(own.ayes)
        self.nays: set[ClaimId] = set(own.nays)
        self.gone: dict[str, int] = dict(own.gone)
        holder = view.records.get(view.me)
        retracted = holder.record if holder is not None and holder.retracted else None
        self.high = max(own.high, retracted.high if retracted is not None else 0)
        """Stamps pass every one we used, a retracted previous life's included."""
        self.notes: list[str] = []
        self._candidates: set[int] | None = None

    # -- the record --------------------------------------------------------------------------

    def record(self) -> Record:
        claims = tuple(self.claims[s] for s in sorted(self.claims))
        gone = frozenset(self.gone.items())
        return Record(self.pool.block, self.high, claims, frozenset(self.ayes), frozenset(self.nays), gone)

    def write(self) -> bytes | None:
        record = self.record()
        holder = self.view.records.get(self.view.me)
        current = holder.record if holder is not None and not holder.retracted else None
        if record == current or (current is None and record == Record(self.pool.block, 0)):
            return None
        # a written record is at least as recent as our clock: a record without a claim it
        # once had, and with `high` past that claim's stamp, says the claim is gone
        return attrs.evolve(record, high=max(record.high, self.view.clock)).encode()

    def pending(self) -> list[Claim]:
        return [c for _, c in sorted(self.claims.items()) if not c.confirmed]

    # -- maintain ----------------------------------------------------------------------------

    def maintain(self) -> None:
        self._settle_own()
        self._vote()
        self._release()
        self._attest()

    def _attest(self) -> None:
        """Attest the departures we see (members that left: with their record's `high`
        then, 0 if we hold none), forget those of members back (not departed, record
        visible), keep the MAX_GONE most recent."""
        view = self.view
        for member in view.departed - {view.me}:
            h = view.records.get(member)
            high = h.record.high if h is not None and h.record is not None and not h.retracted else 0
            self.gone[member] = max(self.gone.get(member, 0), high)
        for member, h in view.records.items():
            if member in self.gone and member not in view.departed and not h.hidden and not h.retracted:
                del self.gone[member]
        if len(self.gone) > MAX_GONE:
            kept = sorted(self.gone.items(), key=lambda item: (item[1], item[0]))[-MAX_GONE:]
            self.gone = dict(kept)

    def _settle_own(self) -> None:
        gate = self.k.gate_open()
        for c in self.pending():
            refused = sorted(m for m in self.k.votes if self.k.voted(m, c.id) is False)
            beaten = self._beaten(c)
            if refused or beaten:
                del self.claims[c.stamp]
                self.notes.append(f"withdrew claim {c.stamp}: {beaten or 'refused by ' + ', '.join(refused)}")
            elif gate and all(self.k.voted(v, c.id) is True for v in self.required(c)):
                self.claims[c.stamp] = attrs.evolve(c, confirmed=True)
                self.notes.append(f"confirmed claim {c.stamp}")

    def required(self, c: Claim) -> set[str]:
        """Whose yes our claim needs: every voter, and for a single address inside another
        member's block (as we know it: visible, hidden or remembered) that block's owner,
        voter or not (it alone knows whether the address is free)."""
        me = self.view.me
        owners = {e.owner for e in self.k.touching(c) if c.single and not e.single and e.owner != me}
        return set(self.k.voters) | owners

    def _beaten(self, c: Claim) -> str | None:
        """Why our pending claim must go (None: it may stay)."""
        me = self.view.me
        for e in self.k.touching(c):
            if e.owner == me:
                continue
            known = self.k.others[e.id]
            if exclusive(c, e) or (not c.single and e.single):
                if known.confirmed:
                    return f"overlaps confirmed claim of {e.owner}"
                if (e.stamp, e.owner) < (c.stamp, c.owner):
                    return f"overlaps older claim of {e.owner}"
        if self._holds_others(c, me):
            return "holds another member's allocation"
        return None

    def _holds_others(self, c: Claim, owner: str) -> bool:
        """Whether an address of `c` is held by an allocation not of `owner` (or by one of ours,
        when `owner` is someone else)."""
        used, mine = self.view.used, self.view.mine
        foreign = {o for o, u in used.items() if u.owner != owner}
        if owner != self.view.me:
            foreign |= mine
        if len(foreign) < c.size():
            return any(c.covers(o) for o in foreign)
        return any(o in foreign for o in c.offsets())

    def _vote(self) -> None:
        k = self.k
        pending = {i: kn for i, kn in k.others.items() if not kn.confirmed}
        self.ayes &= pending.keys()
        self.nays = set()
        established = {i for i in self.ayes} | {i for i, kn in k.others.items() if kn.confirmed}
        for kn in sorted(pending.values(), key=lambda kn: (kn.claim.stamp, kn.claim.owner)):
            c = kn.claim
            if c.id in self.ayes:
                continue
            verdict = self._verdict(c, established)
            if verdict is True:
                self.ayes.add(c.id)
                established.add(c.id)
            elif verdict is False:
                self.nays.add(c.id)

    def _verdict(self, c: Claim, established: set[ClaimId]) -> bool | None:
        """Our vote on another member's pending claim: True yes, False no, None not yet
        (a single inside a third member's block whose owner has not voted)."""
        me, owner = self.view.me, c.owner
        if c.single:
            a = c.items[0]
            use = self.view.used.get(a)
            if not self.pool.usable(a) or a in self.view.mine or (use is not None and use.owner != owner):
                return False
        elif self._holds_others(c, owner):
            return False
        undecided = False
        for e in self.k.touching(c):
            if e.owner == owner:
                continue
            if e.owner == me:
                if e.stamp not in self.claims:
                    continue  # withdrawn just now
            elif e.id not in established and not (not c.single and e.single):
                continue  # an undecided claim: it does not bind us
            if exclusive(c, e) or not c.single:
                return False  # two blocks, two singles, or a block over someone's single
            if e.owner == me:
                continue  # a single inside our block, on an address we do not use: granted
            vote = self.k.voted(e.owner, c.id)
            if vote is False:
                return False
            if vote is None:
                undecided = True
        return None if undecided else True

    # -- own addresses -----------------------------------------------------------------------

    def _others_single_offsets(self) -> set[int]:
        return {s.items[0] for s in self.k.others_singles()}

    def free_offsets(self) -> list[int]:
        """Addresses of our confirmed claims we may hand out to any request now (pinned
        addresses excepted: they wait for their own request), ascending."""
        view = self.view
        occupied = set(view.used) | view.mine | self._others_single_offsets()
        occupied |= {c.items[0] for c in self.claims.values() if c.kind == PIN}
        free = {
            o
            for c in self.claims.values()
            if c.confirmed and c.kind != PIN
            for o in c.offsets()
            if self.pool.usable(o) and o not in occupied
        }
        return sorted(free)

    def _release(self) -> None:
        """Give back empty blocks beyond the spare capacity we keep (see `_keep`)."""
        view, block = self.view, self.pool.block
        held = set(view.used) | view.mine
        others_singles = self._others_single_offsets()
        empties: list[tuple[int, int, int]] = []
        for c in self.claims.values():
            if not c.confirmed or c.single:
                continue
            for b in c.items:
                offsets = range(b * block, (b + 1) * block)
                if any(o in held for o in offsets):
                    continue
                n = sum(1 for o in offsets if self.pool.usable(o) and o not in others_singles)
                empties.append((c.stamp, b, n))
        if not empties:
            return
        free = len(self.free_offsets())
        keep = self._keep()
        for stamp, b, n in sorted(empties, reverse=True):
            if free - n < keep:
                continue
            c = self.claims[stamp]
            items = tuple(i for i in c.items if i != b)
            if items:
                self.claims[stamp] = attrs.evolve(c, items=items)
            else:
                del self.claims[stamp]
            free -= n
            self.notes.append(f"released block {b}")

    def _others_short(self) -> bool:
        """No unclaimed block is left and another member waits for a spare address."""
        return not self._candidate_blocks() and any(
            kn.claim.kind == SPARE and not kn.confirmed for kn in self.k.others.values()
        )

    def _keep(self) -> int:
        """Free addresses we keep in our blocks: as many as we use (at least two blocks);
        one block when others are short."""
        return self.pool.block if self._others_short() else max(2 * self.pool.block, len(self.view.mine))

    # -- new claims --------------------------------------------------------------------------

    def _candidate_blocks(self) -> set[int]:
        """Pool blocks no live claim touches, with no other member's allocation, not all reserved."""
        if self._candidates is None:
            me = self.view.me
            taken = self.k.claimed_blocks()
            taken |= {self.pool.block_of(o) for o, u in self.view.used.items() if u.owner != me}
            self._candidates = {
                b
                for b in range(self.pool.blocks)
                if b not in taken and any(True for _ in self.pool.usable_in_block(b))
            }
        return self._candidates

    def claim(self, kind: int, items: tuple[int, ...]) -> Claim:
        """A new pending claim of ours; its stamp passes our Lamport time and every stamp we
        ever used (`high`, persisted with the record)."""
        stamp = self.high = max(self.view.clock, self.high) + 1
        c = Claim(self.view.me, stamp, kind, items, False, self.pool.block if kind == BLOCKS else 1)
        self.claims[stamp] = c
        if kind == BLOCKS and self._candidates is not None:
            self._candidates -= set(items)
        self.notes.append(f"claimed {'blocks' if kind == BLOCKS else 'address'} {list(items)} as {stamp}")
        return c

    def claim_blocks(self, demand: int) -> bool:
        """Claim fresh blocks for about `demand` more addresses; False if none is unclaimed."""
        candidates = sorted(self._candidate_blocks())
        if not candidates:
            return False
        block = self.pool.block
        k = math.ceil(max(block, demand) / block)
        fair = max(1, len(candidates) // max(1, len(self.view.voters)))
        k = min(k, fair, len(candidates), MAX_BATCH)
        self.claim(BLOCKS, tuple(sorted(self.rng.sample(candidates, k))))
        return True

    def prefetch(self, extra: int = 0) -> None:
        """Claim blocks ahead of need, as we hand out an address: when our free addresses fall
        below a quarter of what we use (half a block at least), no claim of ours is pending,
        and unclaimed blocks are not scarce (fewer than the voters: leave them to those in
        need)."""
        if not self.k.gate_open() or self.waiting_claims():
            return
        if len(self._candidate_blocks()) < len(self.view.voters) or self._others_short():
            return
        demand = len(self.view.mine) + extra
        if demand == 0:
            return
        if len(self.free_offsets()) - extra < max(self.pool.block // 2, demand // 4):
            self.claim_blocks(demand)

    def single_candidate(self) -> tuple[int | None, set[str]]:
        """A free address outside our claims for a single claim (in an unclaimed remnant or a
        live member's block), or None and the failed members whose blocks hold the only free
        addresses left (they cannot vote: such a claim would wait for their return)."""
        view, pool = self.view, self.pool
        occupied = set(view.used) | view.mine | self._others_single_offsets()
        occupied |= {c.items[0] for c in self.claims.values() if c.single}
        mine_blocks = {pool.block_of(o) for c in self.claims.values() if not c.single for o in c.offsets()}
        order = list(range(pool.blocks))
        self.rng.shuffle(order)
        failed: set[str] = set()
        for b in order:
            if b in mine_blocks:
                continue
            free = [o for o in pool.usable_in_block(b) if o not in occupied]
            if not free:
                continue
            owners = self.k.hidden_owners(b)
            if not owners:
                return self.rng.choice(free), set()
            failed |= owners
        return None, failed

    def releasing(self, freed: frozenset[int]) -> set[str]:
        """The other members whose single claims still cover a just freed address."""
        return {s.owner for s in self.k.others_singles() if s.items[0] in freed}

    def waiting_for_release(self, reason: str, owners: Iterable[str]) -> Waiting:
        return Waiting(reason, tuple(sorted(owners)), self.write(), tuple(self.notes))

    def granted(self, address: ipaddress.IPv4Address) -> Granted:
        return Granted(address, self.write(), tuple(self.notes))

    def waiting(self, reason: str, claims: Iterable[Claim]) -> Waiting:
        return Waiting(reason, self.missing(claims), self.write(), tuple(self.notes))

    def missing(self, claims: Iterable[Claim]) -> tuple[str, ...]:
        out = {v for c in claims for v in self.required(c) if self.k.voted(v, c.id) is not True}
        return tuple(sorted(out))

    def waiting_claims(self) -> list[Claim]:
        """Our pending claims a request for any address waits on (blocks, spare addresses)."""
        return [c for c in self.pending() if c.kind != PIN]

    def own_single_at(self, offset: int) -> Claim | None:
        for c in self.claims.values():
            if c.single and c.items[0] == offset:
                return c
        return None


# -- public decisions -------------------------------------------------------------------------


def maintain(view: IpamView, rng: random.Random) -> Maintenance:
    """This member's duty on every IPAM table change: votes, confirmations, withdrawals,
    releases. Write `write` if it is not None."""
    plan = _Plan(view, rng)
    plan.maintain()
    return Maintenance(plan.write(), tuple(plan.notes))


def allocate(
    view: IpamView, rng: random.Random, want: ipaddress.IPv4Address | None = None, *, field: str = "ip"
) -> Granted | Waiting:
    """An address for a new endpoint or VIP (`want`: a pinned one). Raises NoFreeAddress,
    AddressTaken or AddressReserved (nothing to write); see the module rules."""
    plan = _Plan(view, rng)
    if view.me not in view.voters:
        raise LocalProtocolError(f"{view.me} has not joined the IPAM scope")
    if want is not None:
        return _pinned(plan, want, field)
    plan.maintain()
    free = plan.free_offsets()
    if free:
        plan.prefetch(extra=1)
        return plan.granted(plan.pool.address(free[0]))
    pending = plan.waiting_claims()
    if pending:
        return plan.waiting("waiting for votes on a claim", pending)
    if not plan.k.gate_open():
        return plan.waiting("waiting for a first sync with the cluster", [])
    if plan.claim_blocks(len(view.mine) + 1):
        return plan.waiting("claimed free blocks", plan.waiting_claims())
    offset, failed = plan.single_candidate()
    if offset is None and failed:
        reason = "the free addresses left are in failed members' blocks"
        return Waiting(reason, tuple(sorted(failed)), plan.write(), tuple(plan.notes))
    if offset is None:
        releasing = plan.releasing(view.freed)
        if releasing:
            return plan.waiting_for_release("an address was just freed: waiting for its release", releasing)
        raise NoFreeAddress(field=field, network=view.network)
    c = plan.claim(SPARE, (offset,))
    return plan.waiting("claimed a free address", [c])


def adopt(
    view: IpamView, rng: random.Random, address: ipaddress.IPv4Address, *, field: str = "vip"
) -> Granted | Waiting:
    """Claim an address an allocation of ours already holds but no claim of ours covers: the
    VIP of a service we adopted from a member that left (its blocks went with it). Granted
    once a confirmed claim of ours covers it; AddressTaken if another member claims it."""
    if view.me not in view.voters:
        raise LocalProtocolError(f"{view.me} has not joined the IPAM scope")
    return _pinned(_Plan(view, rng), address, field, ours=True)


def _pinned(plan: _Plan, want: ipaddress.IPv4Address, field: str, ours: bool = False) -> Granted | Waiting:
    view, pool = plan.view, plan.pool
    text = str(want)
    if want not in pool.subnet:
        raise AddressReserved(text, f"outside the subnet {pool.subnet}", field=field, network=view.network)
    offset = pool.offset(want)
    why = pool.reserved_reason(offset)
    if why is not None:
        raise AddressReserved(text, why, field=field, network=view.network)
    if offset in view.mine and not ours:
        raise AddressTaken(text, f"an allocation of {view.me}", field=field, network=view.network)
    use = view.used.get(offset)
    if use is not None and not (ours and use.owner == view.me):
        raise AddressTaken(text, use.label, field=field, network=view.network)
    plan.maintain()
    plan.prefetch(extra=1)  # a member that only pins still keeps a spare block (for crashes)
    own_single = plan.own_single_at(offset)
    if own_single is None:
        for s in plan.k.others_singles():
            if s.items[0] == offset:
                if offset in view.freed:
                    return plan.waiting_for_release(
                        f"{text} was just freed: waiting for its release", {s.owner}
                    )
                failed = ", a failed member" if plan.k.others[s.id].hidden else ""
                raise AddressTaken(text, f"claimed by {s.owner}{failed}", field=field, network=view.network)
    if own_single is not None and own_single.confirmed:
        return plan.granted(want)
    if offset in plan.free_offsets() or (
        ours and any(c.confirmed and c.covers(offset) for c in plan.claims.values())
    ):
        return plan.granted(want)
    for c in plan.claims.values():
        if c.covers(offset):
            if c.confirmed:  # ours, but someone else's single is inside: caught above
                raise AddressTaken(text, "claimed inside our block", field=field, network=view.network)
            return plan.waiting("waiting for votes on a claim", [c])
    if not plan.k.gate_open():
        return plan.waiting("waiting for a first sync with the cluster", [])
    c = plan.claim(PIN, (offset,))
    return plan.waiting("claimed the address", [c])


def release(view: IpamView, rng: random.Random, address: ipaddress.IPv4Address) -> Maintenance:
    """After an allocation is removed (or a waiting request is given up): drop our single
    claim on `address`, if any (an address of our blocks just becomes free again)."""
    plan = _Plan(view, rng)
    if address in plan.pool.subnet:
        c = plan.own_single_at(plan.pool.offset(address))
        if c is not None and plan.pool.offset(address) not in view.mine:
            del plan.claims[c.stamp]
            plan.notes.append(f"released address {address}")
    plan.maintain()
    return Maintenance(plan.write(), tuple(plan.notes))


def restore(saved: bytes, me: str, pool_size: int, *, left: bool) -> bytes:
    """The record to put after a restart, from the persisted one. After a crash, as it was
    (the others kept it, hidden). After a graceful leave the others dropped it and may have
    claimed its blocks since: its claims come back pending, to be voted on again (any that
    lost is withdrawn); then `adopt` every address of our endpoints and VIPs (AddressTaken:
    someone took it while we were away, a conflict to report). DecodeError if unreadable."""
    record = Record.decode(saved, me, pool_size)
    if left:
        record = attrs.evolve(record, claims=tuple(attrs.evolve(c, confirmed=False) for c in record.claims))
    return record.encode()


REPUBLISH_AFTER = 2.0
"""Seconds a record that waits on others stays unchanged before `waits_on_others` callers
re-put it (ten gossip rounds; anti-entropy alone would take up to 30 s)."""


def waits_on_others(view: IpamView) -> bool:
    """Whether our record waits on other members: it has pending claims, or yes votes on
    claims still pending. Gossip may miss a member; while this holds, re-put the record
    unchanged every REPUBLISH_AFTER seconds (a new version is gossiped again)."""
    holder = view.records.get(view.me)
    record = holder.record if holder is not None and not holder.retracted else None
    return record is not None and (any(not c.confirmed for c in record.claims) or bool(record.ayes))


def needs_sync(view: IpamView) -> bool:
    """Whether this member should ask for a sync of the IPAM scope (`node.sync_network`)
    now, and again every few seconds while this holds: it has not synced since it started,
    or it still defends remembered claims whose owners' records it has not seen yet (an idle
    owner's record only comes by sync, and until then our no votes hold others back)."""
    return not view.synced or any(kn.ghost for kn in Knowledge(view).others.values())


def remember(view: IpamView) -> Memory:
    """What to persist beside our record (encode it): the others' live claims (remembered
    ones included), so that after a restart this member defends what it knew."""
    k = Knowledge(view)
    return Memory(tuple(sorted((kn.claim for kn in k.others.values()), key=lambda c: (c.owner, c.stamp))))


def overlapping_claims(view: IpamView) -> list[tuple[Claim, Claim]]:
    """Confirmed claims of different members that exclude each other (two blocks or two
    singles sharing an address): never expected; for diagnostics and checkers."""
    k = Knowledge(view)
    confirmed = [c for c in k.own.claims if c.confirmed]
    confirmed += [kn.claim for kn in k.others.values() if kn.confirmed]
    out = []
    for i, a in enumerate(confirmed):
        for b in confirmed[i + 1 :]:
            if exclusive(a, b):
                out.append((a, b))
    return out
