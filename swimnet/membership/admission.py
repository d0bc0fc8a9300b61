"""Admission: how many members a peer can make us believe in without evidence.

A member learned second-hand (pushed at us in a push-pull, or from an alive relayed by
someone else) is *unverified* until we hear from it directly: it acks one of our probes, a
datagram arrives from its address, or it answers a push-pull we opened to it; or until a
peer vouches for it: the reply to a push-pull we opened to a verified member or a seed
lists it alive. A node vouches only for what it verified itself: its push-pull messages
leave out the live members it has not verified, so forged members never spread by
push-pull, whoever they were pushed at. Peers are hostile: one 100 KB push-pull can list
20,000 members that do not exist.

Rules:
- one push-pull exchange introduces at most `MAX_NEW_PER_EXCHANGE` members we did not know,
  drawn at random when it lists more; the rest are dropped and counted
  (`drop_push_pull_new_member`); a real cluster's next exchanges bring them (a joiner's
  post-join syncs follow at once). At random, not the first ones listed: joiners pulling
  from the same sender then admit different members and vouch for them to one another
  (taking them in the sender's order gave every joiner the same ones, and at 2,000 nodes
  left the rest to gossip and the periodic push-pull: 36.5 s to bootstrap);
- at most `MAX_UNVERIFIED` unverified members are held; beyond that the oldest is dropped
  (`unverified_evicted`): reported failed, then forgotten;
- unverified members stay out of the regular probe round; in peer choices (gossip targets,
  probe helpers, push-pull peers, the layers' choices) they only fill what verified members
  cannot (a joiner that knows one verified member still gossips to three, and what it
  sends them makes them answer or relay, which verifies them); one exception: the last
  post-join sync of a joiner into a running cluster goes to the live unverified member it
  learned of last (`latest`), a later joiner in a burst of joins (see
  swimnet.membership.swim); its answer verifies it;
- they are probed in a round of their own: one per probe tick beside the regular probe,
  drawn at random among the live unverified ones (so the members of a cluster probe
  different ones), each at most every `VERIFY_RETRY` probe intervals; those probes never
  move the health score. Besides, the first new member an exchange introduces (at most
  `VERIFY_AT_ONCE`), if still unverified after it, is probed at once: a joiner pushes
  exactly itself, so the seed vouches for it to the next joiners within a round trip
  instead of leaving them to learn it by gossip alone (which may have died down). So
  members that do not exist cost memory and one extra probe per tick (and per exchange),
  die at the pace of the cluster's probes, and never delay the detection of real failures
  nor soak up gossip.

The limits are sized for clusters of thousands: a joiner takes a 5,000-member cluster in
five exchanges, and a real member is verified within a probe interval or two of sending us
anything (it probes us, gossips to us, or answers our verification probe).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from swimnet.membership.member import MemberRecord
from swimnet.wire.codec import encode_members
from swimnet.wire.messages import MemberState, State

_ALIVE = State.ALIVE
"""A State member as a constant (reading `State.X`, an enum class attribute, costs more)."""

MAX_NEW_PER_EXCHANGE = 1024
MAX_UNVERIFIED = 4096
VERIFY_RETRY = 10.0
"""Probe intervals before an unverified member is probed again (it refuted a failed one)."""
VERIFY_AT_ONCE = 1
"""New members of one exchange probed as soon as it is merged (see the rules)."""


class Admission:
    """The unverified members of one node, oldest first.

    Invariant: every member record with `verified` False that `members` holds is in
    `unverified` under its name (`learned` is the only place that clears the flag; entries
    leave `unverified` when verified, evicted, or found stale)."""

    __slots__ = ("_introduced", "_probed", "unverified")

    def __init__(self) -> None:
        self.unverified: dict[str, MemberRecord] = {}
        """Unverified members by name, oldest first (read it, never write it; emptied in
        place, never replaced: owners may hold it). Empty: every member is verified."""
        self._probed: dict[str, float] = {}
        self._introduced: list[str] = []

    def __len__(self) -> int:
        return len(self.unverified)

    def refused(
        self,
        records: Sequence[MemberState],
        members: dict[str, MemberRecord],
        stats: Counter[str],
        rng: random.Random,
    ) -> set[int]:
        """Begin admitting the records of one push-pull: the indexes of those refused, so that
        at most MAX_NEW_PER_EXCHANGE new alive members are taken, a random subset of that
        many when it lists more (see the rules). The caller then takes the others in order,
        telling `introduce` of each new alive member as it comes to it."""
        self._introduced.clear()
        if len(records) <= MAX_NEW_PER_EXCHANGE:
            return set()  # it cannot list too many new ones
        new = [i for i, r in enumerate(records) if r.state == _ALIVE and r.name not in members]
        if len(new) <= MAX_NEW_PER_EXCHANGE:
            return set()
        refused = set(new).difference(rng.sample(new, MAX_NEW_PER_EXCHANGE))
        stats["drop_push_pull_new_member"] += len(refused)
        return refused

    def introduce(self, name: str) -> None:
        """A record being admitted names a new alive member (not known when it came up)."""
        if len(self._introduced) < VERIFY_AT_ONCE:
            self._introduced.append(name)

    def introduced(self, members: dict[str, MemberRecord], now: float) -> list[MemberRecord]:
        """The new members the last admitted exchange introduced that are still unverified
        and alive (at most VERIFY_AT_ONCE): to probe now (they count as probed now)."""
        out = []
        for name in self._introduced:
            m = members.get(name)
            if m is not None and not m.verified and m.state == _ALIVE:
                self._probed[name] = now
                out.append(m)
        self._introduced.clear()
        return out

    def latest(self, members: dict[str, MemberRecord]) -> MemberRecord | None:
        """The live unverified member learned most recently, if any (a joiner's last
        post-join sync goes to it: see swimnet.membership.swim)."""
        for name in reversed(self.unverified):
            m = self.unverified[name]
            if members.get(name) is m and not m.verified and m.state == _ALIVE:
                return m
        return None

    def learned(self, m: MemberRecord) -> None:
        """A member just learned second-hand (the newest unverified)."""
        m.verified = False
        self.unverified.pop(m.name, None)
        self.unverified[m.name] = m

    def verify(self, m: MemberRecord | None) -> None:
        """We heard from `m` directly."""
        if m is not None and not m.verified:
            m.verified = True
            self.unverified.pop(m.name, None)
            self._probed.pop(m.name, None)
            self._shrink()

    def _shrink(self) -> None:
        """Free the tables once empty: an emptied dict keeps the size of its peak (a joiner's
        thousands of unverified members) until cleared."""
        if not self.unverified:
            self.unverified.clear()
        if not self._probed:
            self._probed.clear()

    def vouched(
        self,
        records: Iterable[MemberState],
        members: dict[str, MemberRecord],
        peer: MemberRecord | None,
        seed: bool,
    ) -> None:
        """The reply to a push-pull we opened: the peer answered at its address (verified);
        if it is a member or a seed, the live members it lists are verified too."""
        self.verify(peer)
        if (peer is None and not seed) or not self.unverified:
            return  # (every unverified member is in `unverified`: none, nothing to verify)
        for r in records:
            if r.state == _ALIVE:
                m = members.get(r.name)
                if m is not None and not m.verified and m.identity[1] == r.addr:
                    self.verify(m)

    def overflow(self, members: dict[str, MemberRecord]) -> list[MemberRecord]:
        """The oldest unverified members beyond MAX_UNVERIFIED (still current: to evict)."""
        evict = []
        while len(self.unverified) > MAX_UNVERIFIED:
            name, m = next(iter(self.unverified.items()))
            del self.unverified[name]
            self._probed.pop(name, None)
            if members.get(name) is m and not m.verified:
                evict.append(m)
        return evict

    def next_to_verify(
        self, members: dict[str, MemberRecord], now: float, retry: float, rng: random.Random
    ) -> MemberRecord | None:
        """A live unverified member not probed in the last `retry` seconds, drawn at random
        (so the members of a cluster probe different ones: forged members die R times as fast)."""
        if not self.unverified:
            return None
        names = list(self.unverified)
        start = int(rng.random() * len(names))
        found = None
        for i in range(len(names)):
            name = names[(start + i) % len(names)]
            m = self.unverified[name]
            if members.get(name) is not m or m.verified:
                del self.unverified[name]
                self._probed.pop(name, None)
                self._shrink()
                continue
            if m.state != _ALIVE or now - self._probed.get(name, -retry) < retry:
                continue  # a suspect is being dealt with; a refuted one waits for its retry
            self._probed[name] = now
            found = m
            break
        return found


def vouched_encoded(members: Iterable[MemberRecord]) -> list[bytes]:
    """The members a push-pull of ours lists, encoded as `encode_members` does: every one
    but the live unverified ones."""
    return encode_members(
        (m.identity, m.incarnation, m.state) for m in members if m.verified or m.state != _ALIVE
    )


def verified_only(accept: Callable[[MemberRecord], bool]) -> Callable[[MemberRecord], bool]:
    """`accept`, narrowed to verified members."""
    return lambda m: m.verified and accept(m)


def unverified_only(accept: Callable[[MemberRecord], bool]) -> Callable[[MemberRecord], bool]:
    """`accept`, narrowed to unverified members."""
    return lambda m: not m.verified and accept(m)
