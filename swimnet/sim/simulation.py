"""Discrete-event simulator: N real engines, real encoded bytes, one virtual clock, one seed.

Rules:
- everything random (engine rngs, latency, loss) descends from `seed`, so a run is
  bit-for-bit reproducible; `Simulation.describe()` names the seed for failure messages;
- events run in (time, sequence) order; an engine is only ever called with the current
  virtual time, and after every call its datagrams, streams and events are drained;
- datagrams with a fixed delay (a `Constant` latency) wait in a FIFO lane beside the heap
  (sent in time order, they arrive in time order: no heap work per packet); so do, in a
  second FIFO (the clock), the node timers armed for a short while ahead (a probe timeout,
  the next tick after one) that are due no earlier than the last one it holds: armed in
  time order with the same delay, they fall due in that order (the rest go to the heap).
  The run loop takes whichever of the three heads comes first in (time, sequence) order, so
  the order of events is exactly the one a single heap gives, sequence numbers included;
- a crashed node receives nothing and its timers never fire; a restarted node is a new
  engine (empty state, higher incarnation) at the same address;
- a stalled node takes no input until the stall ends, then drains its backlog in arrival
  order (Lifeguard's overloaded member); streams to it time out after tcp_timeout;
- datagrams are lost with the loss probability and between partition groups; streams are
  reliable but do not cross partitions (the opener sees a failure after tcp_timeout).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from swimnet.config import Config
from swimnet.engine import Engine, EngineEvent, StreamRequest
from swimnet.sim.links import Constant, LatencyModel, as_model
from swimnet.sim.node import SimNode
from swimnet.wire.messages import Address, State

_ALIVE, _SUSPECT = State.ALIVE, State.SUSPECT
"""State members as constants (reading `State.X`, an enum class attribute, costs more)."""

_TIMER, _DGRAM, _STREAM_REQ, _STREAM_REPLY, _STREAM_TIMEOUT, _STALL_END, _CALL = range(7)
_NEVER = float("inf")
_FROM_LANE, _FROM_CLOCK, _FROM_HEAP = range(3)
_LAST = (_NEVER, -1)
"""Stands for an empty queue's head: after every event (no event is due at infinity)."""

EventHook = Callable[[float, str, EngineEvent], None]


class EngineFactory(Protocol):
    """Builds each simulated node's engine (per-node configuration, tables limits, test
    doubles); `Engine` itself by default."""

    def __call__(self, config: Config, *, rng: random.Random, now: float, incarnation: int) -> Engine: ...


class _Slot:
    """One simulated node. The datagram counts of its `stats` accumulate in four ints of
    the slot (read on every packet anyway) until `Simulation.stats` is read: a node's
    Counter is then not touched per packet (at N = 2,000, each cold object a packet touches
    costs about 1% of the run)."""

    __slots__ = (
        "addr", "backlog", "engine", "gen", "name", "running", "rx_bytes", "rx_packets", "stalled_until",
        "stats", "timer_at", "tx_bytes", "tx_packets",
    )  # fmt: skip

    def __init__(self, name: str, addr: Address, engine: Engine, stats: Counter[str]) -> None:
        self.name = name
        self.addr = addr
        self.engine = engine
        self.stats = stats
        self.gen = 0
        self.running = True
        self.stalled_until = 0.0
        self.backlog: list[tuple[Any, ...]] = []
        self.timer_at = _NEVER
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        """Not yet in `stats`: packets_received, bytes_received, packets_sent, bytes_sent."""

    def flush_counts(self) -> None:
        """Move the pending datagram counts into `stats` (a key appears once counted, as if
        counted per packet)."""
        stats = self.stats
        if self.rx_packets:
            stats["packets_received"] += self.rx_packets
            stats["bytes_received"] += self.rx_bytes
            self.rx_packets = self.rx_bytes = 0
        if self.tx_packets:
            stats["packets_sent"] += self.tx_packets
            stats["bytes_sent"] += self.tx_bytes
            self.tx_packets = self.tx_bytes = 0


