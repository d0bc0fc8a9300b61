"""SWIM + Lifeguard membership: the whole protocol as one pure state machine.

Inputs are decoded messages (`handle_message`), push-pull state (`merge_remote_state`),
timer expiries (`handle_timer`) and API calls, each with `now`. Outputs accumulate in
`outbox` (plaintext datagrams as (address, bytes)), `streams` (stream requests to open, each
with its kind: "join", "join_sync", "catch_up", "push_pull" or "ping"); the owner drains them after
every call.
Membership events go to the `events` delegate as they happen. The layers above are
reached only through the delegates given at construction (`SwimDelegates`: ping, state,
events, peer selection, broadcast sources).

Rules (hashicorp/memberlist's state.go, with its precedence exactly):
- alive(inc) applies only if inc > known incarnation (or it reclaims a left/reclaimable
  dead name from a new address); alive with the same incarnation never revives the dead;
- suspect/dead with an older incarnation are ignored; suspect only hits an alive member,
  or confirms an existing suspicion (a new accuser is re-gossiped and shortens the timer);
- claims about ourselves are refuted with a higher incarnation (health score +1), except
  our own leave;
- dead from the node itself means it left; a push-pull "dead" is downgraded to suspect;
- a newcomer (a node that knows no other live member when a join reply arrives) applies
  what that reply and its post-join syncs bring without gossiping it on: it is the view of
  the peers that sent it, no news to their cluster (so a join costs O(1) broadcasts, not
  O(N)); the newcomer's own alive is gossiped by the seed, which learned it from the
  request. A node that already knew members (two clusters merged by a join, an isolated
  node's rejoin) gossips what it learns like any push-pull: it may be news to its side;
- periodic push-pull: one random member every `push_pull_interval` scaled by size, the
  first after a random stagger of up to one interval (memberlist waits a whole interval
  more: an early one is what catches up a node that missed later joiners in a burst);
  each next one (and the one after a catch-up) is due a scaled interval on times a factor
  drawn uniformly in 1 +- `PUSH_PULL_JITTER` (0.5), so the mean interval stays
  memberlist's. memberlist does not jitter (state.go's pushPullTrigger: one stagger, then a
  fixed scaled period), so a cluster started at once keeps the phase of its first
  push-pulls for ever: in the simulator 500 nodes bootstrapped at once made 466 push-pulls
  within 30 s of every 150 s and 0-2 in every other 10 s, 1,000 nodes 897 within 30 s of
  every 180 s; jittered, the first wave (the stagger) stays, and from 90 s after
  convergence every 10 s holds 16-65 (500) and 17-78 (1,000) push-pulls; 500 nodes from
  300 to 1,500 s after it: 21-44 per 10 s (0-169 unjittered), 4,017 push-pulls for 4,000;
- post-join syncs go to random members, except the last one of a joiner into a running
  cluster (a join answer listed members besides its sender) that holds members nobody
  vouched for: it goes to the one of them we learned of last (`Admission.latest`), most
  likely a member that joined after us, whose own join answer listed everyone the seed had
  verified by then; a random partner of a join burst joined before us mostly, and lists the
  later joiners only once it verified them itself. A random sync goes in its place if that
  one fails (the member may be forged). A cluster that forms at once (every answer lists
  its sender alone) has no later joiners to look for: there the random syncs, which also
  push what we know to their partners, bootstrap everyone (steering them slowed a
  2,000-node bootstrap from 15.75 to 18.0 s virtual; sending them all to the seed, 1,000
  nodes from 1.8 to 3.4 s: a joiner whose own partners knew little is caught up by other
  joiners' syncs to it);
- catch-up push-pulls: after a join into a running cluster (as above), once a quiet
  period has passed since the last new member a node learned (`CATCH_UP_QUIET` probe
  intervals times a factor drawn per join in [1, 1 + `CATCH_UP_JITTER`), so a burst's
  joiners, who all wait for the same last news, spread theirs; and never shorter than
  `CATCH_UP_GAP_MULT` times the longest gap between new members seen since the join, a
  gap a catch-up's answer ended aside: in a slow burst a shorter silence is only a gap,
  and the catch-ups it brought mid-burst added CPU to a CPU-bound join phase for nothing
  (500 joins on one busy host: 863 before the last join, 62-70 so); the tick is re-armed
  for the end of the quiet period, never polled), it pulls from one of the
  `CATCH_UP_SPREAD` live members it learned of last, drawn at random: at the end of a
  burst of joins, the last joiners, whose join answers listed every member the seed had
  verified (a random member if that one fails; drawn among a few, not the very last, so
  a burst's joiners do not all pull from one node). A second one follows, a quiet period
  after the last news, if the first brought a new member (news within a quiet period of
  it), at most `CATCH_UP_MAX` so. Then a backstop: a slow burst (joins slowed by a busy
  host) has gaps longer than that quiet period, so those catch-ups may be spent
  mid-burst, and a node that then misses a later joiner waited for its periodic
  push-pull (500 nodes on one busy host: 2 of them 129 and 153 s; simulator, 300 joins
  in 10 groups 3 s apart, seed 0: 120 s after the last join, 1.0 s with the backstop);
  so once they are done (spent, or one brought nothing new), if the node learns a new
  member within `BACKSTOP_QUIET` probe intervals, it catches up again once that long has
  passed since its last news, and again if that brought news, at most `BACKSTOP_MAX` so;
  it stops after one that brought nothing new or a backstop period without news. O(1)
  per join (at most 4, 1-2 in a burst without gaps: one backstop look, a timer, costs
  nothing), none in steady state; and a catch-up stands for the periodic push-pull (the
  next one is due a jittered scaled interval after it), so a join brings a push-pull
  forward rather than adding one. A node that
  missed a late joiner of a long burst (gossip about it died out before reaching it: a
  recent joiner is unverified at most members, so little gossip goes its way; and its
  partners list a later joiner only once they verified it) otherwise waited for its next
  periodic push-pull (150 s at 500 members): 500 nodes joining 140 ms apart in the
  simulator (2% loss) converged 158.5 s after the last join, 10.5 s with it;
- probes go round-robin over a shuffled order; dead and left members are skipped and reaped
  after `dead_reap_time` at the wrap; reaped failed members (and unreachable seeds) are
  re-contacted every `rejoin_interval`, so a split cluster re-merges by itself;
- peer input is bounded (peers are hostile): implausible incarnations are refused and a
  refutation never passes the wire's bound (`incarnation`); members known only second-hand
  are capped and kept out of the probe round and peer choices until verified (`admission`);
  a member that finds itself unheard rejoins (`isolation`);
- randomness only from the injected `random.Random`; time only from `now`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable

from swimnet.config import Config
from swimnet.errors import LocalProtocolError
from swimnet.membership import incarnation as inc
from swimnet.membership.admission import (
    VERIFY_RETRY,
    Admission,
    unverified_only,
    verified_only,
    vouched_encoded,
)
from swimnet.membership.awareness import Awareness
from swimnet.membership.delegates import SwimDelegates
from swimnet.membership.events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
)
from swimnet.membership.formulas import push_pull_scale, suspicion_timeout
from swimnet.membership.isolation import REJOIN_FANOUT, Isolation
from swimnet.membership.member import Member, MemberRecord
from swimnet.membership.queue import BroadcastQueue
from swimnet.membership.suspicion import Suspicion
from swimnet.membership.timers import Timers
from swimnet.wire.codec import (
    encode_ack,
    encode_message,
    encode_ping,
    encode_push_pull,
    encode_stream,
    pack_packet,
)
from swimnet.wire.messages import (
    Ack,
    Address,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    PushPull,
    State,
    Suspect,
    WireMessage,
)

_ALIVE, _SUSPECT, _DEAD, _LEFT = State.ALIVE, State.SUSPECT, State.DEAD, State.LEFT
"""State members as constants (reading `State.X`, an enum class attribute, costs more)."""

VSN = (2, 2, 2)
_PER_MESSAGE_OVERHEAD = 0  # messages are concatenated inside one msgpack array
_PACKET_HEADER = 4  # version byte + array header (<= 3 bytes)

_PROBE_TICK = ("probe",)
_GOSSIP_TICK = ("gossip",)
_MAX_SEQ_SKIP = 16
"""How far ahead of the next sequence number the ping delegate may pick a probe's."""
_PUSH_PULL_TICK = ("push_pull",)
_REJOIN_TICK = ("rejoin",)
_CATCH_UP_TICK = ("catch_up",)
PUSH_PULL_JITTER = 0.5
"""Each periodic push-pull interval is the scaled interval times a factor drawn uniformly
in 1 +- PUSH_PULL_JITTER (the mean stays the scaled interval; see the rules)."""
CATCH_UP_QUIET = 1.0
"""Probe intervals without a new member, after a join into a running cluster, before a
catch-up push-pull (see the rules); each join draws its own quiet period in
[1, 1 + CATCH_UP_JITTER) times that."""
CATCH_UP_JITTER = 1.0
"""Spreads a burst's catch-ups over time (they all wait for the same last news)."""
CATCH_UP_MAX = 2
"""Catch-up push-pulls per join at most, backstop ones aside."""
CATCH_UP_GAP_MULT = 2.0
"""A quiet period lasts at least this many times the longest gap between new members the
node saw since its join: in a slow burst a shorter silence is only a gap (see the rules)."""
BACKSTOP_QUIET = 5.0
"""Probe intervals without a new member before a backstop catch-up (see the rules)."""
BACKSTOP_MAX = 2
"""Backstop catch-up push-pulls per join at most."""
CATCH_UP_SPREAD = 4
"""A catch-up goes to one of this many members learned last, drawn at random: at the end of
a burst every joiner catches up within one quiet period, and all of them pulling from the
one last joiner would put N full push-pulls through one node in a few seconds."""
_LEAVE_TIMEOUT = ("leave",)
_REJOIN_RECENT = 2
_REJOIN_RANDOM = 2


