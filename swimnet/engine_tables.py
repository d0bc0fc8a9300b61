"""The tables layer inside the engine: routes table messages, streams, push-pull state and
membership events to a `TableState`, and runs its timers (table gossip, anti-entropy,
reaping). Pure like the engine: time comes in as `now`, randomness from the engine's rng.

Rules:
- NetworkEvents piggyback on membership gossip (their queue is a membership extra queue);
  TableEvents go in packets of their own to peers of their network (topology-biased);
- a node that joins a network syncs at once with one member of it (the first sync carries
  everything, later ones compare digests), again shortly after, then every
  push_pull_interval with one random member per network (digest-first anti-entropy);
- membership events drive the table state: joined -> member_alive (restores hidden
  entries), failed -> member_failed (hides them), left -> member_left (hides them briefly);
- every TableChange (local or remote) is appended to the engine's events, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swimnet.membership.events import MemberEvent, MemberFailed, MemberJoined, MemberLeft
from swimnet.membership.member import MemberRecord
from swimnet.membership.timers import Timers
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.state import TableState
from swimnet.wire.codec import pack_packet
from swimnet.wire.messages import Address, State, WireMessage
from swimnet.wire.tables import NetworkEvent, SyncReply, SyncRequest, TableEvent

if TYPE_CHECKING:
    from swimnet.engine import Engine

_GOSSIP = ("tables_gossip",)
_ANTI_ENTROPY = ("tables_anti_entropy",)
_REAP = ("tables_reap",)
_JOIN_SYNC_DELAYS = (0.0, 2.0, 6.0)
"""After joining a network: sync with one member at once, then again (closes races with
members that were still learning our attachment)."""


class TablesLayer:
    def __init__(self, engine: Engine, now: float, config: TablesConfig | None = None) -> None:
        self.engine = engine
        self.state = TableState(engine.name, config, engine.rng, membership_gated=True)
        self.state.stats = engine.stats  # one counter for the whole node
        self.timers = Timers()
        self.changes: list[TableChange] = []
        self._gossip_idle = True
        cfg = engine.config
        self.timers.set(_ANTI_ENTROPY, now + cfg.push_pull_interval * engine.rng.random())
        engine.swim.extra_queues.append(self.state.network_queue)
        engine.swim.event_hooks.append(self._member_event)
        engine.register_handler(NetworkEvent, self._on_gossip)
        engine.register_handler(TableEvent, self._on_gossip)
        engine.register_stream(SyncRequest, self._on_sync_request, {SyncReply: self._on_sync_reply})
        engine.register_user_state("tables", self._produce_attachments, self._merge_attachments)

    # -- local API ---------------------------------------------------------------------------

    def _record(self, changes: list[TableChange], now: float) -> list[TableChange]:
        self.changes.extend(changes)
        self._wake(now)
        return changes

    def join_network(self, network: str, now: float) -> list[TableChange]:
        changes = self._record(self.state.join_network(network, now), now)
        for i, delay in enumerate(_JOIN_SYNC_DELAYS):
            self.timers.set(("tables_join_sync", network, i), now + delay)
        self.engine.swim.wake_gossip(now)
        return changes

    def leave_network(self, network: str, now: float) -> list[TableChange]:
        for i in range(len(_JOIN_SYNC_DELAYS)):
            self.timers.cancel(("tables_join_sync", network, i))
        changes = self._record(self.state.leave_network(network, now), now)
        self.engine.swim.wake_gossip(now)
        return changes

    def put(self, network: str, table: str, key: str, value: bytes, now: float) -> list[TableChange]:
        return self._record(self.state.put(network, table, key, value, now), now)

    def delete(self, network: str, table: str, key: str, now: float) -> list[TableChange]:
        return self._record(self.state.delete(network, table, key, now), now)

    # -- input -------------------------------------------------------------------------------

    def _on_gossip(self, msg: WireMessage, addr: Address, now: float, sealed: bool) -> None:
        self._record(self.state.handle_gossip(msg, now), now)

    def _on_sync_request(self, msg: SyncRequest, addr: Address, now: float) -> WireMessage | None:
        reply, changes = self.state.handle_sync_request(msg, now)
        self._record(changes, now)
        self.engine.stats["table_sync_served"] += 1
        return reply

    def _on_sync_reply(self, msg: SyncReply, addr: Address, now: float) -> None:
        follow_up, changes = self.state.handle_sync_reply(msg, now)
        self._record(changes, now)
        if follow_up is not None:
            self.engine.open_stream(addr, follow_up)

    def _produce_attachments(self, join: bool) -> bytes | None:
        return self.state.encode_attachments(self.engine.last_now)

    def _merge_attachments(self, data: bytes, join: bool, now: float) -> None:
        self._record(self.state.merge_attachments(data, now), now)

    def _member_event(self, event: MemberEvent) -> None:
        now, name = self.engine.last_now, event.member.name
        if type(event) is MemberJoined:
            self._record(self.state.member_alive(name, now), now)
        elif type(event) is MemberFailed:
            self._record(self.state.member_failed(name, now), now)
        elif type(event) is MemberLeft:
            self._record(self.state.member_left(name, now), now)

    # -- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        reap = self.state.next_deadline()
        if reap is not None and not self.timers.due_by(_REAP, reap):  # an earlier one may come later
            self.timers.set(_REAP, reap)
        return self.timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        for key in self.timers.pop_due(now):
            assert isinstance(key, tuple)
            if key == _GOSSIP:
                self._gossip(now)
            elif key == _ANTI_ENTROPY:
                self._anti_entropy(now)
            elif key == _REAP:
                self._record(self.state.reap(now), now)
            elif key[0] == "tables_join_sync":
                self._join_sync(key[1], now)

    def _wake(self, now: float) -> None:
        if self._gossip_idle and any(self.state.queued(n) for n in self.state.joined_networks()):
            self._gossip_idle = False
            self.timers.set(_GOSSIP, now + self.engine.config.gossip_interval * self.engine.rng.random())

    def _gossip(self, now: float) -> None:
        engine, state = self.engine, self.state
        budget = engine.swim.packet_budget - 4
        sent = False
        for network in state.joined_networks():
            if not state.queued(network):
                continue
            for target in engine.swim.choose_members(
                engine.config.gossip_nodes, _live_in(state.network_peers(network))
            ):
                parts = state.gossip_payloads(network, budget, 0)
                if not parts:
                    break
                engine.swim.outbox.append((target.addr, pack_packet(parts)))
                sent = True
        if sent or any(state.queued(n) for n in state.joined_networks()):
            self.timers.set(_GOSSIP, now + engine.config.gossip_interval)
        else:
            self._gossip_idle = True

    def _anti_entropy(self, now: float) -> None:
        self.timers.set(
            _ANTI_ENTROPY,
            now + self.engine.config.push_pull_interval * (0.75 + 0.5 * self.engine.rng.random()),
        )
        for peer, networks in self.state.anti_entropy_targets():
            self._sync(peer, networks, now)

    def _join_sync(self, network: str, now: float) -> None:
        peers = self.state.network_peers(network)
        if not peers:
            return
        chosen = self.engine.swim.choose_members(1, _live_in(peers))
        if chosen:
            self._sync(chosen[0].name, [network], now)

    def _sync(self, peer: str, networks: list[str], now: float) -> None:
        member = self.engine.swim.members.get(peer)
        if member is None or member.state > State.SUSPECT:
            return
        request = self.state.start_sync(peer, now, networks)
        if request is not None:
            self.engine.open_stream(member.addr, request)
            self.engine.stats["table_sync_started"] += 1


def _live_in(names: list[str]) -> Callable[[MemberRecord], bool]:
    eligible = set(names)
    return lambda m: m.name in eligible and m.state <= State.SUSPECT
