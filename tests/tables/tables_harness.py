"""A pure in-test cluster of TableStates wired directly: no engine, no clock, no sockets.

Every message crosses the real codec (encode -> decode), so wire bounds are exercised too.
Membership is whatever the test says (it calls `member_failed` etc. on every node).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

from swimnet.tables import TableChange, TablesConfig, TableState
from swimnet.wire.codec import decode_packet, decode_stream, encode_stream, pack_packet
from swimnet.wire.tables import SyncReply, SyncRequest

PACKET_BUDGET = 1_400
OVERHEAD = 2


@attrs.define
class SyncStats:
    rounds: int = 0
    request_bytes: int = 0
    reply_bytes: int = 0
    entries_shipped: int = 0

    @property
    def total_bytes(self) -> int:
        return self.request_bytes + self.reply_bytes


def _count_entries(message: SyncRequest | SyncReply) -> int:
    return sum(len(s.entries) for s in message.sections)


class Cluster:
    def __init__(self, names: Iterable[str], config: TablesConfig | None = None, seed: int = 0) -> None:
        self.config = config or TablesConfig()
        self.rng = random.Random(seed)
        self.now = 0.0
        self.nodes = {n: TableState(n, self.config, random.Random(f"{seed}-{n}")) for n in names}
        self.changes: dict[str, list[TableChange]] = {n: [] for n in self.nodes}
        self.down: set[str] = set()
        """Nodes that receive nothing (crashed or partitioned away)."""

    def __getitem__(self, name: str) -> TableState:
        return self.nodes[name]

    def _record(self, name: str, changes: list[TableChange]) -> None:
        self.changes[name].extend(changes)

    # -- local operations ----------------------------------------------------------------

    def join(self, name: str, network: str, sync: bool = True) -> None:
        node = self.nodes[name]
        self._record(name, node.join_network(network, self.now))
        if name in self.down:
            return
        self.push_pull_all(name)
        if sync:
            for peer in node.network_peers(network):
                if peer not in self.down:
                    self.sync(name, peer, [network])

    def leave(self, name: str, network: str) -> None:
        self._record(name, self.nodes[name].leave_network(network, self.now))

    def put(self, name: str, network: str, key: str, value: bytes, table: str = "t") -> None:
        self._record(name, self.nodes[name].put(network, table, key, value, self.now))

    def delete(self, name: str, network: str, key: str, table: str = "t") -> None:
        self._record(name, self.nodes[name].delete(network, table, key, self.now))

    # -- membership ----------------------------------------------------------------------

    def everyone(self, method: str, subject: str) -> None:
        for name, node in self.nodes.items():
            if name != subject:
                self._record(name, getattr(node, method)(subject, self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for name, node in self.nodes.items():
            self._record(name, node.reap(self.now))

    # -- gossip --------------------------------------------------------------------------

    def deliver(self, name: str, packet: bytes) -> None:
        if name in self.down:
            return
        node = self.nodes[name]
        for message in decode_packet(packet):
            self._record(name, node.handle_gossip(message, self.now))

    def gossip_round(self, loss: float = 0.0, fanout: int = 3) -> int:
        """Every node sends one packet per joined network to `fanout` peers, plus its
        network events to `fanout` random members. Returns the packets sent."""
        sent = 0
        names = sorted(self.nodes)
        for name in names:
            if name in self.down:
                continue
            node = self.nodes[name]
            net_events = node.network_payloads(PACKET_BUDGET, OVERHEAD, len(self.nodes))
            targets = [n for n in names if n != name]
            if net_events and targets:
                packet = pack_packet(net_events)
                for target in self.rng.sample(targets, min(fanout, len(targets))):
                    if self.rng.random() >= loss:
                        self.deliver(target, packet)
                        sent += 1
            for network in node.joined_networks():
                payloads = node.gossip_payloads(network, PACKET_BUDGET, OVERHEAD)
                if not payloads:
                    continue
                packet = pack_packet(payloads)
                peers = node.network_peers(network)
                for target in self.rng.sample(peers, min(fanout, len(peers))):
                    if self.rng.random() >= loss:
                        self.deliver(target, packet)
                        sent += 1
        return sent

    def gossip_until_quiet(self, max_rounds: int = 200) -> None:
        for _ in range(max_rounds):
            busy = any(
                len(n.network_queue) or any(n.queued(net) for net in n.joined_networks())
                for name, n in self.nodes.items()
                if name not in self.down
            )
            if not busy:
                return
            self.gossip_round()

    # -- anti-entropy --------------------------------------------------------------------

    def push_pull(self, a: str, b: str) -> None:
        """memberlist push-pull: attachments both ways."""
        na, nb = self.nodes[a], self.nodes[b]
        da, db = na.encode_attachments(self.now), nb.encode_attachments(self.now)
        self._record(b, nb.merge_attachments(da, self.now))
        self._record(a, na.merge_attachments(db, self.now))

    def push_pull_all(self, name: str) -> None:
        for other in self.nodes:
            if other != name and other not in self.down:
                self.push_pull(name, other)

    def sync(self, a: str, b: str, networks: list[str] | None = None) -> SyncStats:
        """One sync conversation initiated by `a` with `b`, through the codec."""
        stats = SyncStats()
        na, nb = self.nodes[a], self.nodes[b]
        request = na.start_sync(b, self.now, networks)
        while request is not None:
            data = encode_stream(request)
            stats.request_bytes += len(data)
            stats.entries_shipped += _count_entries(request)
            reply, changes = nb.handle_sync_request(decode_stream(data), self.now)
            self._record(b, changes)
            data = encode_stream(reply)
            stats.reply_bytes += len(data)
            stats.entries_shipped += _count_entries(reply)
            stats.rounds += 1
            request, changes = na.handle_sync_reply(decode_stream(data), self.now)
            self._record(a, changes)
        return stats

    def full_sync(self, max_passes: int = 10) -> int:
        """Push-pull and sync every pair until a pass changes nothing. Returns passes."""
        up = [n for n in sorted(self.nodes) if n not in self.down]
        for passes in range(1, max_passes + 1):
            before = self.fingerprint()
            for a in up:
                for b in up:
                    if a != b:
                        self.push_pull(a, b)
                        self.sync(a, b)
            if self.fingerprint() == before:
                return passes
        raise AssertionError(f"no convergence after {max_passes} passes")

    def fingerprint(self) -> object:
        return {
            name: (
                sorted((net, n, a.order()) for net, n, a in node.attachments.items()),
                {net: node.digest_hash(net) for net in node.joined_networks()},
                node.network_clock.time,
                node.table_clock.time,
            )
            for name, node in self.nodes.items()
        }