class Simulation:
    """A simulated cluster; see the module docstring for the rules."""

    def __init__(
        self,
        seed: int = 0,
        config: Config | None = None,
        *,
        latency: float | LatencyModel = 0.0005,
        loss: float = 0.0,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.seed = seed
        self.config = config if config is not None else Config.lan()
        self.now = 0.0
        self.latency: LatencyModel = as_model(latency)
        self.loss = loss
        self._rng = random.Random(seed)
        self._net_rng = random.Random(self._rng.getrandbits(64))
        self._engine_factory: EngineFactory = engine_factory if engine_factory is not None else Engine
        self._heap: list[tuple[float, int, int, Any]] = []
        self._lane: deque[tuple[float, int, _Slot, int, Address, bytes]] = deque()
        """Datagrams of a fixed delay, (when, seq, receiver, its gen, sender, bytes), in
        (when, seq) order (see the module docstring)."""
        self._clock: deque[tuple[float, int, int, Any]] = deque()
        """Timer entries (as on the heap) due within `_clock_horizon` of being armed and no
        earlier than the last one it holds, so in (when, seq) order (see the module docstring)."""
        self._clock_horizon = self.config.probe_timeout * (1.0 + 1e-9)
        """A probe timeout, the bulk of the timers armed, falls within it (and the next tick,
        armed when the timeout it replaces falls due); a timer armed further ahead does not:
        it would hold the timeouts armed after it out of the clock."""
        self._seq = 0
        self._slots: dict[str, _Slot] = {}
        self._by_addr: dict[Address, _Slot] = {}
        self._group: dict[str, int] = {}
        self._streams_open: dict[int, bool] = {}
        self._stream_seq = 0
        self.on_event: EventHook | None = None
        self.classify: Callable[[str, str], str] | None = None
        """If set, datagrams and stream bytes sent are also counted per class(src, dst) in
        `traffic` (e.g. "in-zone" / "cross-zone")."""
        self.traffic: Counter[str] = Counter()
        self.tap: Callable[[float, str, Address, bytes], None] | None = None
        """If set, called with (now, receiver, sender address, bytes) for every delivered datagram."""
        self._stats: dict[str, Counter[str]] = {}
        self.delivered = 0
        self.dropped = 0

    # -- building the cluster --------------------------------------------------------------

    def describe(self) -> str:
        return f"Simulation(seed={self.seed}) at t={self.now:.3f}s"

    def add_node(self, name: str | None = None, *, config: Config | None = None) -> str:
        index = len(self._slots)
        name = name if name is not None else f"n{index}"
        if name in self._slots:
            raise ValueError(f"node {name!r} exists")
        addr = (f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}", 7946)
        cfg = (config or self.config).evolve(name=name, bind=f"{addr[0]}:{addr[1]}")
        stats: Counter[str] = Counter()
        slot = _Slot(name, addr, self._new_engine(cfg, 1), stats)
        self._slots[name] = slot
        self._by_addr[addr] = slot
        self._stats[name] = stats
        self._after(slot)
        return name

    def add_nodes(self, count: int) -> list[str]:
        return [self.add_node() for _ in range(count)]

    def _new_engine(self, cfg: Config, incarnation: int) -> Engine:
        rng = random.Random(self._rng.getrandbits(64))
        return self._engine_factory(cfg, rng=rng, now=self.now, incarnation=incarnation)

    @property
    def stats(self) -> dict[str, Counter[str]]:
        """Per node (by name, across restarts): packets_sent / bytes_sent,
        packets_received / bytes_received (datagrams delivered), stream_bytes_sent."""
        for slot in self._slots.values():
            if slot.rx_packets or slot.tx_packets:
                slot.flush_counts()
        return self._stats

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def running(self) -> list[str]:
        return [s.name for s in self._slots.values() if s.running]

    def node(self, name: str) -> SimNode:
        """A synchronous handle: library calls without `now` (join_network, table(...).put ...);
        any other attribute is the engine's."""
        if name not in self._slots:
            raise KeyError(name)
        return SimNode(self, name)

    def engine(self, name: str) -> Engine:
        return self._slots[name].engine

    def address(self, name: str) -> Address:
        return self._slots[name].addr

    def join(self, name: str, via: str | Sequence[str]) -> None:
        seeds = [via] if isinstance(via, str) else list(via)
        slot = self._slots[name]
        slot.engine.join([self._slots[s].addr for s in seeds], self.now)
        self._after(slot)

    def join_all(self, via: str) -> None:
        for name in self._slots:
            if name != via:
                self.join(name, via)

    # -- faults ----------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        slot = self._slots[name]
        slot.running = False
        slot.gen += 1
        slot.backlog.clear()
        slot.timer_at = _NEVER

    def restart(self, name: str, *, join_via: str | None = None) -> None:
        """Bring a crashed node back: empty state, higher incarnation, joins a running node."""
        slot = self._slots[name]
        if slot.running:
            raise ValueError(f"{name} is running")
        old = slot.engine
        slot.engine = self._new_engine(old.config, old.incarnation + 1)
        slot.running = True
        slot.gen += 1
        slot.stalled_until = 0.0
        self._after(slot)
        others = [n for n in self.running() if n != name]
        if join_via is None and others:
            join_via = others[int(self._net_rng.random() * len(others))]
        if join_via is not None:
            self.join(name, join_via)

    def stall(self, name: str, seconds: float) -> None:
        slot = self._slots[name]
        slot.stalled_until = max(slot.stalled_until, self.now + seconds)
        self._push(slot.stalled_until, _STALL_END, (slot, slot.gen))

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Only nodes of the same group reach each other; unlisted nodes form one more group."""
        self._group = {}
        for gid, group in enumerate(groups, start=1):
            for name in group:
                self._group[name] = gid

    def heal(self) -> None:
        self._group = {}

    def set_loss(self, probability: float) -> None:
        self.loss = probability

    def leave(self, name: str) -> None:
        slot = self._slots[name]
        slot.engine.leave(self.now)
        self._after(slot)

    def inject(self, name: str, data: bytes, src: Address) -> None:
        """Deliver raw bytes to a running node now, as if `src` had sent them (tests, replays)."""
        slot = self._slots[name]
        slot.engine.receive_datagram(data, src, self.now)
        self._after(slot)

    def call(self, name: str, action: Callable[[Engine], object]) -> None:
        """Run `action(engine)` on a node now and process what it queued (API calls in tests)."""
        slot = self._slots[name]
        action(slot.engine)
        self._after(slot)

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at virtual time `when`."""
        self._push(when, _CALL, action)

    # -- running ---------------------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        self._run(self.now + seconds)

    def run_until(self, predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
        """Run until `predicate()` holds (checked every `step` virtual seconds) or timeout."""
        end = self.now + timeout
        while True:
            if predicate():
                return True
            if self.now >= end:
                return False
            self._run(min(end, self.now + step))

    def _push(self, when: float, kind: int, data: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, data))

    def _run(self, until: float) -> None:
        heap, pop, lane, clock = self._heap, heapq.heappop, self._lane, self._clock
        lane_pop, clock_pop = lane.popleft, clock.popleft
        horizon = self._clock_horizon
        first: Any  # an entry of one of the three queues
        entry: Any
        data: Any
        while True:
            # the earliest of the three queues' heads in (when, seq) order (seqs are unique:
            # comparing two entries never looks past the seq)
            if lane:
                first, source = lane[0], _FROM_LANE
            else:
                first, source = _LAST, _FROM_HEAP
            if clock:
                entry = clock[0]
                if entry < first:
                    first, source = entry, _FROM_CLOCK
            if heap:
                entry = heap[0]
                if entry < first:
                    first, source = entry, _FROM_HEAP
            when = first[0]
            if when > until or first is _LAST:
                break
            self.now = when
            if source == _FROM_LANE:
                lane_pop()
                receiver: _Slot = first[2]
                gone = receiver.gen != first[3] or not receiver.running
                if gone or receiver.stalled_until > when or self.tap is not None:
                    self._deliver_datagram(receiver, first[3], first[4], first[5])
                    continue
                # _deliver_datagram inlined (the per-packet path): same counts, same order
                self.delivered += 1
                datagram: bytes = first[5]
                receiver.rx_packets += 1
                receiver.rx_bytes += len(datagram)
                receiver.engine.receive_datagram(datagram, first[4], when)
                self._after(receiver)
                continue
            if source == _FROM_CLOCK:
                clock_pop()
                kind = _TIMER
            else:
                pop(heap)
                kind = first[2]
            data = first[3]
            if kind == _TIMER:
                slot, gen = data
                if slot.gen != gen or not slot.running or slot.timer_at != when:
                    continue
                slot.timer_at = _NEVER
                if slot.stalled_until > when:
                    continue  # the stall end re-arms the timer
                engine = slot.engine
                deadline = engine.next_deadline()
                if deadline is not None and deadline > when:
                    # nothing due (what was due got cancelled meanwhile): only re-arm
                    slot.timer_at = deadline
                    self._seq += 1
                    entry = (deadline, self._seq, _TIMER, data)
                    if deadline - when <= horizon and (not clock or clock[-1][0] <= deadline):
                        clock.append(entry)
                    else:
                        heapq.heappush(heap, entry)
                    continue
                engine.handle_timer(when)
                self._after(slot)
            elif kind == _DGRAM:
                self._deliver_datagram(*data)
            elif kind == _STREAM_REQ:
                self._stream_request(data)
            elif kind == _STREAM_REPLY:
                self._stream_reply(data)
            elif kind == _STREAM_TIMEOUT:
                slot, gen, sid, stream_id = data
                if self._streams_open.pop(sid, False) and slot.gen == gen and slot.running:
                    slot.engine.stream_failed(stream_id, when)
                    self._after(slot)
            elif kind == _STALL_END:
                self._end_stall(data)
            elif kind == _CALL:
                data()
        self.now = max(self.now, until)

    def _after(self, slot: _Slot) -> None:
        """Drain an engine's output and re-arm its timer."""
        engine = slot.engine
        now = self.now
        out = engine.datagrams_to_send()
        if out:
            latency = self.latency
            if type(latency) is Constant and not self.loss and not self._group and self.classify is None:
                # the common case, _send's loop without what it skips: one delay, no loss
                # to draw, no partition, no classes (same entries, same sequence numbers)
                when = now + latency.seconds
                lane, by_addr, src = self._lane, self._by_addr, slot.addr
                sent_bytes = 0
                for addr, data in out:
                    sent_bytes += len(data)
                    dst = by_addr.get(addr)
                    if dst is None:
                        self.dropped += 1
                        continue
                    self._seq += 1
                    if not lane or lane[-1][0] <= when:
                        lane.append((when, self._seq, dst, dst.gen, src, data))
                    else:
                        heapq.heappush(self._heap, (when, self._seq, _DGRAM, (dst, dst.gen, src, data)))
                slot.tx_packets += len(out)
                slot.tx_bytes += sent_bytes
            else:
                self._send(slot, out, now)
        streams = engine.streams_to_open()
        if streams:
            self._open_streams(slot, streams, now)
        events = engine.events()
        if events and self.on_event is not None:
            for event in events:
                self.on_event(now, slot.name, event)
        deadline = engine.next_deadline()
        if deadline is not None and deadline < slot.timer_at:
            if deadline < now:
                deadline = now  # a deadline already past fires now
            slot.timer_at = deadline
            self._seq += 1
            entry = (deadline, self._seq, _TIMER, (slot, slot.gen))
            clock = self._clock
            if deadline - now <= self._clock_horizon and (not clock or clock[-1][0] <= deadline):
                clock.append(entry)
            else:
                heapq.heappush(self._heap, entry)

    def _send(self, slot: _Slot, out: list[tuple[Address, bytes]], now: float) -> None:
        """Send an engine's datagrams: each lost with the loss probability or between
        partition groups, else delivered after the latency model's delay (classified if asked)."""
        latency, rng, loss, by_addr = self.latency, self._net_rng, self.loss, self._by_addr
        heap, push = self._heap, heapq.heappush
        group = self._group
        src_group = group.get(slot.name, 0) if group else 0
        classify = self.classify
        src, name = slot.addr, slot.name
        fixed = latency.seconds if type(latency) is Constant else None
        lane = self._lane
        sent_bytes = 0
        for addr, data in out:
            sent_bytes += len(data)
            dst = by_addr.get(addr)
            if classify is not None and dst is not None:
                cls = classify(name, dst.name)
                self.traffic[f"{cls}_packets"] += 1
                self.traffic[f"{cls}_bytes"] += len(data)
            if (
                dst is None
                or (loss and rng.random() < loss)
                or (group and group.get(dst.name, 0) != src_group)
            ):
                self.dropped += 1
                continue
            self._seq += 1
            if fixed is not None:
                when = now + fixed
                if not lane or lane[-1][0] <= when:
                    lane.append((when, self._seq, dst, dst.gen, src, data))
                    continue
            else:
                when = now + latency(name, dst.name, rng)
            push(heap, (when, self._seq, _DGRAM, (dst, dst.gen, src, data)))
        slot.tx_packets += len(out)
        slot.tx_bytes += sent_bytes

    def _open_streams(self, slot: _Slot, streams: list[StreamRequest], now: float) -> None:
        engine = slot.engine
        for stream in streams:
            request = stream.data
            self._stream_seq += 1
            sid = self._stream_seq
            self._streams_open[sid] = True
            self._push(now + engine.config.tcp_timeout, _STREAM_TIMEOUT, (slot, slot.gen, sid, stream.id))
            dst = self._by_addr.get(stream.addr)
            if dst is None or self._group.get(dst.name, 0) != self._group.get(slot.name, 0):
                continue
            slot.stats["stream_bytes_sent"] += len(request)
            if self.classify is not None:
                self.traffic[f"{self.classify(slot.name, dst.name)}_stream_bytes"] += len(request)
            delay = self.latency(slot.name, dst.name, self._net_rng)
            self._push(now + delay, _STREAM_REQ, (dst, dst.gen, slot, slot.gen, sid, stream.id, request))

    def _deliver_datagram(self, slot: _Slot, gen: int, src: Address, data: bytes) -> None:
        if slot.gen != gen or not slot.running:
            self.dropped += 1
            return
        now = self.now
        if slot.stalled_until > now:
            slot.backlog.append((_DGRAM, (slot, gen, src, data)))
            return
        self.delivered += 1
        if self.tap is not None:
            self.tap(now, slot.name, src, data)
        slot.rx_packets += 1
        slot.rx_bytes += len(data)
        slot.engine.receive_datagram(data, src, now)
        self._after(slot)

    def _stream_request(self, item: tuple[_Slot, int, _Slot, int, int, int, bytes]) -> None:
        server, gen, client, client_gen, sid, stream_id, request = item
        if server.gen != gen or not server.running or not self._streams_open.get(sid):
            return
        if server.stalled_until > self.now:
            server.backlog.append((_STREAM_REQ, item))
            return
        reply = server.engine.handle_stream(request, client.addr, self.now)
        self._after(server)
        if reply is None:
            return
        server.stats["stream_bytes_sent"] += len(reply)
        if self.classify is not None:
            self.traffic[f"{self.classify(server.name, client.name)}_stream_bytes"] += len(reply)
        delay = self.latency(server.name, client.name, self._net_rng)
        self._push(self.now + delay, _STREAM_REPLY, (client, client_gen, sid, stream_id, reply))

    def _stream_reply(self, item: tuple[_Slot, int, int, int, bytes]) -> None:
        client, gen, sid, stream_id, reply = item
        if not self._streams_open.pop(sid, False) or client.gen != gen or not client.running:
            return
        if client.stalled_until > self.now:
            self._streams_open[sid] = True  # still open until the client drains it
            client.backlog.append((_STREAM_REPLY, item))
            return
        client.engine.stream_reply(stream_id, reply, self.now)
        self._after(client)

    def _end_stall(self, data: tuple[_Slot, int]) -> None:
        slot, gen = data
        if slot.gen != gen or not slot.running or slot.stalled_until > self.now:
            return
        backlog, slot.backlog = slot.backlog, []
        for kind, item in backlog:
            if kind == _DGRAM:
                self._deliver_datagram(*item)
            elif kind == _STREAM_REQ:
                self._stream_request(item)
            else:
                self._stream_reply(item)
        slot.engine.handle_timer(self.now)
        slot.timer_at = _NEVER
        self._after(slot)

    # -- checkers (outside the system under test) ----------------------------------------------

    def view(self, name: str) -> dict[str, str]:
        return {n: s.label for n, s in self._slots[name].engine.view().items()}

    def converged(self) -> bool:
        """Every running node sees exactly the running nodes alive (others dead, left or unknown)."""
        running = [s for s in self._slots.values() if s.running]
        names = {s.name for s in running}
        return all(self._sees(slot, names) for slot in running)

    def converged_at(self, name: str) -> bool:
        """`name` (running) sees exactly the running nodes alive (the check of `converged`,
        for one node)."""
        return self._sees(self._slots[name], {s.name for s in self._slots.values() if s.running})

    @staticmethod
    def _sees(slot: _Slot, names: set[str]) -> bool:
        view = slot.engine.view()
        alive = [n for n, state in view.items() if state == _ALIVE]
        if len(alive) != len(names) or not names.issuperset(alive):
            return False
        return not any(state == _SUSPECT for state in view.values())

    def tables_converged(self, network: str) -> bool:
        """Every running member of `network` holds the same live entries (and at least one
        running node has joined it)."""
        holders = [
            s.engine.tables.live_entries(network)
            for s in self._slots.values()
            if s.running and s.engine.tables.is_joined(network)
        ]
        return bool(holders) and all(h == holders[0] for h in holders[1:])

    def alive_fraction(self, name: str) -> float:
        """Share of running nodes that `name` currently sees alive."""
        running = {s.name for s in self._slots.values() if s.running}
        view = self._slots[name].engine.view()
        return sum(1 for n in running if view.get(n) == _ALIVE) / len(running)
