"""The tables layer: routes table messages, sync streams, push-pull attachments and
membership events to a `TableState`, and runs its timers (table gossip, anti-entropy,
reaping). Pure like the engine: time comes in as `now`, randomness from `host.rng`.

Rules:
- NetworkEvents piggyback on membership gossip (`broadcasts` is the state's network queue);
  TableEvents go in packets of their own to peers of their network (topology-biased);
- a node that joins a network syncs at once with one member of it (the first sync carries
  everything, later ones compare digests), again shortly after, then every
  push_pull_interval with one random member per network (digest-first anti-entropy);
  `sync_network` starts one now;
- a sync conversation is one or more stream exchanges; when it ends (no follow-up, or a
  stream failed) one `SyncFinished(network, peer, ok)` per network it covered is emitted;
- membership events drive the table state: joined -> member_alive (restores hidden
  entries), failed -> member_failed (hides them), left -> member_left (hides them briefly);
- every TableChange (local or remote) is emitted through the host, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from swimnet.layers.contract import Host, MessageHandler, StreamHandler
from swimnet.layers.events import SyncFinished
from swimnet.membership.events import MemberEvent, MemberFailed, MemberJoined, MemberLeft
from swimnet.membership.member import MemberRecord
from swimnet.membership.timers import Timers
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.state import TableState
from swimnet.tables.view import TablesReader
from swimnet.wire.messages import Address, State, WireMessage
from swimnet.wire.tables import NetworkEvent, SyncReply, SyncRequest, TableEvent

_SUSPECT = State.SUSPECT
"""A State member as a constant (reading `State.X`, an enum class attribute, costs more)."""

_GOSSIP = ("tables_gossip",)
_ANTI_ENTROPY = ("tables_anti_entropy",)
_REAP = ("tables_reap",)
_JOIN_SYNC_DELAYS = (0.0, 2.0, 6.0)
"""After joining a network: sync with one member at once, then again (closes races with
members that were still learning our attachment)."""
_MAX_OPEN_SYNCS = 1024
"""Conversations tracked at once (a bound; each normally ends within tcp_timeout)."""


class TablesLayer:
    section = "tables"

    def __init__(self, host: Host, now: float, config: TablesConfig | None = None) -> None:
        self._host = host
        self._state = TableState(host.name, config, host.rng, membership_gated=True, stats=host.stats)
        self.reader = TablesReader(self._state)
        self.broadcasts = self._state.network_queue
        self._timers = Timers()
        self._gossip_idle = True
        self._syncs: dict[int, tuple[str, tuple[str, ...]]] = {}
        """Open sync streams: id -> (peer, networks of the conversation)."""
        self._started: float | None = now
        """The first anti-entropy round is drawn when the engine first asks for deadlines
        (after membership drew its own timers: one rng order for every engine)."""

    def message_handlers(self) -> Mapping[type, MessageHandler]:
        return {NetworkEvent: self._on_gossip, TableEvent: self._on_gossip}

    def stream_handlers(self) -> Mapping[type, StreamHandler]:
        return {SyncRequest: self._on_sync_request}

    # -- local API ---------------------------------------------------------------------------

    def _record(self, changes: list[TableChange], now: float) -> list[TableChange]:
        for change in changes:
            self._host.emit(change)
        self._wake(now)
        return changes

    def join_network(self, network: str, now: float) -> list[TableChange]:
        changes = self._record(self._state.join_network(network, now), now)
        for i, delay in enumerate(_JOIN_SYNC_DELAYS):
            self._timers.set(("tables_join_sync", network, i), now + delay)
        return changes

    def leave_network(self, network: str, now: float) -> list[TableChange]:
        for i in range(len(_JOIN_SYNC_DELAYS)):
            self._timers.cancel(("tables_join_sync", network, i))
        return self._record(self._state.leave_network(network, now), now)

    def put(self, network: str, table: str, key: str, value: bytes, now: float) -> list[TableChange]:
        return self._record(self._state.put(network, table, key, value, now), now)

    def delete(self, network: str, table: str, key: str, now: float) -> list[TableChange]:
        return self._record(self._state.delete(network, table, key, now), now)

    def sync_network(self, network: str, now: float) -> bool:
        """Start a sync of `network` with one random live peer of it now; False if none."""
        return self._join_sync(network, now)

    # -- input -------------------------------------------------------------------------------

    def _on_gossip(self, msg: WireMessage, addr: Address, now: float, sealed: bool) -> None:
        self._record(self._state.handle_gossip(msg, now), now)

    def _on_sync_request(
        self, msg: SyncRequest, addr: Address, now: float, sealed: bool
    ) -> WireMessage | None:
        reply, changes = self._state.handle_sync_request(msg, now)
        self._record(changes, now)
        self._host.stats["table_sync_served"] += 1
        return reply

    def handle_reply(
        self, stream_id: int, message: WireMessage, addr: Address, now: float, sealed: bool
    ) -> bool:
        conversation = self._syncs.pop(stream_id, None)
        if conversation is None or type(message) is not SyncReply:
            if conversation is not None:
                self._finished(conversation, False)
            return False
        follow_up, changes = self._state.handle_sync_reply(message, now)
        self._record(changes, now)
        if follow_up is None:
            self._finished(conversation, True)
        else:
            self._open(addr, follow_up, conversation)
        return True

    def stream_failed(self, stream_id: int, now: float) -> None:
        conversation = self._syncs.pop(stream_id, None)
        if conversation is not None:
            self._host.stats["table_sync_failed"] += 1
            self._finished(conversation, False)

    def _finished(self, conversation: tuple[str, tuple[str, ...]], ok: bool) -> None:
        peer, networks = conversation
        for network in networks:
            self._host.emit(SyncFinished(network, peer, ok))

    def local_state(self, join: bool, now: float) -> bytes | None:
        return self._state.encode_attachments(now)

    def merge_state(self, data: bytes, join: bool, now: float, sealed: bool) -> None:
        self._record(self._state.merge_attachments(data, now), now)

    def member_event(self, event: MemberEvent, now: float) -> None:
        name = event.member.name
        if type(event) is MemberJoined:
            self._record(self._state.member_alive(name, now), now)
        elif type(event) is MemberFailed:
            self._record(self._state.member_failed(name, now), now)
        elif type(event) is MemberLeft:
            self._record(self._state.member_left(name, now), now)

    # -- timers -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        if self._started is not None:
            first = self._started + self._host.config.push_pull_interval * self._host.rng.random()
            self._timers.set(_ANTI_ENTROPY, first)
            self._started = None
        reap = self._state.next_deadline()
        if reap is not None and not self._timers.due_by(_REAP, reap):  # an earlier one may come later
            self._timers.set(_REAP, reap)
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        for key in self._timers.pop_due(now):
            assert isinstance(key, tuple)
            if key == _GOSSIP:
                self._gossip(now)
            elif key == _ANTI_ENTROPY:
                self._anti_entropy(now)
            elif key == _REAP:
                self._record(self._state.reap(now), now)
            elif key[0] == "tables_join_sync":
                self._join_sync(key[1], now)

    def _wake(self, now: float) -> None:
        state = self._state
        if self._gossip_idle and any(state.queued(n) for n in state.joined_networks()):
            self._gossip_idle = False
            self._timers.set(_GOSSIP, now + self._host.config.gossip_interval * self._host.rng.random())

    def _gossip(self, now: float) -> None:
        host, state = self._host, self._state
        budget = host.packet_budget - 4
        sent = False
        for network in state.joined_networks():
            if not state.queued(network):
                continue
            targets = host.choose_members(host.config.gossip_nodes, _live_in(state.network_peers(network)))
            for target in targets:
                parts = state.gossip_payloads(network, budget, 0)
                if not parts:
                    break
                host.send_packet(target.addr, parts)
                sent = True
        if sent or any(state.queued(n) for n in state.joined_networks()):
            self._timers.set(_GOSSIP, now + host.config.gossip_interval)
        else:
            self._gossip_idle = True

    def _anti_entropy(self, now: float) -> None:
        host = self._host
        self._timers.set(
            _ANTI_ENTROPY, now + host.config.push_pull_interval * (0.75 + 0.5 * host.rng.random())
        )
        for peer, networks in self._state.anti_entropy_targets():
            self._sync(peer, networks, now)

    def _join_sync(self, network: str, now: float) -> bool:
        peers = self._state.network_peers(network)
        if not peers:
            return False
        chosen = self._host.choose_members(1, _live_in(peers))
        return bool(chosen) and self._sync(chosen[0].name, [network], now)

    def _sync(self, peer: str, networks: list[str], now: float) -> bool:
        member = self._host.member(peer)
        if member is None or member.state > _SUSPECT:
            return False
        request = self._state.start_sync(peer, now, networks)
        if request is None:
            return False
        self._open(member.address, request, (peer, tuple(s.network for s in request.sections)))
        self._host.stats["table_sync_started"] += 1
        return True

    def _open(self, addr: Address, request: SyncRequest, conversation: tuple[str, tuple[str, ...]]) -> None:
        if len(self._syncs) >= _MAX_OPEN_SYNCS:
            self._finished(self._syncs.pop(next(iter(self._syncs))), False)
        self._syncs[self._host.open_stream(addr, request, self)] = conversation


def _live_in(names: list[str]) -> Callable[[MemberRecord], bool]:
    eligible = set(names)
    return lambda m: m.name in eligible and m.state <= _SUSPECT
