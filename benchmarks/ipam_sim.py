"""IPAM members in the simulator: each simulated node runs the pure `swimnet.ipam` rules the
way an agent would (used by `bench_ipam` and by the tests in tests/ipam).

What a node does, like the agent's domain layer:
- it joins the IPAM scope (`SCOPE`, every node: the agent's CLUSTER_SCOPE) at start and
  writes its record `record_key(NETWORK, name)` there; endpoints are entries of table
  `ENDPOINTS` in the network's own scope (`NETWORK`, joined when a request arrives, left
  when the last endpoint goes), key = endpoint id, value = the address;
- on every change of its tables (debounced by `debounce` virtual seconds, as the agent's
  refresh) and every `period` seconds it runs `maintain` (re-putting its record unchanged
  while it waits on others, every REPUBLISH_AFTER seconds) and serves its request queue
  (first come, first served; a request that waits longer than its timeout fails cleanly,
  a pinned one releasing its claim);
- `synced` turns on at its first successful sync of the IPAM scope since it started (the
  first node bootstraps); every period while `needs_sync` (unsynced, or defending
  remembered claims) it asks for a sync of the scope;
- requests wait until the node knows the network: the definition (an entry of table
  `NETWORKS` in the scope, written by its creator, re-published by any member that knows
  it and sees none) reached it once (the agent learns network definitions from the
  cluster: new agents cut off together from the rest know no network to allocate in);
- its "state directory" (`persisted`) holds its record, its memory and its endpoints,
  written before they are published; a restart restores them (the record and endpoints
  are re-published, the memory is given to the rules with `since` = the restart time).
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import attrs

from swimnet.engine import EngineEvent
from swimnet.ipam import (
    IPAM_TABLE,
    REPUBLISH_AFTER,
    Granted,
    IpamError,
    IpamView,
    Memory,
    Pool,
    Use,
    allocate,
    maintain,
    needs_sync,
    record_key,
    release,
    remember,
    view_from_tables,
    waits_on_others,
)
from swimnet.layers.events import SyncFinished
from swimnet.membership.events import MemberEvent
from swimnet.sim import Simulation
from swimnet.tables.changes import TableChange
from swimnet.wire.messages import State

SCOPE = "cluster"
NETWORKS = "networks"
NETWORK = "net"
ENDPOINTS = "ep"
DEBOUNCE = 0.05
PERIOD = 1.0
TIMEOUT = 20.0


@attrs.define
class Request:
    """One endpoint create, as a client sees it."""

    node: str
    want: ipaddress.IPv4Address | None
    issued: float
    deadline: float
    outcome: str = "waiting"
    """waiting, granted, refused (an IpamError), timeout, lost (its node crashed first)."""
    address: ipaddress.IPv4Address | None = None
    endpoint: str | None = None
    done: float | None = None
    error: IpamError | None = None
    reasons: Counter[str] = attrs.field(factory=Counter)
    waiting_for: tuple[str, ...] = ()
    """Whom it last waited for."""


@attrs.define
class Persisted:
    """A node's state directory."""

    record: bytes | None = None
    memory: bytes | None = None
    knows_network: bool = False
    """It learnt the network's definition (the agent's cache of network records)."""
    endpoints: dict[str, str] = attrs.field(factory=dict)
    """endpoint id -> address."""


