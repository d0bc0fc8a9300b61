"""What a member knows of a network's claims, and when two claims conflict.

Rules:
- the live claims of the others are those in their records (visible, or hidden because the
  owner failed: reserved until the tables reap it; the pending ones of a member known to
  have left excepted: it will never confirm them; and all of those of a member we saw
  fail that a record attests left, and its allocations too: the members that saw the
  leave dropped them with its record and entries after the left grace), plus remembered
  ones (`Memory`, after a
  restart) whose owner's record (live or a tombstone) is absent or older than the claim
  (`record.high` below the claim's stamp), until `reap_interval` after the restart, until
  the owner is known to have left (membership says so here, or a record attests it:
  `Record.gone`, with the owner's `high` when it left at least the claim's stamp); a
  remembered claim counts as confirmed;
- conflicts, between claims of different owners that share an address: two block claims
  conflict; two single-address claims conflict; a block claim conflicts with every single
  of another member inside it (blocks never swallow someone's address); a single inside
  another member's block is the block owner's call: it agrees only if the address is not
  one of its allocations (and then never allocates it), the other voters follow its vote;
- a member's established claims (what it defends by voting no) are its own live claims,
  the others' confirmed ones and the others' pending ones it voted yes on (yes is sticky).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from swimnet.ipam.record import Claim, ClaimId, Record, overlap
from swimnet.ipam.view import IpamView, attested_departures


@attrs.frozen
class Known:
    """A live claim of another member."""

    claim: Claim
    hidden: bool
    """Its owner failed (or it is remembered only): it cannot progress, it stays reserved."""
    ghost: bool
    """Remembered from before a restart, not (yet) seen in a record."""

    @property
    def confirmed(self) -> bool:
        return self.claim.confirmed or self.ghost


class Knowledge:
    """The claims and votes one `IpamView` shows, indexed by pool block."""

    def __init__(self, view: IpamView) -> None:
        self.view = view
        me = view.me
        holder = view.records.get(me)
        own = holder.record if holder is not None and not holder.retracted else None
        self.own: Record = own if own is not None else Record(view.pool.block, 0)
        self.others: dict[ClaimId, Known] = {}
        self.votes: dict[str, tuple[frozenset[ClaimId], frozenset[ClaimId]]] = {}
        """member -> (ayes, nays) as its record (visible or hidden) says."""
        seen_failed = attested_departures(view.records) - view.departed - {me}
        self.seen_failed = seen_failed
        """Members seen failed here that a record attests left: their claims and their
        allocations (hidden entries) ended, as for the members that saw them leave."""
        self.departed = (view.departed | seen_failed) - {me}
        """Members known to have left (membership says so, or a record attests it)."""
        for member, h in view.records.items():
            if member == me or h.record is None or h.retracted:
                continue
            self.votes[member] = (h.record.ayes, h.record.nays)
            if member in seen_failed and h.hidden:
                continue  # it left (we saw it fail): its claims ended, as where the leave was seen
            for c in h.record.claims:
                if c.confirmed or member not in self.departed:  # a leaver never confirms
                    self.others[c.id] = Known(c, h.hidden, False)
        if self.memory_active:
            attested: dict[str, int] = {}
            for h in view.records.values():
                if h.record is not None and not h.retracted:
                    for member, high in h.record.gone:
                        attested[member] = max(attested.get(member, -1), high)
            for c in view.memory.claims:
                if c.owner == me or c.owner in self.departed or c.id in self.others:
                    continue
                if attested.get(c.owner, -1) >= c.stamp:
                    continue  # a member saw its owner leave after it: the claim ended
                other = view.records.get(c.owner)
                if other is not None and other.record is not None and other.record.high >= c.stamp:
                    continue  # the owner's record is newer than the claim and no longer has it
                self.others[c.id] = Known(c, True, True)
        self._index: dict[int, list[Claim]] = {}
        for c in self.own.claims:
            self._add(c)
        for k in self.others.values():
            self._add(k.claim)

    # -- state -----------------------------------------------------------------------------

    @property
    def memory_active(self) -> bool:
        m = self.view.memory
        return m.since is not None and self.view.now < m.since + self.view.reap_interval

    @property
    def voters(self) -> frozenset[str]:
        """The members whose yes a claim of ours needs (this node excluded)."""
        return self.view.voters - {self.view.me}

    def gate_open(self) -> bool:
        """Whether this node may create or confirm claims: it is attached to the scope and
        has synced with a peer since it started (or bootstraps a cluster: `view.synced`)."""
        return self.view.synced and self.view.me in self.view.voters

    def voted(self, member: str, claim: ClaimId) -> bool | None:
        """`member`'s vote on a claim: True yes, False no, None none (or no readable record)."""
        ayes, nays = self.votes.get(member, (frozenset(), frozenset()))
        if claim in ayes:
            return True
        if claim in nays:
            return False
        return None

    # -- geometry ----------------------------------------------------------------------------

    def _blocks(self, c: Claim) -> set[int]:
        """The pool blocks a claim touches (its unit may differ from the pool's block)."""
        b = self.view.pool.block
        return {i for start, end in c.spans() for i in range(start // b, (end - 1) // b + 1)}

    def _add(self, c: Claim) -> None:
        for i in self._blocks(c):
            self._index.setdefault(i, []).append(c)

    def touching(self, c: Claim) -> Iterator[Claim]:
        """Live claims (own and others') sharing an address with `c`, `c` itself excluded."""
        seen: set[ClaimId] = {c.id}
        for i in self._blocks(c):
            for other in self._index.get(i, ()):
                if other.id not in seen and overlap(c, other):
                    seen.add(other.id)
                    yield other

    def claimed_blocks(self) -> set[int]:
        """Pool blocks that any live claim touches."""
        return set(self._index)

    def hidden_owners(self, index: int) -> set[str]:
        """The failed (or only remembered) members whose block claims touch a pool block."""
        return {
            c.owner
            for c in self._index.get(index, ())
            if not c.single and c.owner != self.view.me and self.others[c.id].hidden
        }

    def others_singles(self) -> Iterable[Claim]:
        return (k.claim for k in self.others.values() if k.claim.single)


def exclusive(a: Claim, b: Claim) -> bool:
    """Two claims of different owners that can never both hold: two blocks or two singles
    sharing an address (a single and a block are decided by votes, see the module rules)."""
    return a.owner != b.owner and a.single == b.single and overlap(a, b)
