"""A real network node: the sans-IO Engine driven by trio (non-blocking sockets, a timer).

Rules:
- the engine is called only from here, always with now = trio.current_time(), and after
  every call `_flush()` sends what it queued (datagrams at once, stream exchanges as tasks),
  hands its events to the subscriptions and moves the timer to engine.next_deadline();
  `_flush()` never awaits, so no other task can run between an engine call and its output;
- datagrams and the timer: `_flush` keeps the node's timer deadline equal to
  engine.next_deadline() (earlier wakes it sooner, later saves a useless wake-up); with the
  run's `Reactor` (one shared epoll) the UDP socket is served by a callback, one datagram
  per call, with no task switch, and the timer is the deadline of the node's reactor watch:
  every node's deadline sits in the reactor's one heap and one timerfd, armed for the
  earliest only, once per reactor step (a probe and its ack served in one step cost two
  heap pushes, no syscall of the node's; one expiry serves every node due); without a
  reactor (no epoll, `shared_reactor=False`) a receive task and a timer task wait on the
  socket and on an `Alarm` (a timerfd) of the node's own; without a timerfd (another OS,
  a test's MockClock) the timer sleeps in a cancel scope whose deadline `_flush` keeps the
  same way; `_close` stops the reactor's callbacks and timer at once, so a crashed node
  sends nothing more;
- tasks in the node's nursery: the reactor watch (or the receive and timer tasks), the TCP
  accept loop (one task per connection), one task per stream exchange we open;
- waiting is event-driven: operations that take time (key operations, table syncs) end with
  a completion event from the engine (`KeyOpFinished`, `SyncFinished`); `_flush` hands it to
  the waiter registered before the operation's output went out; nothing polls;
- nothing a peer sends raises out: the engine, the transport and the stream layer count what
  they refuse; an unexpected exception inside the engine (while it handles peer input or a
  timer) is logged and counted as internal_error_* instead of killing the node;
- leaving the `async with open_node(...)` block normally leaves the cluster gracefully
  (waits until the leave went out, at most leave_timeout); leaving it by an exception or a
  cancellation is a crash: the sockets are closed and nothing more is sent.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Generic, TypeVar

import trio

from swimnet.config import Config, format_address
from swimnet.engine import Engine, EngineEvent, StreamRequest
from swimnet.errors import JoinError, LocalProtocolError
from swimnet.layers.events import KeyOpFinished, SyncFinished
from swimnet.membership.events import MemberEvent
from swimnet.membership.member import Member
from swimnet.runtime import sockstream, streams
from swimnet.runtime.alarm import Alarm
from swimnet.runtime.keys import Keys
from swimnet.runtime.reactor import Reactor, Watch
from swimnet.runtime.resolve import Seed, dedupe, resolve_seed
from swimnet.runtime.subscriptions import Subscription
from swimnet.runtime.transport import Transport, error_name
from swimnet.security.keyops import KeyOpResult
from swimnet.security.keyring import Keyring
from swimnet.tables.changes import TableChange
from swimnet.tables.view import TablesReader
from swimnet.topology.coordinate import Coordinate
from swimnet.wire.limits import MAX_META
from swimnet.wire.messages import Address, State

log = logging.getLogger("swimnet.runtime")

DEFAULT_MAX_STREAMS = 128
"""Concurrent stream exchanges per direction (memberlist allows 128 pending push-pulls)."""
_RECEIVE_BATCH = 64
"""Datagrams read per wake-up of the receive loop before yielding to other tasks."""
_RECEIVE_BUFFER = 1 << 16
"""Bytes read per datagram: more than any UDP payload (MAX_DATAGRAM)."""

T = TypeVar("T")


class _Outcome(Generic[T]):
    """One waiter's result: set once by `_flush` when the completion event comes."""

    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: T | None = None

    def set(self, value: T) -> None:
        if not self.done.is_set():
            self.value = value
            self.done.set()