class IpamCluster:
    """The IPAM members of a `Simulation` (see the module docstring)."""

    def __init__(
        self,
        sim: Simulation,
        subnet: str,
        gateway: str | None = None,
        *,
        reap_interval: float = 1800.0,
        debounce: float = DEBOUNCE,
        period: float = PERIOD,
        timeout: float = TIMEOUT,
    ) -> None:
        self.sim = sim
        self.pool = Pool(subnet, gateway)
        self.reap_interval = reap_interval
        self.debounce = debounce
        self.period = period
        self.timeout = timeout
        self.persisted: dict[str, Persisted] = {}
        self.rngs: dict[str, random.Random] = {}
        self.synced: dict[str, bool] = {}
        self.memory: dict[str, Memory] = {}
        self.queues: dict[str, deque[Request]] = {}
        self.requests: list[Request] = []
        self.notes: Counter[str] = Counter()
        self.writes = 0
        self.republished = 0
        self.decommissioned: set[str] = set()
        self._put_at: dict[str, float] = {}
        self.on_done: Callable[[Request], None] | None = None
        """Told of every answered request (at the same virtual time, after the step that
        answered it): a client issuing its next request back to back."""
        self._life: dict[str, int] = {}
        self._scheduled: dict[str, float] = {}
        self._counter = 0
        self._hook: Callable[[float, str, EngineEvent], None] | None = sim.on_event
        sim.on_event = self._on_event

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, name: str, *, bootstrap: bool = False) -> None:
        """A node starts taking part (its engine already runs and joined the cluster)."""
        seed = int.from_bytes(hashlib.blake2b(f"{self.sim.seed}/{name}".encode(), digest_size=8).digest())
        self.rngs[name] = random.Random(seed)
        self.persisted.setdefault(name, Persisted())
        self.synced[name] = bootstrap
        if bootstrap:
            self.persisted[name].knows_network = True  # it created the network
        self.memory[name] = Memory()
        self.queues.setdefault(name, deque())
        self._life[name] = self._life.get(name, 0) + 1
        self.sim.node(name).join_network(SCOPE)
        self._periodic(name, self._life[name])

    def crash(self, name: str) -> None:
        self.sim.crash(name)
        for r in self.queues.get(name, ()):
            self._answer(r, "lost")
        self.queues[name] = deque()

    def restart(self, name: str, seeds: list[str] | None = None) -> None:
        """A crashed node comes back as its agent would: same name, state directory restored."""
        if name in self.decommissioned:
            raise ValueError(f"{name} was decommissioned")
        saved = self.persisted.setdefault(name, Persisted())
        self.sim.restart(name)  # joins one running node; then all of them (some may be cut off)
        others = [n for n in self.sim.running() if n != name]
        if seeds or others:
            self.sim.join(name, seeds or others)
        self.start(name)
        node = self.sim.node(name)
        if saved.record is not None:
            node.table(SCOPE, IPAM_TABLE).put(record_key(NETWORK, name), saved.record)
        if saved.memory is not None:
            self.memory[name] = Memory.decode(saved.memory, self.sim.now, self.pool.size)
        if saved.endpoints:
            node.join_network(NETWORK)
            for endpoint, address in sorted(saved.endpoints.items()):
                node.table(NETWORK, ENDPOINTS).put(endpoint, address.encode())

    def leave(self, name: str) -> None:
        """The host is decommissioned: graceful leave, the process stops, its state directory
        is wiped (it does not come back: `restart` refuses it)."""
        self.sim.leave(name)
        self.sim.run_until(lambda: self.sim.engine(name).leave_done, 10.0)
        self.crash(name)
        self.persisted[name] = Persisted()
        self.decommissioned.add(name)

    # -- requests ------------------------------------------------------------------------------

    def request(self, name: str, want: str | None = None, timeout: float | None = None) -> Request:
        """Queue an endpoint create on `name` (served at once if it is first in line)."""
        now = self.sim.now
        r = Request(name, None if want is None else ipaddress.IPv4Address(want), now,
                    now + (self.timeout if timeout is None else timeout))  # fmt: skip
        self.requests.append(r)
        self.queues[name].append(r)
        if not self.sim.engine(name).tables.is_joined(NETWORK):
            self.sim.node(name).join_network(NETWORK)  # as the agent's hold(): see the endpoints
        if len(self.queues[name]) == 1:
            self.serve(name)
        self.sim.at(r.deadline, lambda: self.serve(name))
        return r

    def remove(self, name: str, endpoint: str) -> None:
        """Remove one of `name`'s endpoints (endpoint rm)."""
        saved = self.persisted[name]
        address = saved.endpoints.pop(endpoint)
        node = self.sim.node(name)
        node.table(NETWORK, ENDPOINTS).delete(endpoint)
        m = release(self.view(name), self.rngs[name], ipaddress.IPv4Address(address))
        self._write(name, m.write)
        if not saved.endpoints and not self.queues[name]:
            node.leave_network(NETWORK)

    # -- the agent loop ------------------------------------------------------------------------

    def view(self, name: str) -> IpamView:
        tables = self.sim.engine(name).tables
        saved = self.persisted[name]
        used: dict[int, Use] = {}
        if tables.is_joined(NETWORK):
            for e in tables.entries(NETWORK):
                if e.table == ENDPOINTS and not e.deleted:
                    used.setdefault(self.pool.offset(ipaddress.IPv4Address(e.value.decode())),
                                    Use(e.owner, f"endpoint {e.key} on {e.owner}"))  # fmt: skip
        mine = {self.pool.offset(ipaddress.IPv4Address(a)) for a in saved.endpoints.values()}
        members = self.sim.engine(name).members()
        departed = [m.name for m in members if m.state == State.LEFT]
        return view_from_tables(
            tables,
            scope=SCOPE,
            network=NETWORK,
            me=name,
            pool=self.pool,
            used=used,
            mine=mine,
            synced=self.synced[name],
            memory=self.memory[name],
            departed=departed,
            now=self.sim.now,
            reap_interval=self.reap_interval,
        )

    def _write(self, name: str, data: bytes | None) -> None:
        if data is None:
            return
        self.persisted[name].record = data  # persisted before it is published
        self.sim.node(name).table(SCOPE, IPAM_TABLE).put(record_key(NETWORK, name), data)
        self.writes += 1
        self._put_at[name] = self.sim.now

    def serve(self, name: str) -> None:
        """Maintain, then serve the request queue (head first) until one waits."""
        if name not in self.sim.running():
            return
        view = self.view(name)
        m = maintain(view, self.rngs[name])
        for note in m.notes:
            self.notes[note.split(" ")[0]] += 1
        self._write(name, m.write)
        saved_record = self.persisted[name].record
        if (
            m.write is None
            and saved_record is not None
            and self.sim.now - self._put_at.get(name, 0.0) >= REPUBLISH_AFTER
            and waits_on_others(view)
        ):
            self._write(name, saved_record)  # unchanged: gossiped again
            self.republished += 1
        queue = self.queues[name]
        saved = self.persisted[name]
        definition = self.sim.engine(name).tables.get(SCOPE, NETWORKS, NETWORK)
        if definition is not None:
            saved.knows_network = True
        elif saved.knows_network:  # re-published by a member that knows it (the agent adopts it)
            self.sim.node(name).table(SCOPE, NETWORKS).put(NETWORK, self.pool.subnet.exploded.encode())
        while queue:
            r = queue[0]
            if self.sim.now >= r.deadline:
                self._answer(queue.popleft(), "timeout")
                if r.want is not None and saved.knows_network:
                    self._write(name, release(self.view(name), self.rngs[name], r.want).write)
                continue
            if not saved.knows_network:
                break
            try:
                d = allocate(self.view(name), self.rngs[name], r.want)
            except IpamError as exc:
                r.error = exc
                self._answer(queue.popleft(), "refused")
                continue
            self._write(name, d.write)
            for note in d.notes:
                self.notes[note.split(" ")[0]] += 1
            if not isinstance(d, Granted):
                r.reasons[d.reason] += 1
                r.waiting_for = d.waiting_for
                break
            self._counter += 1
            endpoint = f"{name}-ep{self._counter}"
            saved = self.persisted[name]
            saved.endpoints[endpoint] = str(d.address)
            node = self.sim.node(name)
            if not self.sim.engine(name).tables.is_joined(NETWORK):
                node.join_network(NETWORK)
            node.table(NETWORK, ENDPOINTS).put(endpoint, str(d.address).encode())
            r.address, r.endpoint = d.address, endpoint
            self._answer(queue.popleft(), "granted")
        self.memory_snapshot(name)

    def _answer(self, r: Request, outcome: str) -> None:
        r.outcome, r.done = outcome, self.sim.now
        hook = self.on_done
        if hook is not None:
            self.sim.at(self.sim.now, lambda: hook(r))

    def memory_snapshot(self, name: str) -> None:
        """Persist what the node knows of the others' claims (the agent would, on change)."""
        data = remember(self.view(name)).encode()
        self.persisted[name].memory = data

    def _on_event(self, now: float, observer: str, event: EngineEvent) -> None:
        if self._hook is not None:
            self._hook(now, observer, event)
        if observer not in self.synced:
            return
        if isinstance(event, SyncFinished):
            if event.network == SCOPE and event.ok and not self.synced[observer]:
                self.synced[observer] = True
                self._soon(observer)
        elif isinstance(event, TableChange | MemberEvent):
            self._soon(observer)

    def _soon(self, name: str) -> None:
        """Serve `name` after the debounce (at most one pending wake-up)."""
        when = self.sim.now + self.debounce
        if self._scheduled.get(name, -1.0) >= self.sim.now:
            return
        self._scheduled[name] = when
        life = self._life[name]
        self.sim.at(when, lambda: self._wake(name, life))

    def _wake(self, name: str, life: int) -> None:
        if self._life.get(name) == life:
            self.serve(name)

    def _periodic(self, name: str, life: int) -> None:
        def tick() -> None:
            if self._life.get(name) != life:
                return
            if name in self.sim.running() and needs_sync(self.view(name)):
                # unsynced, or defending remembered claims: ask rather than wait for anti-entropy
                self.sim.call(name, lambda e: e.sync_network(SCOPE, self.sim.now))
            self.serve(name)
            self.sim.at(self.sim.now + self.period, tick)

        self.sim.at(self.sim.now + self.period, tick)

    # -- checkers (outside the system under test) ---------------------------------------------

    def live_allocations(self) -> dict[str, tuple[str, str]]:
        """endpoint id -> (node, address) of every allocation handed out and not removed
        (crashed nodes' included: their agents keep them)."""
        return {ep: (n, a) for n, saved in self.persisted.items() for ep, a in saved.endpoints.items()}

    def duplicates(self) -> dict[str, list[str]]:
        """address -> endpoint ids, for addresses held by more than one live allocation."""
        by: dict[str, list[str]] = {}
        for ep, (_, address) in sorted(self.live_allocations().items()):
            by.setdefault(address, []).append(ep)
        return {a: eps for a, eps in by.items() if len(eps) > 1}

    def stats(self) -> dict[str, Any]:
        return {"writes": self.writes, "republished": self.republished, "notes": dict(self.notes)}
