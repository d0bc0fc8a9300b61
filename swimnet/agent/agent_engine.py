"""The engine the agent runs: swimnet's Engine plus two observations the agent needs.

- `rtt`: a histogram of direct probe round-trip times (every ack to one of our probes),
  for the metrics endpoint;
- `syncs_completed[network]`: how many table sync conversations this node started have
  finished (the last reply came and no follow-up request was needed), so the agent can
  wait for the initial sync of a network it just joined before checking for duplicates;
  `sync_now(network, now)` starts one at once with a random live peer of the network (the
  tables layer's own join syncs run at fixed delays, and may have found no peer yet).

Rules: the observations hook into public extension points only (`open_stream`,
`register_stream`, `stream_failed`, `swim.on_rtt`), `sync_now` does what the tables layer's
sync timer does, through `TableState.start_sync`; the protocol behaviour is unchanged. A
conversation is tracked per peer address; one that fails is forgotten (the waiter times
out instead).
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from swimnet.engine import Engine, ReplyHandler, StreamHandler
from swimnet.wire.messages import Address, State, WireMessage
from swimnet.wire.tables import SyncReply, SyncRequest

RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Upper bounds (seconds) of the probe RTT histogram buckets (+Inf is implied)."""


class RttHistogram:
    """Cumulative-style counts per bucket, their sum and count (Prometheus histogram data)."""

    def __init__(self, buckets: tuple[float, ...] = RTT_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """[(upper bound as text, observations <= it)], ending with ("+Inf", count)."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class AgentEngine(Engine):
    """An Engine that records probe RTTs and completed table syncs (see the module rules)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.rtt = RttHistogram()
        self.syncs_completed: Counter[str] = Counter()
        self._syncing: dict[Address, tuple[str, ...]] = {}
        super().__init__(*args, **kwargs)
        observe = self.swim.on_rtt

        def on_rtt(name: str, rtt: float, payload: bytes) -> None:
            self.rtt.observe(rtt)
            observe(name, rtt, payload)

        self.swim.on_rtt = on_rtt

    def sync_in_flight(self, network: str) -> bool:
        return any(network in networks for networks in self._syncing.values())

    def sync_now(self, network: str, now: float) -> bool:
        """Start a sync of `network` with one random live peer; False if there is none."""
        state = self.tables.state
        live = [
            m
            for m in (self.swim.members.get(name) for name in state.network_peers(network))
            if m is not None and m.state <= State.SUSPECT
        ]
        if not live:
            return False
        member = self.rng.choice(live)
        request = state.start_sync(member.name, now, [network])
        if request is None:
            return False
        self.open_stream(member.addr, request)
        self.stats["table_sync_started"] += 1
        return True

    def open_stream(self, addr: Address, message: WireMessage) -> None:
        if isinstance(message, SyncRequest):
            known = self._syncing.get(addr, ())
            self._syncing[addr] = tuple(dict.fromkeys((*known, *(s.network for s in message.sections))))
        super().open_stream(addr, message)

    def register_stream(self, cls: type, handler: StreamHandler, on_reply: dict[type, ReplyHandler]) -> None:
        wrapped = {kind: self._watch_sync(h) if kind is SyncReply else h for kind, h in on_reply.items()}
        super().register_stream(cls, handler, wrapped)

    def stream_failed(self, addr: Address, now: float, request: bytes | None = None) -> None:
        self._syncing.pop(addr, None)
        super().stream_failed(addr, now, request)

    def _watch_sync(self, handler: ReplyHandler) -> ReplyHandler:
        def on_reply(msg: Any, addr: Address, now: float) -> None:
            networks = self._syncing.pop(addr, ())
            handler(msg, addr, now)
            if addr in self._syncing:  # a follow-up request went out: the conversation goes on
                self._syncing[addr] = tuple(dict.fromkeys((*networks, *self._syncing[addr])))
            else:
                for network in networks:
                    self.syncs_completed[network] += 1

        return on_reply