class Node:
    """One running node; obtain it from `open_node` or `serve_node`, never construct it."""

    def __init__(
        self,
        engine: Engine,
        transport: Transport,
        nursery: trio.Nursery,
        stats: Counter[str],
        *,
        event_buffer: int,
        max_streams: int,
        reactor: Reactor | None,
    ) -> None:
        self._engine = engine
        self._reactor = reactor
        """The run's shared epoll for the socket and the alarm (None: tasks of our own)."""
        self._watch: Watch | None = None
        self._now = trio.lowlevel.current_clock().current_time
        """trio.current_time() without its two wrapper calls (the per-packet paths use it)."""
        self._transport = transport
        self._nursery = nursery
        self._stats = stats
        self._event_buffer = event_buffer
        self._in_limiter = trio.CapacityLimiter(max_streams)
        self._out_limiter = trio.CapacityLimiter(max_streams)
        self._guard = streams.StreamGuard.from_config(engine.config, stats, lambda: engine.policy)
        transport.guard = self._guard
        self._subscriptions: list[Subscription[MemberEvent]] = []
        self._table_subscriptions: list[Subscription[TableChange]] = []
        self._timer_scope: trio.CancelScope | None = None
        self._alarm: Alarm | None = None
        """The node's own timerfd (without the reactor's timers)."""
        self._timed_watch: Watch | None = None
        """The reactor watch whose deadline is the node's timer (with the reactor's timers)."""
        self._key_ops: dict[int, _Outcome[KeyOpResult]] = {}
        self._syncs: dict[str, list[_Outcome[bool]]] = {}
        self._left = False
        self._leave_done = trio.Event()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "left" if self._left else "running"
        return f"<Node {self.name!r} at {format_address(self.address)} ({state})>"

    # -- views -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def config(self) -> Config:
        """The configuration in force: name filled in, real bound and advertised addresses."""
        return self._engine.config

    @property
    def address(self) -> Address:
        """The address both sockets are bound to (the real port when the config said 0)."""
        return self._transport.address

    @property
    def advertise_address(self) -> Address:
        """The address the cluster knows us by (our member's address)."""
        return self._engine.address

    @property
    def local_member(self) -> Member:
        return self._engine.local_member

    def members(self) -> list[Member]:
        """Every member this node knows (itself included), in any state."""
        return self._engine.members()

    def view(self) -> dict[str, State]:
        """Member name -> state, as this node sees it (cheaper than `members()`)."""
        return self._engine.view()

    @property
    def incarnation(self) -> int:
        """Our incarnation number (it grows with every refutation and meta change)."""
        return self._engine.incarnation

    def rtt_estimate(self, member: str) -> float | None:
        """Estimated round-trip time (seconds) to a member from network coordinates."""
        return self._engine.rtt_estimate(member)

    @property
    def coordinate(self) -> Coordinate:
        """Our Vivaldi network coordinate."""
        return self._engine.coordinate

    @property
    def tables(self) -> TablesReader:
        """The replicated tables of the networks this node joined, read-only (write with
        `node.table(net, name)`)."""
        return self._engine.tables

    @property
    def health_score(self) -> int:
        """Lifeguard's local health multiplier score: 0 is healthy."""
        return self._engine.health_score

    @property
    def stats(self) -> Counter[str]:
        """A snapshot of the engine's counters merged with the runtime's."""
        merged = Counter(self._engine.stats)
        merged.update(self._stats)
        return merged

    @property
    def closed(self) -> bool:
        return self._closed

    # -- API -------------------------------------------------------------------------------

    async def join(self, seeds: Iterable[Seed] | Seed) -> int:
        """Push-pull with every seed; returns how many seeds answered.

        Seeds are "host:port" ("host" alone means port 7946, names are resolved) or (host, port)
        tuples. A seed that is this node's own address counts as answered (so a node may be
        given a seed list that includes itself). Raises JoinError when seeds were given and
        none answered; `join([])` returns 0.
        """
        self._check_running()
        if self._left:
            raise LocalProtocolError("join after leave")
        seed_list = _seed_list(seeds)
        family = self._transport.family
        resolved: dict[int, list[Address]] = {}
        failures: list[str] = []

        async def resolve_one(index: int, seed: Seed) -> None:
            try:
                resolved[index] = await resolve_seed(seed, family)
            except OSError as exc:
                self._stats["join_resolve_failed"] += 1
                failures.append(f"{_show(seed)}: cannot resolve ({exc})")

        async with trio.open_nursery() as nursery:
            for index, seed in enumerate(seed_list):
                nursery.start_soon(resolve_one, index, seed)
        own = {self.address, self.advertise_address}
        targets = dedupe([a for addrs in resolved.values() for a in addrs if a not in own])
        answered = set(own)
        if targets:
            answered |= await self._join_exchanges(targets, failures)
        reached = sum(1 for addrs in resolved.values() if answered.intersection(addrs))
        self._stats["join_seeds_reached"] += reached
        if seed_list and reached == 0:
            raise JoinError("no seed answered: " + "; ".join(failures or ["no address"]))
        return reached

    async def _join_exchanges(self, targets: list[Address], failures: list[str]) -> set[Address]:
        engine = self._engine
        engine.join(targets, trio.current_time())
        joins: list[StreamRequest] = []
        for request in engine.streams_to_open():
            if request.kind == "join":
                joins.append(request)
            else:
                self._nursery.start_soon(self._exchange, request)
        self._flush()
        answered: set[Address] = set()

        async def one(request: StreamRequest) -> None:
            addr = request.addr
            timeout = self.config.tcp_timeout
            reply, failure = await streams.request(
                self._transport, addr, request.data, timeout=timeout, limiter=self._out_limiter
            )
            if reply is None:
                self._stream_failed(request)
                failures.append(f"{format_address(addr)}: no answer ({failure})")
            elif self._stream_reply(reply, request):
                answered.add(addr)
            else:
                failures.append(f"{format_address(addr)}: invalid reply")
            self._flush()

        async with trio.open_nursery() as nursery:
            for request in joins:
                nursery.start_soon(one, request)
        return answered

    async def set_meta(self, meta: bytes) -> None:
        """Publish new metadata (at most MAX_META bytes) with a higher incarnation."""
        self._check_running()
        if self._left:
            raise LocalProtocolError("set_meta after leave")
        if not isinstance(meta, bytes) or len(meta) > MAX_META:
            raise LocalProtocolError(f"meta: must be bytes of at most {MAX_META} bytes")
        self._engine.set_meta(meta, trio.current_time())
        self._flush()
        await trio.lowlevel.checkpoint()

    async def leave(self) -> None:
        """Broadcast our leave and wait until it went out (at most about leave_timeout).

        The node keeps running (it answers probes) until its `async with` block exits; it
        cannot join or change its meta any more.
        """
        self._check_running()
        if not self._left:
            self._left = True
            self._engine.leave(trio.current_time())
            self._flush()
        with trio.move_on_after(self.config.leave_timeout + 1.0):
            await self._leave_done.wait()

    def subscribe(self, buffer: int | None = None) -> Subscription[MemberEvent]:
        """Membership events, in order, for use as `async with node.subscribe() as events:`.

        Only events that happen after the block is entered are delivered. Overflow policy:
        each subscription buffers at most `buffer` undelivered events (default: open_node's
        `event_buffer`, 1024); when an event arrives at a full buffer, the OLDEST buffered
        event is discarded and `subscription.dropped` is incremented. The protocol never waits
        for a subscriber. A subscriber that finds `dropped` grown has missed events and should
        resynchronise from `node.members()`. Iteration ends when the block exits or the node
        closes (after the buffered events are drained).
        """
        return Subscription(
            self._event_buffer if buffer is None else buffer,
            partial(self._add_subscription, self._subscriptions),
            partial(self._remove_subscription, self._subscriptions),
        )

    def subscribe_tables(self, buffer: int | None = None) -> Subscription[TableChange]:
        """Table changes (every network, in order), with the same overflow policy as
        `subscribe`; resynchronise from `node.tables` after drops."""
        return Subscription(
            self._event_buffer if buffer is None else buffer,
            partial(self._add_subscription, self._table_subscriptions),
            partial(self._remove_subscription, self._table_subscriptions),
        )

    @property
    def keys(self) -> Keys:
        """Cluster-wide keyring operations: install / use / remove / list."""
        engine = self._engine
        return Keys(self._key_op, lambda: engine.keyring, lambda: engine.key_version)

    @property
    def keyring(self) -> Keyring | None:
        """This node's keyring (local operations only; see `keys` for cluster-wide ones)."""
        return self._engine.keyring

    def table(self, network: str, table: str) -> Table:
        """A handle on one replicated table of a network this node has joined."""
        return Table(self, network, table)

    def watch(self, network: str, table: str, buffer: int | None = None) -> Subscription[TableChange]:
        """`async with node.watch(net, table) as events`: first a CREATED change for every
        visible entry (the snapshot), then the table's changes as they happen (derived from
        state, not from wire messages), with the overflow policy of `subscribe`."""
        self._check_running()
        snapshot = self._engine.tables.snapshot(network, table)
        return Subscription(
            self._event_buffer if buffer is None else max(buffer, 1),
            partial(self._add_subscription, self._table_subscriptions),
            partial(self._remove_subscription, self._table_subscriptions),
            accept=lambda change: change.network == network and change.table == table,
            initial=snapshot,
        )

    # -- tables and keys -----------------------------------------------------------------------

    def _call(self, call: Callable[[Engine, float], T]) -> T:
        """Run `call(engine, now)` and send what it queued."""
        self._check_running()
        try:
            return call(self._engine, trio.current_time())
        finally:
            self._flush()

    async def join_network(self, network: str) -> list[TableChange]:
        """Hold `network`'s tables from now on (synced with a member of it at once)."""
        changes = self._call(lambda engine, now: engine.join_network(network, now))
        await trio.lowlevel.checkpoint()
        return changes

    async def leave_network(self, network: str) -> list[TableChange]:
        changes = self._call(lambda engine, now: engine.leave_network(network, now))
        await trio.lowlevel.checkpoint()
        return changes

    async def sync_network(self, network: str, timeout: float | None = None) -> bool:
        """Sync `network`'s tables with one live peer of it now and wait until that ended
        (or another sync of the network did); False if there was no peer, the sync failed,
        or `timeout` (default tcp_timeout) passed."""
        self._check_running()
        outcome: _Outcome[bool] = _Outcome()
        try:
            if not self._engine.sync_network(network, trio.current_time()):
                return False
            self._syncs.setdefault(network, []).append(outcome)
        finally:
            self._flush()
        with trio.move_on_after(self.config.tcp_timeout if timeout is None else timeout):
            await outcome.done.wait()
        waiting = self._syncs.get(network)
        if waiting is not None and outcome in waiting:
            waiting.remove(outcome)
            if not waiting:
                del self._syncs[network]
        return outcome.value is True

    async def _key_op(self, action: str, key_or_id: bytes | str, timeout: float) -> KeyOpResult:
        """Run a cluster-wide keyring operation to its end (see `keys`)."""
        self._check_running()
        outcome: _Outcome[KeyOpResult] = _Outcome()
        try:
            op_id = self._engine.key_op(action, key_or_id, trio.current_time(), timeout)
            self._key_ops[op_id] = outcome
        finally:
            self._flush()
        try:
            with trio.move_on_after(timeout + 1.0):
                await outcome.done.wait()
        finally:
            self._key_ops.pop(op_id, None)
        if outcome.value is None:
            raise LocalProtocolError(f"key {action}: no result after {timeout} s")
        return outcome.value

    # -- plumbing --------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._closed:
            raise LocalProtocolError("the node is closed")

    def _add_subscription(self, subs: list[Any], sub: Subscription[Any]) -> None:
        if self._closed:
            sub.close()
        else:
            subs.append(sub)

    def _remove_subscription(self, subs: list[Any], sub: Subscription[Any]) -> None:
        if sub in subs:
            subs.remove(sub)

    def _flush(self) -> None:
        """Carry out everything the engine queued; see the module rules."""
        engine = self._engine
        out = engine.datagrams_to_send()
        if out and not self._transport.closed:
            send = self._transport.send_datagram
            for addr, data in out:
                send(addr, data)
        for request in engine.streams_to_open():
            if not self._closed:
                self._nursery.start_soon(self._exchange, request)
        events = engine.events()
        if events:
            self._dispatch(events)
        timed = self._timed_watch
        if timed is not None:
            timed.set_deadline(engine.next_deadline())  # a no-op when unchanged
        elif (alarm := self._alarm) is not None:
            alarm.set(engine.next_deadline())  # a no-op when unchanged
        else:
            scope = self._timer_scope
            if scope is not None:
                deadline = engine.next_deadline()
                if deadline is None:
                    deadline = math.inf
                if deadline != scope.deadline:  # earlier: wake sooner; later: skip a useless wake-up
                    scope.deadline = deadline
        if self._left and engine.leave_done:
            self._leave_done.set()

    def _dispatch(self, events: list[EngineEvent]) -> None:
        members, tables = tuple(self._subscriptions), tuple(self._table_subscriptions)
        for event in events:
            if type(event) is TableChange:
                for table_sub in tables:
                    table_sub.push(event)
            elif type(event) is KeyOpFinished:
                key_op = self._key_ops.get(event.op_id)
                if key_op is not None:
                    key_op.set(event.result)
            elif type(event) is SyncFinished:
                for sync in self._syncs.pop(event.network, ()):
                    sync.set(event.ok)
            else:
                for member_sub in members:
                    member_sub.push(event)  # type: ignore[arg-type]

    def _internal_error(self, where: str) -> None:
        self._stats[f"internal_error_{where}"] += 1
        log.exception("%s: engine failed in %s (input dropped)", self.name, where)

    def _stream_reply(self, reply: bytes, request: StreamRequest) -> bool:
        """Hand a reply to the engine; True if it accepted it."""
        try:
            return self._engine.stream_reply(request.id, reply, trio.current_time())
        except Exception:
            self._internal_error("stream_reply")
            return False

    def _stream_failed(self, request: StreamRequest) -> None:
        try:
            self._engine.stream_failed(request.id, trio.current_time())
        except Exception:
            self._internal_error("stream_failed")

    async def _exchange(self, request: StreamRequest) -> None:
        """A stream exchange the engine asked for."""
        reply, _ = await streams.request(
            self._transport,
            request.addr,
            request.data,
            timeout=self.config.tcp_timeout,
            limiter=self._out_limiter,
        )
        if reply is None:
            self._stream_failed(request)
        else:
            self._stream_reply(reply, request)
        self._flush()

    def _handle_stream(self, request: bytes, peer: Address) -> bytes | None:
        try:
            reply = self._engine.handle_stream(request, peer, trio.current_time())
        except Exception:
            self._internal_error("handle_stream")
            reply = None
        self._flush()
        return reply

    def _receiver(self, batch: int) -> Callable[[], None]:
        """The receive step: read and handle datagrams until the socket would block, at most
        `batch` of them. The reactor's callback reads one (the reactor calls it again while
        the socket stays readable, and a read that would block costs a syscall and an
        exception); `_receive_loop` reads _RECEIVE_BATCH per wake-up."""
        sock = self._transport.udp
        buf = bytearray(_RECEIVE_BUFFER)
        view = memoryview(buf)
        stats = self._stats
        receive = self._engine.receive_datagram
        now = self._now
        flush = self._flush
        internal_error = self._internal_error

        def receive_batch() -> None:
            for _ in range(batch):
                try:
                    size, source = sock.recvfrom_into(buf)
                except BlockingIOError:
                    return
                except OSError as exc:  # e.g. a queued ICMP error: count it, keep reading
                    stats["receive_errors"] += 1
                    stats[f"receive_error_{error_name(exc)}"] += 1
                    return
                stats["udp_packets_received"] += 1
                stats["udp_bytes_received"] += size
                if len(source) != 2:  # IPv6: (host, port, flowinfo, scope_id)
                    source = (source[0], source[1])
                try:  # an engine failure on peer input is counted, never raised
                    receive(bytes(view[:size]), source, now())
                except Exception:
                    internal_error("receive_datagram")
                flush()

        return receive_batch

    async def _receive_loop(self) -> None:
        """The receive loop without a reactor: a task waiting on the socket."""
        fd = self._transport.udp.fileno()
        receive_batch = self._receiver(_RECEIVE_BATCH)
        wait_readable = trio.lowlevel.wait_readable
        while True:
            await wait_readable(fd)
            receive_batch()

    async def _serve_reactor(self, reactor: Reactor) -> None:
        """The socket (and the timer, if the reactor has timers) served by the run's reactor
        until the node closes; a runtime failure inside a callback is re-raised here (it
        crashes the node)."""
        if self._closed:
            return
        timer = self._fire_timer if reactor.has_timers else None
        watch = self._watch = reactor.watch({self._transport.udp.fileno(): self._receiver(1)}, timer)
        try:
            if timer is not None:
                self._timed_watch = watch
                watch.set_deadline(self._engine.next_deadline())  # from now on `_flush` keeps it
            await watch.wait_failed()
        finally:
            self._timed_watch = None
            watch.close()

    async def _timer_loop(self, alarm: Alarm | None) -> None:
        """The timer; `alarm` (opened with the node, so the node holds its descriptor from
        its first moment) is closed when the loop ends."""
        if alarm is None:
            await self._scope_timer_loop()
            return
        self._alarm = alarm
        alarm.set(self._engine.next_deadline())  # from now on `_flush` keeps it current
        try:
            while True:
                await alarm.wait()
                self._fire_timer()
        finally:
            self._alarm = None
            alarm.close()

    async def _scope_timer_loop(self) -> None:
        """The timer without a timerfd: a cancel scope per deadline."""
        engine = self._engine
        while True:
            deadline = engine.next_deadline()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            self._fire_timer()

    def _fire_timer(self) -> None:
        """A deadline passed: the engine's timers, then what they queued goes out."""
        try:
            self._engine.handle_timer(self._now())
        except Exception:
            self._internal_error("handle_timer")
        self._flush()

    def _start(self) -> None:
        reactor = self._reactor
        if reactor is None:
            self._nursery.start_soon(self._receive_loop)
            self._nursery.start_soon(self._timer_loop, Alarm.open())
        else:
            self._nursery.start_soon(self._serve_reactor, reactor)
            if not reactor.has_timers:
                self._nursery.start_soon(self._scope_timer_loop)
        handler = partial(
            streams.serve_connection,
            handle=self._handle_stream,
            stats=self._stats,
            timeout=self.config.tcp_timeout,
            limiter=self._in_limiter,
            guard=self._guard,
        )
        self._nursery.start_soon(sockstream.serve, self._transport.tcp, handler, self._stats)

    def _close(self) -> None:
        self._closed = True
        if self._watch is not None:  # no reactor callback from now on (a crash sends nothing more)
            self._watch.close()
        subs: list[Subscription[Any]] = [*self._subscriptions, *self._table_subscriptions]
        for sub in subs:
            sub.close()
        self._subscriptions.clear()
        self._table_subscriptions.clear()

    async def _shutdown_leave(self) -> None:
        with trio.move_on_after(self.config.leave_timeout + 2.0):
            await self.leave()


