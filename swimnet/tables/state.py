"""NetworkDB-style replicated tables as a pure state machine: the one place of every transition.

Rules:
- Scope: entries are stored only for networks this node has joined, and only from owners
  attached (not leaving) to that network; when an owner's attachment turns leaving its
  entries there are dropped (no tombstones); when this node leaves a network it drops all
  of the network's entries, its own included, so a non-member holds nothing of a network.
- Versions: `entry.wins` (greater (ltime, owner, deleted, value)). A local write takes
  `table_clock.increment()`, past every time witnessed; every received event is witnessed.
- Own data echoed back newer than what we hold and untrue (a copy that missed our leave, a
  previous life's, one whose tombstone was reaped) is refuted: our live value is re-issued
  at a fresh time, anything else is retracted by a tombstone at the echo's own time, which
  beats the echo and nothing that beats it. (NetworkDB instead keeps leave-time tombstones
  at ltime+1, which on rejoin can delete writes others made meanwhile.) A false claim about
  our own attachment is re-asserted at a fresh time.
- Failure: a failed member's entries are hidden (invisible, out of the digest, not synced)
  until it is alive again or `reap_interval` passes; then they and its attachments go and
  the node counts as departed. A member that left is treated the same for a short grace
  (`left_grace_interval`): a leave can be forged, and if the member refutes it, its entries
  are back at once. Departed nodes' late events are refused for `node_reap_interval`.
- A version we hide or refuse still retires what it beats, so members agree on what a key
  shows while its last writer is failed, not only after the reap: a peer that syncs us a
  version older than one we hold hidden is sent the hidden one (`hidden_winner`: digests
  leave it out, so comparing them never would); a version refused because its owner
  departed drops the older version it beats, without a tombstone.
- Peer input never raises: what is invalid or out of scope is counted in `stats` and dropped.
  Every check comes before anything is stored or witnessed: clocks only advance from
  records in scope and applied (or, as above, a departed owner's that retired a version),
  and a time more than `clock.LTIME_WINDOW` ahead of ours is refused
  (`table_implausible_ltime`, `attachment_implausible_ltime`); entries are taken
  only from owners membership knows (`table_owner_unknown`), within the caps of
  `TablesConfig` (`table_owner_cap`, `table_network_cap`); a peer's residual reap time is
  never longer than ours (`reap_interval`, `network_reap_interval`).
- Every state-changing call returns the `TableChange`s it caused, in order.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable

from swimnet.errors import DecodeError, LocalProtocolError
from swimnet.membership.queue import BroadcastQueue
from swimnet.tables import conversation
from swimnet.tables.attachments import Attachment, AttachmentTable
from swimnet.tables.changes import ChangeKind, TableChange
from swimnet.tables.clock import LamportClock
from swimnet.tables.config import TablesConfig
from swimnet.tables.deadlines import Deadlines, Subject
from swimnet.tables.digest import Digest
from swimnet.tables.entry import Entry, make_entry, wins
from swimnet.tables.gossip import NetworkQueues
from swimnet.tables.store import NetworkStore
from swimnet.tables.sync import residual
from swimnet.wire.codec import decode_stream, encode_message, encode_stream
from swimnet.wire.messages import WireMessage
from swimnet.wire.tables import (
    MAX_ATTACHMENTS,
    MAX_KEY,
    MAX_NETWORK,
    MAX_TABLE,
    MAX_VALUE,
    AttachmentRecord,
    AttachmentState,
    EntryRecord,
    NetworkEvent,
    SyncReply,
    SyncRequest,
    TableEvent,
)

_EMPTY = NetworkStore()


def _check_text(value: object, what: str, max_bytes: int) -> None:
    if type(value) is not str or not value or len(value.encode()) > max_bytes:
        raise LocalProtocolError(f"{what}: expected a non-empty string of at most {max_bytes} bytes")


class TableState:
    """The replicated tables as one node holds them."""

    def __init__(
        self,
        name: str,
        config: TablesConfig | None = None,
        rng: random.Random | None = None,
        *,
        membership_gated: bool = False,
        stats: Counter[str] | None = None,
    ) -> None:
        self.name = name
        self.config = config if config is not None else TablesConfig()
        self.rng = rng if rng is not None else random.Random(name)
        self.network_clock = LamportClock()
        self.table_clock = LamportClock()
        self.attachments = AttachmentTable()
        self.network_queue = BroadcastQueue(self.config.retransmit_mult, self.config.queue_max_len)
        """NetworkEvents to piggyback on membership gossip (retransmits sized by cluster)."""
        self.stats: Counter[str] = stats if stats is not None else Counter()
        """Counters by reason (the engine passes its own: one counter per node)."""
        self._queues: dict[str, NetworkQueues] = {}  # the joined networks
        self._stores: dict[str, NetworkStore] = {}
        self._failed: dict[str, float] = {}  # name -> when its hidden entries are reaped
        self._departed: dict[str, float] = {}  # name -> until when its events are refused
        self._deadlines = Deadlines()
        self._gated = membership_gated
        self._members: dict[str, None] = {}
        """With membership_gated: the members membership reported alive (a dict used as a set:
        a third of a set's memory per name, and every node holds every name). Entries of any other
        owner are refused (a peer could otherwise fill us with entries of owners that do not
        exist); attachments of any other node are held hidden, as a failed node's, until
        membership reports it alive; reaped otherwise."""
        self._strangers: set[str] = set()
        """Nodes hidden only because membership never reported them (not members that failed)."""

    # -- queries ------------------------------------------------------------------------

    def joined_networks(self) -> list[str]:
        return sorted(self._queues)

    def is_joined(self, network: str) -> bool:
        return network in self._queues

    def get(self, network: str, table: str, key: str) -> bytes | None:
        e = self._stores.get(network, _EMPTY).get(table, key)
        return e.value if e is not None and self._visible(e) else None

    def items(self, network: str, table: str) -> dict[str, bytes]:
        rows = self._stores.get(network, _EMPTY).rows(table)
        return {k: e.value for k, e in sorted(rows.items()) if self._visible(e)}

    def snapshot(self, network: str, table: str) -> list[TableChange]:
        """CREATED for every visible entry (own included; filter on `owner`), for a new watcher."""
        rows = self._stores.get(network, _EMPTY).rows(table)
        return [
            self._as_change(ChangeKind.CREATED, network, e)
            for _, e in sorted(rows.items())
            if self._visible(e)
        ]

    def live_entries(self, network: str) -> dict[tuple[str, str], tuple[bytes, str]]:
        """The visible entries of a network: (table, key) -> (value, owner)."""
        return {
            (e.table, e.key): (e.value, e.owner)
            for e in self._stores.get(network, _EMPTY).entries()
            if self._visible(e)
        }

    def entries(self, network: str) -> list[Entry]:
        """Every stored version of a network (tombstones and hidden entries included)."""
        return list(self._stores.get(network, _EMPTY).entries())

    def digest(self, network: str) -> Digest:
        """The network's digest (read only)."""
        return self._stores.get(network, _EMPTY).digest

    def is_stranger(self, name: str) -> bool:
        """`name` is held failed only because membership never reported it (its attachment
        or entries came by gossip or sync first)."""
        return name in self._strangers

    def is_failed(self, name: str) -> bool:
        return name in self._failed

    def digest_hash(self, network: str) -> tuple[int, int]:
        """(syncable entry count, sum of their version hashes): equal on converged members."""
        d = self._stores.get(network, _EMPTY).digest
        return d.count, sum(d.top_sums) % 2**64

    def network_peers(self, network: str) -> list[str]:
        """Attached (not leaving, not failed) members of a network other than this node."""
        return [
            node
            for node, a in sorted(self.attachments.of_network(network).items())
            if not a.leaving and node != self.name and node not in self._failed
        ]

    def network_size(self, network: str) -> int:
        return len(self.network_peers(network)) + (1 if network in self._queues else 0)

    def queued(self, network: str) -> int:
        q = self._queues.get(network)
        return 0 if q is None else len(q)

    # -- local API ----------------------------------------------------------------------

    def join_network(self, network: str, now: float) -> list[TableChange]:
        """Attach this node to `network` (idempotent). Then sync with `network_peers(network)`."""
        _check_text(network, "network", MAX_NETWORK)
        if network in self._queues:
            return []
        self._set_own_attachment(network, leaving=False, now=now)  # may refuse: nothing stored yet
        self._queues[network] = NetworkQueues(self.config.retransmit_mult, self.config.queue_max_len)
        return []

    def leave_network(self, network: str, now: float) -> list[TableChange]:
        """Detach (idempotent) and drop every entry of the network, own ones included.

        Peers drop our entries when they see the leave; a copy that missed it is retracted
        when it comes back to us (see the module rules).
        """
        if network not in self._queues:
            return []
        self._set_own_attachment(network, leaving=True, now=now)  # may refuse: nothing changed yet
        del self._queues[network]
        changes: list[TableChange] = []
        for e in list(self._stores.get(network, _EMPTY).entries()):
            self._replace(network, e, None, changes)
        return changes

    def put(self, network: str, table: str, key: str, value: bytes, now: float) -> list[TableChange]:
        self._check_write(network, table, key)
        if type(value) is not bytes or len(value) > MAX_VALUE:
            raise LocalProtocolError(f"value: expected bytes of at most {MAX_VALUE}")
        full = self._room(network, self.name, False, self._stores.get(network, _EMPTY).get(table, key))
        if full is not None:
            raise LocalProtocolError(f"network {network!r}: the {full} entry limit is reached")
        changes: list[TableChange] = []
        self._write(network, table, key, value, False, now, changes)
        return changes

    def delete(self, network: str, table: str, key: str, now: float) -> list[TableChange]:
        """Tombstone a live entry (no-op if there is none)."""
        self._check_write(network, table, key)
        old = self._stores.get(network, _EMPTY).get(table, key)
        changes: list[TableChange] = []
        if old is not None and not old.deleted:
            self._write(network, table, key, old.value, True, now, changes)
        return changes

    def _check_write(self, network: str, table: str, key: str) -> None:
        if network not in self._queues:
            raise LocalProtocolError(f"network {network!r} is not joined")
        _check_text(table, "table", MAX_TABLE)
        _check_text(key, "key", MAX_KEY)

    # -- gossip -------------------------------------------------------------------------

    def network_payloads(self, budget: int, per_item_overhead: int, n_members: int) -> list[bytes]:
        """Encoded NetworkEvents for membership piggybacking (n_members: cluster size)."""
        return self.network_queue.take(budget, per_item_overhead, n_members)

    def gossip_payloads(self, network: str, budget: int, per_item_overhead: int) -> list[bytes]:
        """Encoded TableEvents for one gossip packet to peers of `network`, own events first."""
        q = self._queues.get(network)
        if q is None or not self.network_peers(network):
            return []
        return q.take(budget, per_item_overhead, self.network_size(network))

    def handle_gossip(self, message: WireMessage, now: float) -> list[TableChange]:
        """A NetworkEvent or TableEvent from a datagram; applied ones are relayed."""
        changes: list[TableChange] = []
        if isinstance(message, NetworkEvent):
            if self.merge_attachment(
                message.network, message.node, message.ltime, message.leaving, message.residual, now, changes
            ):
                self._queue_attachment(message.network, message.node, now)
        elif isinstance(message, TableEvent):
            m = message
            rec = EntryRecord(m.table, m.key, m.value, m.owner, m.ltime, m.deleted, m.residual)
            new = self.apply_record(m.network, rec, now, changes)
            if new is not None:
                self._queue_entry(m.network, new, now, own=False)
        else:
            self.stats["unexpected_message"] += 1
        return changes

    # -- push-pull user state -----------------------------------------------------------

    def encode_attachments(self, now: float) -> bytes:
        """Every known attachment of a node not failed, for the push-pull `user` bytes."""
        records = [
            self.attachment_record(net, node, a, now)
            for net, node, a in self.attachments.items()
            if node not in self._failed
        ]
        if len(records) > MAX_ATTACHMENTS:
            self.stats["attachments_truncated"] += 1
            records = records[:MAX_ATTACHMENTS]
        return encode_stream(AttachmentState(tuple(records)))

    def merge_attachments(self, data: bytes, now: float) -> list[TableChange]:
        """Merge a peer's push-pull `user` bytes (empty: a peer without tables)."""
        if not data:
            return []
        try:
            message = decode_stream(data)
        except DecodeError:
            self.stats["bad_attachment_state"] += 1
            return []
        if not isinstance(message, AttachmentState):
            self.stats["bad_attachment_state"] += 1
            return []
        changes: list[TableChange] = []
        for r in message.attachments:
            self.merge_attachment(r.network, r.node, r.ltime, r.leaving, r.residual, now, changes)
        return changes

    # -- anti-entropy -------------------------------------------------------------------

    def shared_networks(self, peer: str) -> list[str]:
        return [n for n in sorted(self._queues) if self.attachments.active(n, peer)]

    def anti_entropy_targets(self) -> list[tuple[str, list[str]]]:
        """For the periodic sync: one random peer per joined network, each covering every
        network it shares with us (so a network is synced once per period)."""
        plan: list[tuple[str, list[str]]] = []
        covered: set[str] = set()
        networks = sorted(self._queues)
        self.rng.shuffle(networks)
        for network in networks:
            peers = self.network_peers(network)
            if network in covered or not peers:
                continue
            peer = self.rng.choice(peers)
            shared = [n for n in self.shared_networks(peer) if n not in covered]
            covered.update(shared)
            plan.append((peer, shared))
        return plan

    def start_sync(self, peer: str, now: float, networks: Iterable[str] | None = None) -> SyncRequest | None:
        """First request of a sync conversation with `peer` (None: nothing to sync).

        `networks` defaults to every joined network `peer` is attached to."""
        nets = self.shared_networks(peer) if networks is None else [n for n in networks if n in self._queues]
        return conversation.start(self, list(dict.fromkeys(nets)), now)

    def handle_sync_request(self, message: WireMessage, now: float) -> tuple[SyncReply, list[TableChange]]:
        """Server side of one stream: the reply, and the changes the request caused."""
        return conversation.answer(self, message, now)

    def handle_sync_reply(
        self, message: WireMessage, now: float
    ) -> tuple[SyncRequest | None, list[TableChange]]:
        """Client side: apply a reply; returns the follow-up request (None: conversation over)."""
        return conversation.follow_up(self, message, now)

    # -- membership events --------------------------------------------------------------

    def member_alive(self, name: str, now: float) -> list[TableChange]:
        """Membership says `name` is alive: restore its hidden entries."""
        self._members[name] = None
        self._strangers.discard(name)
        self._departed.pop(name, None)
        changes: list[TableChange] = []
        if self._failed.pop(name, None) is None:
            return changes
        for network, store in self._stores.items():
            for e in store.owned_by(name):
                store.digest.add(e)
                if not e.deleted:
                    changes.append(self._as_change(ChangeKind.CREATED, network, e))
        return changes

    def member_failed(self, name: str, now: float) -> list[TableChange]:
        """Membership says `name` is dead without leaving: hide its entries until reap."""
        return self._hide(name, now + self.config.reap_interval)

    def member_left(self, name: str, now: float) -> list[TableChange]:
        """Membership says `name` left: its entries and attachments are hidden for a short
        grace (a forged leave is refuted by the member meanwhile), then dropped."""
        return self._hide(name, now + self.config.left_grace_interval)

    def _hide(self, name: str, reap_at: float) -> list[TableChange]:
        """Hide `name`'s entries until `reap_at` (or earlier, if already hidden longer)."""
        self._members.pop(name, None)
        self._strangers.discard(name)
        changes: list[TableChange] = []
        if name == self.name or name in self._departed:
            return changes
        hidden = self._failed.get(name)
        if hidden is None:
            for network, store in self._stores.items():
                for e in store.owned_by(name):
                    store.digest.remove(e)
                    if not e.deleted:
                        changes.append(self._as_change(ChangeKind.DELETED, network, e))
        elif hidden <= reap_at:
            return changes
        self._failed[name] = reap_at
        self._deadlines.push(reap_at, ("failed", name))
        return changes

    def _forget_node(self, name: str, changes: list[TableChange]) -> None:
        for network, store in list(self._stores.items()):
            for e in store.owned_by(name):
                self._replace(network, e, None, changes)
        self._failed.pop(name, None)
        self._strangers.discard(name)
        for network in self.attachments.networks_of(name):
            self.attachments.remove(network, name)

    # -- reaping ------------------------------------------------------------------------

    def reap(self, now: float) -> list[TableChange]:
        """Remove due tombstones, leaving attachments, failed nodes' entries, departed marks."""
        changes: list[TableChange] = []
        for when, subject in self._deadlines.pop_due(now):
            if not self._deadline_valid(when, subject):
                continue
            kind = subject[0]
            if kind == "entry":
                _, network, table, key = subject
                self._replace(network, self._stores[network].get(table, key), None, changes)
                self.stats["reaped_tombstones"] += 1
            elif kind == "attachment":
                _, network, node = subject
                self.attachments.remove(network, node)
            elif kind == "failed":
                name = subject[1]
                self._forget_node(name, changes)
                until = now + self.config.node_reap_interval
                self._departed[name] = until
                self._deadlines.push(until, ("departed", name))
                self.stats["reaped_nodes"] += 1
            else:
                del self._departed[subject[1]]
        return changes

    def next_deadline(self) -> float | None:
        """When `reap` next has something to do."""
        return self._deadlines.next(self._deadline_valid)

    def _deadline_valid(self, when: float, subject: Subject) -> bool:
        kind = subject[0]
        if kind == "entry":
            e = self._stores.get(subject[1], _EMPTY).get(subject[2], subject[3])
            return e is not None and e.deleted and e.reap_at == when
        if kind == "attachment":
            a = self.attachments.get(subject[1], subject[2])
            return a is not None and a.leaving and a.reap_at == when
        if kind == "failed":
            return self._failed.get(subject[1]) == when
        return self._departed.get(subject[1]) == when

    # -- transitions --------------------------------------------------------------------

    def _note_owner(self, owner: str, now: float) -> None:
        """With membership_gated: a node membership has not reported alive counts as failed
        (its attachments are held hidden)."""
        if not self._gated or owner == self.name or owner in self._members:
            return
        if owner in self._failed or owner in self._departed:
            return
        self.stats["table_owner_not_a_member"] += 1
        reap_at = now + self.config.reap_interval
        self._failed[owner] = reap_at
        self._strangers.add(owner)
        self._deadlines.push(reap_at, ("failed", owner))

    def _owner_known(self, owner: str) -> bool:
        """With membership_gated: entries are taken only from members membership reported
        (alive, suspect, or failed: the latter are held hidden), never from strangers."""
        if not self._gated or owner == self.name or owner in self._members:
            return True
        return owner in self._failed and owner not in self._strangers

    def _room(self, network: str, owner: str, deleted: bool, old: Entry | None) -> str | None:
        """Which cap (None: none) a version by `owner` replacing `old` would break."""
        cfg = self.config
        store = self._stores.get(network, _EMPTY)
        return store.has_room(owner, deleted, old, cfg.max_entries_per_owner, cfg.max_entries_per_network)

    def _visible(self, e: Entry) -> bool:
        return not e.deleted and e.owner not in self._failed

    def _as_change(self, kind: ChangeKind, network: str, e: Entry) -> TableChange:
        return TableChange(kind, network, e.table, e.key, e.value, e.owner)

    def _replace(
        self, network: str, old: Entry | None, new: Entry | None, changes: list[TableChange]
    ) -> None:
        """The one place entries are stored or removed; records the visible change."""
        store = self._stores.get(network)
        if store is None:
            store = self._stores[network] = NetworkStore()
        if old is not None:
            store.remove(old, old.owner not in self._failed)
        if new is not None:
            store.add(new, new.owner not in self._failed)
            if new.reap_at is not None:
                self._deadlines.push(new.reap_at, ("entry", network, new.table, new.key))
        if not store:
            del self._stores[network]
        before = old if old is not None and self._visible(old) else None
        after = new if new is not None and self._visible(new) else None
        if before is None and after is not None:
            changes.append(self._as_change(ChangeKind.CREATED, network, after))
        elif before is not None and after is None:
            changes.append(self._as_change(ChangeKind.DELETED, network, before))
        elif (
            before is not None
            and after is not None
            and (before.value, before.owner) != (after.value, after.owner)
        ):
            changes.append(self._as_change(ChangeKind.UPDATED, network, after))

    def _write(
        self,
        network: str,
        table: str,
        key: str,
        value: bytes,
        deleted: bool,
        now: float,
        changes: list[TableChange],
        ltime: int | None = None,
    ) -> None:
        """A new own version, broadcast if the network is joined. Its Lamport time is fresh
        (past everything witnessed) unless given: a retraction keeps the retracted time."""
        old = self._stores.get(network, _EMPTY).get(table, key)
        reap_at = now + self.config.reap_interval if deleted else None
        ltime = self.table_clock.increment() if ltime is None else ltime
        new = make_entry(table, key, value, self.name, ltime, deleted, reap_at)
        self._replace(network, old, new, changes)
        self._queue_entry(network, new, now, own=True)

    def apply_record(
        self, network: str, rec: EntryRecord, now: float, changes: list[TableChange]
    ) -> Entry | None:
        """Merge a received entry version (gossip or sync): scope checks, then the version
        order, then own-echo refutation, then the caps. Returns the stored entry if it was
        applied. The clock witnesses only records that pass the scope checks."""
        if network not in self._queues:
            self.stats["table_not_joined"] += 1
            return None
        if rec.owner in self._departed:
            self.stats["table_owner_departed"] += 1
            self._supersede(network, rec, changes)
            return None
        if not self._owner_known(rec.owner):
            self.stats["table_owner_unknown"] += 1
            return None
        if rec.owner != self.name and not self.attachments.active(network, rec.owner):
            self.stats["table_owner_not_attached"] += 1
            return None
        if not self.table_clock.plausible(rec.ltime):
            self.stats["table_implausible_ltime"] += 1
            return None
        self.table_clock.witness(rec.ltime)
        old = self._stores.get(network, _EMPTY).get(rec.table, rec.key)
        if not wins((rec.ltime, rec.owner, rec.deleted, rec.value), old):
            return None
        if rec.owner == self.name and not self._own_echo_agrees(rec, old):
            # our own entry, newer than what we hold and not true (a previous life's, or one
            # whose tombstone was reaped): if we hold a live value of ours it is re-issued at a
            # fresh time; otherwise the echo is retracted by a tombstone at its own time,
            # which beats it and nothing that beats it (no concurrent write is lost)
            self.stats["refuted_entry"] += 1
            if old is not None and old.owner == self.name and not old.deleted:
                self._write(network, rec.table, rec.key, old.value, False, now, changes)
            else:
                self._write(network, rec.table, rec.key, rec.value, True, now, changes, ltime=rec.ltime)
            return None
        if rec.deleted and old is None and rec.residual == 0:
            self.stats["table_expired_tombstone"] += 1
            return None
        full = self._room(network, rec.owner, rec.deleted, old)
        if full is not None:
            self.stats[f"table_{full}_cap"] += 1
            return None
        reap_at = now + min(rec.residual, self.config.reap_interval) if rec.deleted else None
        new = make_entry(rec.table, rec.key, rec.value, rec.owner, rec.ltime, rec.deleted, reap_at)
        self._replace(network, old, new, changes)
        return new

    def _supersede(self, network: str, rec: EntryRecord, changes: list[TableChange]) -> None:
        """A departed owner's version, though refused, still retires the older version it
        beats: that one is dropped (no tombstone), as it is on the nodes that took the newer
        version and hide it; else we would show it until they reap. The clock witnesses what
        we acted on, so our next write beats it. (Not for an owner membership has not
        reported yet: it may be a new member whose versions come by sync once it is.)"""
        old = self._stores.get(network, _EMPTY).get(rec.table, rec.key)
        if old is None or not wins((rec.ltime, rec.owner, rec.deleted, rec.value), old):
            return
        if not self.table_clock.plausible(rec.ltime):
            self.stats["table_implausible_ltime"] += 1
            return
        self.table_clock.witness(rec.ltime)
        self.stats["table_superseded"] += 1
        self._replace(network, old, None, changes)

    def hidden_winner(self, network: str, rec: EntryRecord) -> Entry | None:
        """Our stored version of `rec`'s key if it is hidden (its owner failed) and beats
        `rec` (None otherwise). A hidden version is out of the digest, so digest comparison
        never sends it; a peer that shows us an older version is sent it this way (else the
        peer would keep showing what the hidden version superseded until the reap)."""
        e = self._stores.get(network, _EMPTY).get(rec.table, rec.key)
        if e is None or e.owner not in self._failed:
            return None
        return e if e.order() > (rec.ltime, rec.owner, rec.deleted, rec.value) else None

    def relay(self, network: str, e: Entry, now: float) -> None:
        """Gossip a received entry version on (as a relay: after our own writes)."""
        self._queue_entry(network, e, now, own=False)

    def _own_echo_agrees(self, rec: EntryRecord, old: Entry | None) -> bool:
        if old is None or old.owner != self.name:
            return rec.deleted  # we hold no version of ours: only "deleted" is true
        return old.deleted == rec.deleted and (rec.deleted or old.value == rec.value)

    def _queue_entry(self, network: str, e: Entry, now: float, own: bool) -> None:
        q = self._queues.get(network)
        if q is None:
            return
        event = TableEvent(e.ltime, e.owner, network, e.table, e.key, e.value, e.deleted, residual(e, now))
        data = encode_message(event)
        key = (e.table, e.key)
        if len(data) > self.config.max_broadcast_size:
            self.stats["oversized_broadcast"] += 1
            q.drop(key)
        elif own:
            q.queue_own(key, data)
        else:
            q.queue_relay(key, data)

    def _set_own_attachment(self, network: str, leaving: bool, now: float) -> None:
        reap_at = now + self.config.network_reap_interval if leaving else None
        self.attachments.set(network, self.name, Attachment(self.network_clock.increment(), leaving, reap_at))
        if reap_at is not None:
            self._deadlines.push(reap_at, ("attachment", network, self.name))
        self._queue_attachment(network, self.name, now)

    def _queue_attachment(self, network: str, node: str, now: float) -> None:
        a = self.attachments.get(network, node)
        if a is not None:
            r = self.attachment_record(network, node, a, now)
            event = NetworkEvent(r.ltime, node, network, r.leaving, r.residual)
            self.network_queue.queue((node, network), encode_message(event))

    def attachment_record(self, network: str, node: str, a: Attachment, now: float) -> AttachmentRecord:
        """An attachment for the wire, with its residual reap time rounded down."""
        left = 0 if a.reap_at is None else max(0, min(2**32 - 1, int(a.reap_at - now)))
        return AttachmentRecord(node, network, a.ltime, a.leaving, left)

    def merge_attachment(
        self,
        network: str,
        node: str,
        ltime: int,
        leaving: bool,
        residual_s: int,
        now: float,
        changes: list[TableChange],
    ) -> bool:
        """Merge a received attachment version (gossip, push-pull or sync); True if it was
        applied (worth relaying). A newer leaving version drops the node's entries there.
        The clock witnesses only versions that are new and plausible."""
        if node in self._departed:
            self.stats["attachment_node_departed"] += 1
            return False
        if not self.network_clock.plausible(ltime):
            self.stats["attachment_implausible_ltime"] += 1
            return False
        cur = self.attachments.get(network, node)
        if cur is not None and (ltime, leaving) <= cur.order():
            return False
        self.network_clock.witness(ltime)
        self._note_owner(node, now)
        if node == self.name and leaving != (network not in self._queues):
            # someone holds a newer, false claim about us: re-assert the truth at a newer time
            self.stats["refuted_attachment"] += 1
            self._set_own_attachment(network, network not in self._queues, now)
            return False
        if leaving and cur is None and residual_s == 0:
            return False
        reap_at = now + min(residual_s, self.config.network_reap_interval) if leaving else None
        self.attachments.set(network, node, Attachment(ltime, leaving, reap_at))
        if reap_at is not None:
            self._deadlines.push(reap_at, ("attachment", network, node))
            for e in self._stores.get(network, _EMPTY).owned_by(node):
                self._replace(network, e, None, changes)
        return True
