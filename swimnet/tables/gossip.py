"""Per-network dissemination of table events: own events first, then relays.

Rules (NetworkDB's tableBroadcasts / tableRebroadcasts over memberlist's queue):
- two `BroadcastQueue`s keyed by (table, key); queueing an event for a key drops the queued
  event for that key from the other queue too, so only the newest version is ever queued;
- `take` fills the budget from the own queue first and the relay queue with what is left;
  retransmissions are counted against the network's size, not the cluster's.
"""

from __future__ import annotations

from swimnet.membership.queue import BroadcastQueue
from swimnet.tables.entry import EntryKey


class NetworkQueues:
    __slots__ = ("own", "relay")

    def __init__(self, retransmit_mult: int, max_len: int) -> None:
        self.own = BroadcastQueue(retransmit_mult, max_len)
        self.relay = BroadcastQueue(retransmit_mult, max_len)

    def __len__(self) -> int:
        return len(self.own) + len(self.relay)

    def queue_own(self, key: EntryKey, data: bytes) -> None:
        self.relay.drop(key)
        self.own.queue(key, data)

    def queue_relay(self, key: EntryKey, data: bytes) -> None:
        self.own.drop(key)
        self.relay.queue(key, data)

    def drop(self, key: EntryKey) -> None:
        self.own.drop(key)
        self.relay.drop(key)

    def take(self, budget: int, per_item_overhead: int, n_nodes: int) -> list[bytes]:
        taken = self.own.take(budget, per_item_overhead, n_nodes)
        budget -= sum(len(d) + per_item_overhead for d in taken)
        return taken + self.relay.take(budget, per_item_overhead, n_nodes)