class _Probe:
    """One probe in flight; its one timer fires at the probe timeout (indirect round), then
    at `deadline` (the probe failed)."""

    __slots__ = (
        "addr", "deadline", "expected_nacks", "incarnation", "nacks", "sent", "target", "timed_out",
        "verifying",
    )  # fmt: skip

    def __init__(
        self, target: str, addr: Address, incarnation: int, sent: float, deadline: float, verifying: bool
    ) -> None:
        self.target = target
        self.addr = addr
        self.incarnation = incarnation
        self.sent = sent
        self.deadline = deadline
        self.timed_out = False
        self.expected_nacks = 0
        self.nacks = 0
        self.verifying = verifying


class _Relay:
    __slots__ = ("nack", "origin_seq", "reply_to")

    def __init__(self, origin_seq: int, reply_to: Address, nack: bool) -> None:
        self.origin_seq = origin_seq
        self.reply_to = reply_to
        self.nack = nack


class Swim:
    """The membership protocol of one node."""

    __slots__ = (  # fixed attributes, read on every packet (more than a shared-keys dict holds)
        "_admission",
        "_by_addr",
        "_catch_up_at",
        "_catch_up_left",
        "_catch_up_mark",
        "_catch_up_quiet",
        "_event_delegate",
        "_extra",
        "_failed",
        "_gossip_idle",
        "_gossip_phase",
        "_isolation",
        "_joined_running",
        "_leaving",
        "_me",
        "_news_at",
        "_news_gap",
        "_opaque_sources",
        "_order",
        "_packet_budget",
        "_pending",
        "_ping",
        "_probe_index",
        "_probe_period",
        "_probe_wait",
        "_queued",
        "_quiet_syncs",
        "_ready",
        "_reaped",
        "_rebutted",
        "_seeds",
        "_selection",
        "_seq",
        "_state",
        "_steered",
        "_suspicions",
        "_unverified",
        "_waking_opaque",
        "addr",
        "awareness",
        "config",
        "leave_done",
        "members",
        "name",
        "outbox",
        "queue",
        "rng",
        "stats",
        "streams",
        "timers",
    )

    def __init__(
        self,
        config: Config,
        rng: random.Random,
        now: float,
        *,
        incarnation: int = 1,
        meta: bytes | None = None,
        delegates: SwimDelegates | None = None,
        stats: Counter[str] | None = None,
    ) -> None:
        d = delegates if delegates is not None else SwimDelegates()
        self._ping = d.ping
        self._state = d.state
        self._event_delegate = d.events
        self._selection = d.selection
        self.config = config
        self.rng = rng
        self.name = config.name
        self.addr = config.advertise_address
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.queue = BroadcastQueue(config.retransmit_mult, config.broadcast_queue_max)
        queues = (self.queue, *d.broadcasts)
        self._queued = tuple(c for q in queues if q.wakes_gossip and q.pending is not None for c in q.pending)
        """The `pending` containers of the sources that wake gossip: any() of them is cheap."""
        self._waking_opaque = tuple(q for q in queues if q.wakes_gossip and q.pending is None)
        """The other sources that wake gossip: their `len()` is asked after every input."""
        self._opaque_sources = tuple(q for q in queues if q.pending is None)
        """Sources without a cheap emptiness test: asked to `take` on every packet."""
        self._ready = tuple(c for q in queues if q.pending is not None for c in q.pending)
        """The `pending` containers of every other source: while all are empty (and there is no
        opaque source), a packet goes out without asking any source."""
        self._extra = tuple((q, q.pending) for q in d.broadcasts)
        """The layers' sources, each with its `pending` containers (None: always asked)."""
        self.timers = Timers()
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.outbox: list[tuple[Address, bytes]] = []
        self.streams: list[tuple[Address, bytes, str]] = []
        """(address, request frame, kind) of streams to open; kind says how a failure counts."""
        self._packet_budget = config.packet_size
        self._probe_period = config.probe_interval
        self._probe_wait = config.probe_timeout
        """The probe interval and timeout (the config is frozen), read by every probe round
        here rather than in the config: one object less per probe."""

        self.members: dict[str, MemberRecord] = {}
        self._order: list[str] = []
        self._probe_index = 0
        self._suspicions: dict[str, Suspicion] = {}
        self._pending: dict[int, _Probe | _Relay] = {}
        self._seq = rng.randrange(1 << 32)
        self._leaving = False
        self.leave_done = False
        self._seeds: list[Address] = []
        self._quiet_syncs = False
        """Our last join made us a newcomer: its post-join syncs are not gossiped on."""
        self._joined_running = False
        """A join answer listed members besides its sender: later joiners are worth looking for."""
        self._steered: dict[Address, str] = {}
        """Exchanges we steered to a chosen member (the last post-join sync, a catch-up), by
        address, with their kind: if one fails, a random push-pull of that kind replaces it."""
        self._catch_up_left = 0
        """Catch-up push-pulls this join may still open, backstop ones included (see the rules)."""
        self._news_at = 0.0
        """When we last learned a new member (read by the catch-up tick)."""
        self._news_gap = 0.0
        """The longest gap between new members learned since our join, catch-ups aside."""
        self._catch_up_at = 0.0
        """When the last catch-up was opened (a gap across it is its answer's, not the burst's)."""
        self._catch_up_quiet = 0.0
        """The quiet period before the next catch-up: this join's drawn one, then the backstop's."""
        self._catch_up_mark: float | None = None
        """Since when news decides whether catch-ups go on: the last catch-up's opening, or
        the end of the fast ones (None: nothing to judge, wait for the quiet period)."""
        self._reaped: dict[str, tuple[Address, float]] = {}
        self._failed: set[str] = set()
        """Members now DEAD (not left): candidates for rejoin attempts."""
        self._by_addr: dict[Address, MemberRecord] = {}
        """Members by address (only members: a record leaves it when it leaves `members`)."""
        self._rebutted: dict[str, float] = {}
        self._admission = Admission()
        self._unverified = self._admission.unverified
        """Empty: every member we hold is verified (Admission's invariant), so hearing from
        one or its ack verifies nothing (asked per datagram: no lookup then)."""
        self._isolation = Isolation()
        inc.check_own(incarnation)

        me = MemberRecord(
            self.name, self.addr, incarnation, _ALIVE, now, config.meta if meta is None else meta, VSN
        )
        self._me = me
        self._insert(me)
        self.timers.set(_PROBE_TICK, now + rng.uniform(0.0, config.probe_interval))
        self._gossip_phase = now + rng.uniform(0.0, config.gossip_interval)
        self._gossip_idle = False
        self.timers.set(_GOSSIP_TICK, self._gossip_phase)
        self.timers.set(_PUSH_PULL_TICK, now + rng.uniform(0.0, config.push_pull_interval))
        self.timers.set(_REJOIN_TICK, now + config.rejoin_interval * (1.0 + rng.random()))

    # -- queries ---------------------------------------------------------------------------

    @property
    def incarnation(self) -> int:
        return self._me.incarnation

    @property
    def local_member(self) -> Member:
        return self._me.snapshot()

    @property
    def leaving(self) -> bool:
        return self._leaving

    def member_list(self) -> list[Member]:
        return [m.snapshot() for m in self.members.values()]

    def alive_count(self) -> int:
        return sum(1 for m in self.members.values() if m.state <= _SUSPECT)

    def take_outbox(self) -> list[tuple[Address, bytes]]:
        """The datagrams queued since the last call (plaintext), in order."""
        out, self.outbox = self.outbox, []
        return out

    def take_streams(self) -> list[tuple[Address, bytes, str]]:
        """The stream requests queued since the last call: (address, frame, kind)."""
        out, self.streams = self.streams, []
        return out

    @property
    def packet_budget(self) -> int:
        """Bytes a plaintext datagram may take (packet size minus sealing overhead)."""
        return self._packet_budget

    def set_sealing_overhead(self, overhead: int) -> None:
        """Sealing adds `overhead` bytes to every datagram (security switched at run time)."""
        self._packet_budget = self.config.packet_size - overhead

    def _emit(self, event: MemberEvent, now: float) -> None:
        self._event_delegate.notify_member_event(event, now)

    # -- sending ---------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _probe_seq(self, member: str) -> int:
        """The next sequence number as the ping delegate picks it for a direct probe of `member`
        (it may skip a few ahead: see PingDelegate.ping_seq)."""
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFF  # _next_seq(), inlined (once per probe)
        picked = self._ping.ping_seq(member, seq)
        if not 0 <= picked <= 0xFFFFFFFF or (picked - seq) % 2**32 > _MAX_SEQ_SKIP:
            raise LocalProtocolError(
                f"ping delegate: sequence number {picked} is not within {_MAX_SEQ_SKIP} of {seq}"
            )
        self._seq = picked
        return picked

    def send(self, addr: Address, messages: list[WireMessage]) -> None:
        """Queue a datagram with `messages`, topped up with piggybacked broadcasts."""
        self._send_encoded(addr, [encode_message(m) for m in messages])

    def _send_encoded(self, addr: Address, parts: list[bytes]) -> None:
        """`send`, the messages already encoded (probes and acks skip the message objects)."""
        if self._opaque_sources or any(self._ready):
            used = _PACKET_HEADER
            for p in parts:
                used += len(p)
            parts.extend(self._broadcasts(self._packet_budget - used))
        self.outbox.append((addr, pack_packet(parts)))

    def _broadcasts(self, budget: int) -> list[bytes]:
        if budget <= 0:
            return []
        n = len(self.members)
        taken = self.queue.take(budget, _PER_MESSAGE_OVERHEAD, n) if self.queue.items else []
        for b in taken:
            budget -= len(b)
        for q, items in self._extra:
            if budget <= 0:
                break
            if items is None or any(items):
                more = q.take(budget, _PER_MESSAGE_OVERHEAD, n)
                for b in more:
                    budget -= len(b)
                taken.extend(more)
        return taken[:255] if len(taken) > 255 else taken

    def broadcast(
        self, key: Hashable, message: WireMessage, on_done: Callable[[], None] | None = None
    ) -> None:
        self.queue.queue(key, encode_message(message), on_done)

    def _push_pull_frame(self, join: bool, now: float) -> bytes:
        """Our push-pull message as a stream frame (members encoded once per state, shared)."""
        members = vouched_encoded(self.members.values())
        return encode_push_pull(join, members, self._state.local_state(join, now))

    def _open_push_pull(self, addr: Address, join: bool, now: float, kind: str | None = None) -> None:
        frame = self._push_pull_frame(join, now)
        self.streams.append((addr, frame, kind or ("join" if join else "push_pull")))

    # -- API -------------------------------------------------------------------------------

    def join(self, seeds: list[Address], now: float) -> None:
        """Push-pull with every seed; they are also re-contacted later if unreachable."""
        self._quiet_syncs = False
        for addr in seeds:
            if addr not in self._seeds:
                self._seeds.append(addr)
            if addr != self.addr:
                self._open_push_pull(addr, True, now)

    def joined(self, addr: Address, now: float) -> None:
        """A join push-pull with `addr` succeeded: schedule the post-join syncs, and, into a
        running cluster, the catch-up push-pulls (see the rules)."""
        for i, delay in enumerate(self.config.join_sync_delays):
            self.timers.set(("join_sync", i), now + delay * (0.5 + self.rng.random()))
        if self._joined_running and _CATCH_UP_TICK not in self.timers:
            self._catch_up_left = CATCH_UP_MAX + BACKSTOP_MAX
            self._catch_up_mark = None
            self._news_at = self._catch_up_at = now
            self._news_gap = 0.0
            quiet = CATCH_UP_QUIET * self.config.probe_interval
            self._catch_up_quiet = quiet * (1.0 + CATCH_UP_JITTER * self.rng.random())
            self.timers.set(_CATCH_UP_TICK, now + self._catch_up_quiet)

    def set_meta(self, meta: bytes, now: float) -> None:
        if self._leaving:
            raise LocalProtocolError("set_meta after leave(): the node is leaving")
        self._me.incarnation = inc.check_own(self._me.incarnation + 1)
        self._me.rebind(self._me.addr, meta, self._me.vsn)
        self._broadcast_alive()

    def leave(self, now: float) -> None:
        """Broadcast our leave; `leave_done` turns True once it was transmitted (or timed out)."""
        if self._leaving:
            return
        self._leaving = True
        self._on_dead(Dead(self._me.incarnation, self.name, self.name), now)
        if not any(m.state <= _SUSPECT for m in self.members.values() if m is not self._me):
            self.leave_done = True
        else:
            self.timers.set(_LEAVE_TIMEOUT, now + self.config.leave_timeout)

    def _leave_transmitted(self) -> None:
        self.leave_done = True
        self.timers.cancel(_LEAVE_TIMEOUT)

    # -- messages ------------------------------------------------------------------------

    def handle_message(self, msg: WireMessage, addr: Address, now: float) -> None:
        """One membership message of a datagram from `addr`; after the datagram's last one,
        the owner calls `heard_from(addr)`."""
        t = type(msg)  # the steady state's two first: a probe and its ack
        if t is Ping:
            self._on_ping(msg, addr)  # type: ignore[arg-type]
        elif t is Ack:
            self._on_ack(msg, addr, now)  # type: ignore[arg-type]
        elif t is Alive:
            self._on_alive(msg, now)  # type: ignore[arg-type]
        elif t is Suspect:
            self._on_suspect(msg, now)  # type: ignore[arg-type]
        elif t is Dead:
            self._on_dead(msg, now)  # type: ignore[arg-type]
        elif t is IndirectPing:
            self._on_indirect_ping(msg, addr, now)  # type: ignore[arg-type]
        elif t is Nack:
            self._on_nack(msg)  # type: ignore[arg-type]
        else:
            self.stats["drop_unexpected_message"] += 1

    def heard_from(self, addr: Address) -> None:
        """A datagram with membership messages came from `addr`: we heard from it directly."""
        if not self._unverified:
            return  # every member is verified (`_by_addr` holds only members)
        m = self._by_addr.get(addr)
        if m is not None and not m.verified:
            self._admission.verify(m)

    def _on_ping(self, msg: Ping, addr: Address) -> None:
        if msg.target != self.name:
            self.stats["drop_wrong_target"] += 1
            return
        self._send_encoded(addr, [encode_ack(msg.seq, self._ping.ack_payload(msg.seq, msg.source))])

    def _on_indirect_ping(self, msg: IndirectPing, addr: Address, now: float) -> None:
        seq = self._next_seq()
        self._pending[seq] = _Relay(msg.seq, addr, msg.nack)
        self._send_encoded(msg.target_addr, [encode_ping(seq, msg.target, self.name)])
        self.timers.set(("relay", seq), now + self.config.probe_timeout)

    def _on_ack(self, msg: Ack, addr: Address, now: float, *, via_stream: bool = False) -> None:
        pending = self._pending.pop(msg.seq, None)
        if pending is None:
            self.stats["ack_unmatched"] += 1
            return
        if type(pending) is _Relay:
            self.timers.cancel(("relay", msg.seq))
            self._send_encoded(pending.reply_to, [encode_ack(pending.origin_seq)])
            return
        assert type(pending) is _Probe
        self.timers.cancel(("probe", msg.seq))
        if self.awareness.score:
            self.awareness.apply(-1)
        if self._unverified:
            target = self.members.get(pending.target)
            if target is not None and not target.verified:
                self._admission.verify(target)
        self._isolation.probe_ok()
        if via_stream:
            self.stats["probe_ok_only_over_stream"] += 1  # UDP may be blocked or lossy
        elif addr == pending.addr:  # direct UDP answer: a real round-trip time
            self._ping.notify_ping_complete(pending.target, now - pending.sent, msg.payload, now)

    def handle_stream_ping(self, msg: Ping) -> bytes | None:
        """A probe over a stream (memberlist's TCP fallback): answer with an ack frame."""
        if msg.target != self.name:
            self.stats["drop_wrong_target"] += 1
            return None
        return encode_stream(Ack(msg.seq))

    def stream_ack(self, msg: Ack, addr: Address, now: float) -> None:
        self._on_ack(msg, addr, now, via_stream=True)

    def _on_nack(self, msg: Nack) -> None:
        pending = self._pending.get(msg.seq)
        if type(pending) is _Probe:
            pending.nacks += 1

    # -- state transitions (memberlist's aliveNode / suspectNode / deadNode) ------------------

    def _on_alive(self, a: Alive, now: float, *, relay: bool = True) -> None:
        m = self.members.get(a.node)
        if m is not None and a.incarnation <= m.incarnation and m.identity[1] == a.addr and m is not self._me:
            return  # old news (the common case while gossip spreads an update)
        if self._leaving and a.node == self.name:
            return
        if m is not None and not self._plausible(a.incarnation, m, now):
            return
        updates_addr = False
        if m is None:
            if a.node in self._reaped:
                del self._reaped[a.node]
            m = MemberRecord(a.node, a.addr, 0, _DEAD, now, a.meta, a.vsn)
            self._insert(m)
            self._admission.learned(m)
            old_state = _DEAD
            is_new = True
        else:
            is_new = False
            old_state = m.state
            if m.addr != a.addr:
                reclaim = self.config.dead_node_reclaim_time
                can_reclaim = reclaim > 0 and now - m.state_change > reclaim
                if m.state == _LEFT or (m.state == _DEAD and can_reclaim):
                    updates_addr = True
                else:
                    self.stats["alive_conflict"] += 1
                    return
        is_local = a.node == self.name
        if a.incarnation <= m.incarnation and not is_local and not updates_addr and not is_new:
            return
        if is_local and a.incarnation < m.incarnation:
            return
        if not is_local:
            self._drop_suspicion(a.node)
        if is_local:
            if a.incarnation == m.incarnation and a.meta == m.meta and a.vsn == m.vsn:
                return
            self._refute(a.incarnation, now)
            return
        if relay:
            self.queue.queue(a.node, encode_message(a))
        old_meta, old_addr = m.meta, m.addr
        m.incarnation = a.incarnation
        m.rebind(a.addr, a.meta, a.vsn)
        if old_addr != a.addr:
            if self._by_addr.get(old_addr) is m:
                del self._by_addr[old_addr]
            self._by_addr[a.addr] = m
        self._failed.discard(m.name)
        if m.state != _ALIVE:
            m.state = _ALIVE
            m.state_change = now
        if old_state >= _DEAD:
            self._emit(MemberJoined(m.snapshot()), now)
        elif old_state == _SUSPECT or old_meta != m.meta or old_addr != m.addr:
            self._emit(MemberUpdated(m.snapshot()), now)
        if is_new:
            if self._news_at > self._catch_up_at and now - self._news_at > self._news_gap:
                self._news_gap = now - self._news_at
            self._news_at = now
            self._evict_unverified(now)

    def _on_suspect(self, s: Suspect, now: float) -> None:
        m = self.members.get(s.node)
        if m is None or not self._plausible(s.incarnation, m, now):
            return
        if s.incarnation < m.incarnation:
            if m is self._me:
                self._rebut(s.sender, now)
            return
        timer = self._suspicions.get(s.node)
        if timer is not None:
            if s.incarnation == timer.incarnation and timer.confirm(s.sender):
                self.queue.queue(s.node, encode_message(s))
                self.timers.set(("suspicion", s.node), timer.deadline)
            return
        if m.state != _ALIVE:
            return
        if s.node == self.name:
            self._refute(s.incarnation, now)
            return
        self.queue.queue(s.node, encode_message(s))
        m.incarnation = s.incarnation
        m.state = _SUSPECT
        m.state_change = now
        n = len(self.members)
        k = self.config.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        min_t = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval)
        max_t = self.config.suspicion_max_timeout_mult * min_t
        timer = Suspicion(s.sender, k, min_t, max_t, now, s.incarnation)
        self._suspicions[s.node] = timer
        self.timers.set(("suspicion", s.node), timer.deadline)
        self.stats["suspicions"] += 1
        self._emit(MemberSuspected(m.snapshot()), now)

    def _on_dead(self, d: Dead, now: float) -> None:
        m = self.members.get(d.node)
        if m is None or not self._plausible(d.incarnation, m, now):
            return
        if d.incarnation < m.incarnation:
            if m is self._me and d.sender != self.name:
                self._rebut(d.sender, now)
            return
        self._drop_suspicion(d.node)
        if m.dead_or_left:
            return
        if d.node == self.name:
            if not self._leaving:
                self._refute(d.incarnation, now)
                return
            self.queue.queue(d.node, encode_message(d), self._leave_transmitted)
        else:
            self.queue.queue(d.node, encode_message(d))
        m.incarnation = d.incarnation
        m.state = _LEFT if d.node == d.sender else _DEAD
        m.state_change = now
        if m.state == _DEAD and m is not self._me:
            self._failed.add(m.name)
        if d.node != self.name:
            self._emit((MemberLeft if m.state == _LEFT else MemberFailed)(m.snapshot()), now)

    def _drop_suspicion(self, name: str) -> None:
        if self._suspicions.pop(name, None) is not None:
            self.timers.cancel(("suspicion", name))

    def _rebut(self, accuser: str, now: float) -> None:
        """An accusation we already refuted came again: our refutation may have been lost on
        the way to the accuser, so tell it directly (at most once per probe interval each)."""
        if self._leaving:
            return
        target = self.members.get(accuser)
        last = self._rebutted.get(accuser)
        if (
            target is None
            or target is self._me
            or (last is not None and now - last < self.config.probe_interval)
        ):
            return
        if len(self._rebutted) > 1024:
            self._rebutted.clear()
        self._rebutted[accuser] = now
        me = self._me
        self.stats["rebuttals"] += 1
        self.send(target.addr, [Alive(me.incarnation, me.name, me.addr, me.meta, me.vsn)])

    def _refute(self, accused_incarnation: int, now: float) -> None:
        new = inc.refutation(self._me.incarnation, accused_incarnation)
        if new is None:  # our numbers are exhausted: the claim stands; start a new life
            self.stats["incarnation_exhausted"] += 1
            self._me.incarnation = inc.NEW_LIFE
            self._rejoin_now(now)
            return
        self._me.incarnation = new
        self.awareness.apply(1)
        self.stats["refutations"] += 1
        self._broadcast_alive()

    def _plausible(self, claimed: int, m: MemberRecord, now: float) -> bool:
        """Whether a claim about `m` at incarnation `claimed` may be applied (else counted)."""
        if m is self._me:
            if inc.plausible_self_claim(claimed, m.incarnation):
                return True
            self.stats["drop_implausible_self_claim"] += 1
            self._rejoin_now(now)  # some peer may hold it: we cannot refute, we can only rejoin
            return False
        if inc.plausible_peer_claim(claimed, m.incarnation):
            return True
        self.stats["drop_implausible_incarnation"] += 1
        return False

    def _rejoin_now(self, now: float) -> None:
        """We are not heard (see `isolation`): a join push-pull with seeds and a few members."""
        if self._leaving or not self._isolation.may_rejoin(now, self.config.rejoin_interval):
            return
        self.stats["isolation_rejoins"] += 1
        self._quiet_syncs = False
        known = [m.addr for m in self.members.values() if m is not self._me and m.state != _LEFT]
        chosen = self._seeds + self.rng.sample(known, min(REJOIN_FANOUT, len(known)))
        for addr in dict.fromkeys(chosen):
            if addr != self.addr:
                self._open_push_pull(addr, True, now)

    def _live_verified(self) -> int:
        return sum(1 for m in self.members.values() if m.verified and m.state <= _SUSPECT) - 1

    def _evict_unverified(self, now: float) -> None:
        """Beyond the cap of unverified members, the oldest are reported failed and forgotten."""
        for m in self._admission.overflow(self.members):
            self.stats["unverified_evicted"] += 1
            self._drop_suspicion(m.name)
            self.queue.drop(m.name)
            was_live = m.state <= _SUSPECT
            m.state, m.state_change = _DEAD, now
            del self.members[m.name]
            if self._by_addr.get(m.addr) is m:
                del self._by_addr[m.addr]
            self._failed.discard(m.name)
            self._ping.forget(m.name)
            if was_live:
                self._emit(MemberFailed(m.snapshot()), now)

    def _broadcast_alive(self) -> None:
        me = self._me
        self.queue.queue(self.name, encode_message(Alive(me.incarnation, me.name, me.addr, me.meta, me.vsn)))

    def _suspicion_expired(self, name: str, now: float) -> None:
        timer = self._suspicions.pop(name, None)
        m = self.members.get(name)
        if timer is None or m is None or m.state != _SUSPECT:
            return
        self._on_dead(Dead(m.incarnation, name, self.name), now)

    # -- push-pull -----------------------------------------------------------------------

    def handle_push_pull(self, remote: PushPull, addr: Address, now: float) -> bytes:
        """Server side: merge the peer's state, answer with ours (after the merge)."""
        self.merge_remote_state(remote, now)
        self._verify_introduced(now)
        return self._push_pull_frame(False, now)

    def push_pull_reply(self, remote: PushPull, addr: Address, now: float, *, kind: str) -> None:
        """Client side: merge the reply to a `kind` exchange we opened to `addr` ("join"
        schedules the post-join syncs; a newcomer's join and sync replies are not gossiped
        on, see the rules)."""
        join = kind == "join"
        self._steered.pop(addr, None)
        if join and not self._knows_others():
            self._quiet_syncs = True
            relay = False
        else:
            relay = not (kind in ("join_sync", "catch_up") and self._quiet_syncs)
        refutations = self.stats["refutations"]
        self.merge_remote_state(remote, now, relay=relay)
        self._admission.vouched(remote.members, self.members, self._by_addr.get(addr), addr in self._seeds)
        self._verify_introduced(now)
        if join:
            name = self.name
            listed = sum(1 for r in remote.members if r.state <= _SUSPECT and r.name != name)
            self._joined_running = self._joined_running or listed > 1
            self.joined(addr, now)
        if self.stats["refutations"] != refutations:
            # the peer believed us suspect or dead: tell it directly, it may not hear gossip
            me = self._me
            self.send(addr, [Alive(me.incarnation, me.name, me.addr, me.meta, me.vsn)])

    def _verify_introduced(self, now: float) -> None:
        """Probe at once what the exchange just merged introduced (see `admission`)."""
        if not self._leaving:
            for m in self._admission.introduced(self.members, now):
                self._send_probe(m, now, now + self._probe_interval(), verifying=True)

    def _knows_others(self) -> bool:
        """Some member besides us is alive or suspect."""
        me = self._me
        return any(m.state <= _SUSPECT and m is not me for m in self.members.values())

    def push_pull_failed(self, addr: Address, now: float) -> None:
        self.stats["push_pull_failed"] += 1
        kind = self._steered.pop(addr, None)
        if kind is not None:  # a steered exchange failed (a forged member?): a random one instead
            self._push_pull_random(now, kind)

    def merge_remote_state(self, remote: PushPull, now: float, *, relay: bool = True) -> None:
        members, me, admission = self.members, self._me, self._admission
        records = remote.members
        refused = admission.refused(records, members, self.stats, self.rng)
        for i, r in enumerate(records):
            if refused and i in refused:
                continue
            m = members.get(r.name)
            if m is None:
                if r.state == _ALIVE:
                    admission.introduce(r.name)
            elif (
                r.incarnation <= m.incarnation
                and r.state == _ALIVE
                and m.identity[1] == r.addr
                and m is not me
            ):
                continue  # nothing new: the common case of anti-entropy
            self._merge_member(r, m, now, relay)
        if remote.user:
            self._state.merge_remote_state(remote.user, remote.join, now)

    def _merge_member(self, r: MemberState, m: MemberRecord | None, now: float, relay: bool) -> None:
        """One member of a push-pull that may be news (`m`: our record of it, if any)."""
        if r.state == _ALIVE:
            self._on_alive(Alive(r.incarnation, r.name, r.addr, r.meta, r.vsn), now, relay=relay)
        elif r.state == _LEFT:
            self._on_dead(Dead(r.incarnation, r.name, r.name), now)
        elif m is not None or r.name == self.name:
            # dead or suspect elsewhere: suspect it here, never declare it dead outright
            self._on_suspect(Suspect(r.incarnation, r.name, self.name), now)

    # -- timers --------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        for key in self.timers.pop_due(now):
            assert isinstance(key, tuple)
            kind = key[0]
            if kind == "probe":
                if len(key) == 1:
                    self._probe(now)
                else:
                    self._probe_timer(key[1], now)
            elif kind == "relay":
                self._relay_timeout(key[1])
            elif kind == "suspicion":
                self._suspicion_expired(key[1], now)
            elif kind == "gossip":
                self._gossip(now)
            elif kind == "push_pull":
                self._periodic_push_pull(now)
            elif kind == "join_sync":
                self._join_sync(key[1], now)
            elif kind == "catch_up":
                self._catch_up(now)
            elif kind == "rejoin":
                self._rejoin(now)
            elif kind == "leave":
                self.leave_done = True

    def _probe_interval(self) -> float:
        """The probe interval stretched by our health score (as is, while healthy)."""
        awareness = self.awareness
        interval = self._probe_period
        return awareness.scale(interval) if awareness.score else interval

    def _probe(self, now: float) -> None:
        deadline = now + self._probe_interval()  # the next tick, and this one's probes' deadline
        self.timers.set(_PROBE_TICK, deadline)
        if self._leaving:
            return
        if self._unverified:
            unverified = self._admission.next_to_verify(
                self.members, now, VERIFY_RETRY * self._probe_period, self.rng
            )
            if unverified is not None:
                self._send_probe(unverified, now, deadline, verifying=True)
        target = self._next_probe_target(now)
        if target is not None:
            self._send_probe(target, now, deadline, verifying=False)

    def _send_probe(self, target: MemberRecord, now: float, deadline: float, *, verifying: bool) -> None:
        """Probe `target` now; it fails at `deadline` (a probe interval on, scaled by health)."""
        name = target.name
        seq = self._probe_seq(name)
        addr = target.identity[1]
        self._pending[seq] = _Probe(name, addr, target.incarnation, now, deadline, verifying)
        parts = [encode_ping(seq, name, self.name)]
        if target.state == _SUSPECT:  # buddy system: let it refute at once
            parts.append(encode_message(Suspect(target.incarnation, name, self.name)))
        self._send_encoded(addr, parts)
        self.timers.set(("probe", seq), now + self._probe_wait)

    def _next_probe_target(self, now: float) -> MemberRecord | None:
        checked = 0
        members, me, order, index = self.members, self._me, self._order, self._probe_index
        while checked < len(order):
            if index >= len(order):
                self._reset_order(now)
                order, index = self._order, 0
                continue
            m = members.get(order[index])
            index += 1
            checked += 1
            if m is None or m is me or m.state >= _DEAD or not m.verified:
                continue  # unverified members have a round of their own (see _probe)
            self._probe_index = index
            return m
        self._probe_index = index
        return None

    def _reset_order(self, now: float) -> None:
        """At the wrap: forget long-dead members, reshuffle the probe order."""
        reap_after = self.config.effective_dead_reap_time
        for name in [
            n for n, m in self.members.items() if m.dead_or_left and now - m.state_change > reap_after
        ]:
            m = self.members.pop(name)
            self._ping.forget(name)
            self._failed.discard(name)
            if self._by_addr.get(m.addr) is m:
                del self._by_addr[m.addr]
            if m.state == _DEAD:
                self._reaped[name] = (m.addr, now)
            self.queue.drop(name)
        self._order = list(self.members)
        self.rng.shuffle(self._order)

    def _insert(self, m: MemberRecord) -> None:
        """Add a member at a random position of the probe order (memberlist does the same)."""
        self.members[m.name] = m
        self._by_addr[m.addr] = m
        pos = int(self.rng.random() * (len(self._order) + 1))
        self._order.insert(pos, m.name)
        if pos < self._probe_index:
            self._probe_index += 1

    def _probe_timer(self, seq: int, now: float) -> None:
        probe = self._pending.get(seq)
        if type(probe) is not _Probe:
            return
        if probe.timed_out:
            self._probe_deadline(seq, now)
            return
        probe.timed_out = True
        self._probe_timeout(probe, seq, now)
        if probe.deadline <= now:
            self._probe_deadline(seq, now)
        else:
            self.timers.set(("probe", seq), probe.deadline)

    def _probe_timeout(self, probe: _Probe, seq: int, now: float) -> None:
        helpers = self._choose(
            self.config.indirect_checks,
            lambda m: m.state == _ALIVE and m.name != probe.target,
            biased=True,
        )
        for helper in helpers:
            self.send(helper.addr, [IndirectPing(seq, probe.target, probe.addr, self.name, True)])
        probe.expected_nacks = len(helpers)
        if self.config.tcp_fallback_probe:
            self.streams.append((probe.addr, encode_stream(Ping(seq, probe.target, self.name)), "ping"))

    def _probe_deadline(self, seq: int, now: float) -> None:
        probe = self._pending.pop(seq, None)
        if type(probe) is not _Probe:
            return
        if probe.verifying:  # a member we only heard of: its failure says nothing about us
            self.stats["verification_probes_failed"] += 1
        else:
            if probe.expected_nacks > 0:
                self.awareness.apply(max(0, probe.expected_nacks - probe.nacks))
            else:
                self.awareness.apply(1)
            self.stats["probes_failed"] += 1
            if self._isolation.probe_failed(probe.target, self._live_verified):
                self._rejoin_now(now)
        self._on_suspect(Suspect(probe.incarnation, probe.target, self.name), now)

    def _relay_timeout(self, seq: int) -> None:
        relay = self._pending.pop(seq, None)
        if type(relay) is _Relay and relay.nack:
            self.send(relay.reply_to, [Nack(relay.origin_seq)])

    def _has_broadcasts(self) -> bool:
        if any(self._queued):
            return True
        for q in self._waking_opaque:  # noqa: SIM110 (no generator: asked after every input)
            if len(q):
                return True
        return False

    def wake_gossip(self, now: float) -> None:
        """Re-arm the idle gossip tick (on its original phase) once there is something to send.

        The owner calls this after every input; an idle node thus costs no timer events.
        """
        if self._gossip_idle and self._has_broadcasts():
            self._gossip_idle = False
            interval = self.config.gossip_interval
            self.timers.set(_GOSSIP_TICK, now + interval - ((now - self._gossip_phase) % interval))

    def _gossip(self, now: float) -> None:
        cfg = self.config
        if not self._has_broadcasts():
            self._gossip_idle = True
            return
        self.timers.set(_GOSSIP_TICK, now + cfg.gossip_interval)
        dead_window = cfg.gossip_to_the_dead_time
        targets = self._choose(
            cfg.gossip_nodes,
            lambda m: m.state <= _SUSPECT or (m.state == _DEAD and now - m.state_change <= dead_window),
            biased=True,
        )
        for target in targets:
            parts = self._broadcasts(self._packet_budget - _PACKET_HEADER)
            if not parts:
                return
            self.outbox.append((target.addr, pack_packet(parts)))

    def _periodic_push_pull(self, now: float) -> None:
        self._next_push_pull(now)
        if not self._leaving:
            self._push_pull_random(now)

    def _next_push_pull(self, now: float) -> None:
        """The next periodic push-pull: one scaled interval on, jittered (see the rules)."""
        interval = push_pull_scale(self.config.push_pull_interval, len(self.members))
        jitter = self.rng.uniform(1.0 - PUSH_PULL_JITTER, 1.0 + PUSH_PULL_JITTER)
        self.timers.set(_PUSH_PULL_TICK, now + interval * jitter)

    def _join_sync(self, index: int, now: float) -> None:
        """A post-join sync: with a random member; the last one, if we joined a running
        cluster, with the unverified member we learned of last, if we hold any (see the rules)."""
        latest = None
        if self._joined_running and index == len(self.config.join_sync_delays) - 1:
            latest = self._admission.latest(self.members)
        if latest is None:
            self._push_pull_random(now, "join_sync")
            return
        self.stats["join_sync_to_latest"] += 1
        self._steered[latest.addr] = "join_sync"
        self._open_push_pull(latest.addr, False, now, "join_sync")

    def _catch_up(self, now: float) -> None:
        """The catch-up tick, after a join into a running cluster (see the rules): once a
        quiet period has passed since the last new member we learned (the tick is re-armed
        for its end, nothing polls), a push-pull with one of the members we learned of last
        (it stands for the periodic one). A quiet period after it: no news since it opened
        means it brought nothing new. After the fast ones the quiet period is the
        backstop's, and the catch-ups stop at the first that brought nothing new or, when
        the fast ones ended so, at a backstop period without news."""
        if self._leaving:
            return
        mark, backstop = self._catch_up_mark, BACKSTOP_QUIET * self.config.probe_interval
        if mark is not None:
            self._catch_up_mark = None
            if self._news_at <= mark:  # nothing new since: we hold what the cluster holds
                if self._catch_up_quiet >= backstop:
                    return
                # the fast catch-ups are done; but news within a backstop period means the
                # burst goes on, and we may miss a later joiner: look again then
                self._catch_up_quiet, self._catch_up_mark = backstop, now
                self._catch_up_left = min(self._catch_up_left, BACKSTOP_MAX)
                self.timers.set(_CATCH_UP_TICK, now + self._quiet_period())
                return
        if self._catch_up_left <= 0:
            return
        if self._catch_up_left <= BACKSTOP_MAX:
            self._catch_up_quiet = backstop
        due = self._news_at + self._quiet_period()
        if now < due:
            self.timers.set(_CATCH_UP_TICK, due)
            return
        self._catch_up_left -= 1
        self._catch_up_mark = self._catch_up_at = now
        self.stats["catch_up_push_pulls"] += 1
        self._catch_up_with_latest(now)
        # it stands for the periodic push-pull: the next one is due a (jittered) interval on
        self._next_push_pull(now)
        self.timers.set(_CATCH_UP_TICK, now + self._quiet_period())

    def _quiet_period(self) -> float:
        """The silence that ends a burst for us: the next catch-up's quiet period, or
        CATCH_UP_GAP_MULT times the longest gap between news we saw since our join."""
        return max(self._catch_up_quiet, CATCH_UP_GAP_MULT * self._news_gap)

    def _catch_up_with_latest(self, now: float) -> None:
        """A catch-up push-pull with one of the CATCH_UP_SPREAD live members we learned of
        last (`members` keeps the order we learned them in), drawn at random: most likely
        the last joiners of a burst, whose join answers listed every member the seed had
        verified; a random member if there is none."""
        me, members = self._me, self.members
        latest: list[MemberRecord] = []
        for name in reversed(members):
            m = members[name]
            if m.state == _ALIVE and m is not me:
                latest.append(m)
                if len(latest) == CATCH_UP_SPREAD:
                    break
        if not latest:
            self._push_pull_random(now, "catch_up")
            return
        target = latest[0] if len(latest) == 1 else self.rng.choice(latest)
        self._steered[target.addr] = "catch_up"
        self._open_push_pull(target.addr, False, now, "catch_up")

    def _push_pull_random(self, now: float, kind: str = "push_pull") -> None:
        peers = self._choose(1, lambda m: m.state == _ALIVE, biased=True)
        if peers:
            self._open_push_pull(peers[0].addr, False, now, kind)

    def _rejoin(self, now: float) -> None:
        """Heal splits: re-contact unreachable seeds and remembered failed members.

        Each tick contacts the _REJOIN_RECENT most recently failed members (the other side of
        a fresh split) and _REJOIN_RANDOM others at random, so members that are gone for good
        cannot crowd out the ones that merely became unreachable.
        """
        cfg = self.config
        self.timers.set(_REJOIN_TICK, now + cfg.rejoin_interval * (0.5 + self.rng.random()))
        if self._leaving:
            return
        for name, (_, since) in list(self._reaped.items()):
            if now - since > cfg.rejoin_window:
                del self._reaped[name]
        failed = [(since, addr) for addr, since in self._reaped.values()]
        failed.extend(
            (self.members[name].state_change, self.members[name].addr) for name in sorted(self._failed)
        )
        failed.sort(reverse=True)
        chosen = [addr for _, addr in failed[:_REJOIN_RECENT]]
        rest = [addr for _, addr in failed[_REJOIN_RECENT:]]
        chosen.extend(self.rng.sample(rest, min(_REJOIN_RANDOM, len(rest))))
        missing = []
        for addr in self._seeds:
            m = self._by_addr.get(addr)
            if addr != self.addr and (m is None or m.state > _SUSPECT):
                missing.append(addr)
        if missing:
            chosen.append(self.rng.choice(missing))
        for addr in dict.fromkeys(chosen):
            self._open_push_pull(addr, False, now)

    # -- peer choice -----------------------------------------------------------------------

    def choose_members(self, k: int, accept: Callable[[MemberRecord], bool]) -> list[MemberRecord]:
        """Up to k members `accept` admits, never ourselves, topology-biased (layers above)."""
        return self._choose(k, accept, biased=True)

    def _choose(
        self, k: int, accept: Callable[[MemberRecord], bool], *, biased: bool = False
    ) -> list[MemberRecord]:
        """Up to k members: verified ones first, unverified ones only to fill (`admission`)."""
        picked = self._random_members(k, verified_only(accept), biased=biased)
        if len(picked) < k:
            picked += self._random_members(k - len(picked), unverified_only(accept), biased=biased)
        return picked

    def _random_members(
        self, k: int, accept: Callable[[MemberRecord], bool], *, biased: bool = False
    ) -> list[MemberRecord]:
        """Up to k distinct random members (never ourselves) that `accept` admits.

        `biased` choices go through the `selection` delegate (topology) when there is one;
        otherwise random probing of the probe order first (O(k) in a large healthy cluster)
        and a full scan only when few members qualify, as memberlist's kRandomNodes.
        """
        if k <= 0:
            return []
        order, members, rng = self._order, self.members, self.rng
        if biased and self._selection is not None:
            names = self._selection.choose(order, k, _Ineligible(members, self._me, accept))
            return [members[name] for name in names]
        n = len(order)
        picked: dict[str, MemberRecord] = {}
        for _ in range(3 * k + 3):
            if len(picked) >= k or n == 0:
                break
            m = members.get(order[int(rng.random() * n)])
            if m is not None and m is not self._me and m.name not in picked and accept(m):
                picked[m.name] = m
        if len(picked) < k:
            pool = [m for m in members.values() if m is not self._me and m.name not in picked and accept(m)]
            need = min(k - len(picked), len(pool))
            for m in rng.sample(pool, need):
                picked[m.name] = m
        return list(picked.values())


class _Ineligible:
    """The names a peer choice must skip (a lazy container: evaluated only for names drawn)."""

    __slots__ = ("_accept", "_me", "_members")

    def __init__(
        self, members: dict[str, MemberRecord], me: MemberRecord, accept: Callable[[MemberRecord], bool]
    ) -> None:
        self._members = members
        self._me = me
        self._accept = accept

    def __contains__(self, name: object) -> bool:
        m = self._members.get(name) if isinstance(name, str) else None
        return m is None or m is self._me or not self._accept(m)