def _seed_list(seeds: Iterable[Seed] | Seed) -> list[Seed]:
    if isinstance(seeds, str):
        return [seeds]
    if isinstance(seeds, tuple) and len(seeds) == 2 and isinstance(seeds[1], int):
        return [(str(seeds[0]), seeds[1])]
    return list(seeds)


def _show(seed: Seed) -> str:
    return seed if isinstance(seed, str) else format_address(seed)


class Table:
    """One replicated table of one network, as this node sees it (`node.table(net, name)`)."""

    def __init__(self, node: Node, network: str, table: str) -> None:
        self.node = node
        self.network = network
        self.table = table

    async def put(self, key: str, value: bytes) -> list[TableChange]:
        """Create or update our entry (LocalProtocolError if the network is not joined)."""
        changes = self.node._call(lambda e, now: e.table_put(self.network, self.table, key, value, now))
        await trio.lowlevel.checkpoint()
        return changes

    async def delete(self, key: str) -> list[TableChange]:
        changes = self.node._call(lambda e, now: e.table_delete(self.network, self.table, key, now))
        await trio.lowlevel.checkpoint()
        return changes

    def get(self, key: str) -> bytes | None:
        return self.node.tables.get(self.network, self.table, key)

    def items(self) -> dict[str, bytes]:
        return self.node.tables.items(self.network, self.table)
