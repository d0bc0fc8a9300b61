"""The agent's address management: `swimnet.ipam`'s rules run over the node's tables.

`AgentIpam` is the one place the agent decides addresses. Its API (also the Docker
plugin's):

- `await allocate_address(network, pinned=None, field="ip")` -> the address (str, no
  prefix): a free address of the network's subnet, or `pinned`; it is then reserved for
  this agent (in `ipam.json`, so across restarts) until an endpoint or a VIP of this agent
  holds it (`endpoint create --ip ADDRESS` / `service create --vip ADDRESS` consume the
  reservation instead of claiming the address again) or `release_address` gives it back.
  (The agent's own creates pass durable=False: their reservation lives in memory only,
  for the moment between the grant and the endpoint or VIP being persisted.)
  Refusals are OperationErrors naming `field`: NOT_FOUND (no such network), INVALID (outside
  the subnet), CONFLICT (the gateway, network or broadcast address; taken by an endpoint,
  a VIP or another agent's claim; `network NAME has no free address`), UNAVAILABLE (the
  votes it needs did not come within `wait` seconds, 10 by default: the message names the
  agents it waited for; a pinned address's claim is withdrawn), FAILED (the state
  directory cannot be written). Nothing is reserved after a refusal.
- `await release_address(network, address)`: forget a reservation and drop this agent's
  single-address claim on it, if any (an address of one of its blocks just becomes free).

Rules (the package docstring of `swimnet.ipam` gives the safety argument):
- one decision at a time (`lock`, this module's own: never the overlay's lock, so a request
  that waits for votes never holds back the refresh, nor this agent's own votes);
- `mine` (what the rules count as this agent's allocations) = its local endpoints'
  addresses, the VIPs of the services it owns, the reservations and the addresses it
  still has to adopt; `used` = every endpoint and VIP address of the network in the tables
  here (hidden ones of failed agents included: reserved until reaped), and `freed` the
  addresses only deleted ones held (their tombstones: an allocation waits for another
  agent's release of those rather than call the network full), both read only when this
  agent holds the network's scope (it always does to allocate there);
- every record is saved (`IpamStore.save_ipam`) before it is put in the IPAM table, and
  what the agent knows of the others' claims (`remember`) is saved when it changes;
- maintenance (votes, confirmations, withdrawals, releases, adoptions) runs in `run()`:
  woken by table changes of the IPAM table, the network definitions and the endpoint and
  service tables (debounced, `DEBOUNCE`); a timer runs only while something waits on
  others (then the record is re-put every REPUBLISH_AFTER seconds) or a sync of the
  cluster scope is due (`needs_sync`: every `SYNC_EVERY` seconds);
- a restart re-publishes the saved records (`restore`; after a graceful leave the claims
  are voted on again and every local address and owned VIP is adopted), and defends the
  remembered claims (`Memory`, since the restart); nothing is claimed before the first
  successful sync of the cluster scope (`synced`), unless the agent started alone;
- a network whose definition is deleted loses this agent's record (deleted from the table
  and from the state directory).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import math
import random
from collections.abc import Iterable, Iterator, Mapping

import trio

from swimnet.agent.domain.cluster import Cluster
from swimnet.agent.domain.local_endpoints import LocalEndpoints
from swimnet.agent.domain.ports import IpamStore, SavedIpam
from swimnet.agent.domain.tables_view import TablesView
from swimnet.agent.errors import conflict, failed, not_found, unavailable
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import DecodeError, LocalProtocolError
from swimnet.ipam import (
    IPAM_TABLE,
    REPUBLISH_AFTER,
    Granted,
    IpamError,
    IpamView,
    Memory,
    Pool,
    Use,
    adopt,
    allocate,
    freed_from_entries,
    maintain,
    needs_sync,
    raw_records,
    record_key,
    release,
    remember,
    restore,
    uses_from_entries,
    view_from_tables,
    waits_on_others,
)
from swimnet.overlay import CLUSTER_SCOPE, NETWORKS_TABLE, PEERS_TABLE, SERVICES_TABLE, NetworkRecord
from swimnet.overlay.model import EndpointRecord, ServiceRecord
from swimnet.tables.changes import TableChange
from swimnet.tables.entry import Entry
from swimnet.wire.messages import State

log = logging.getLogger(LOGGER)

WAIT = 10.0
"""How long an allocation waits for the votes it needs, by default."""
DEBOUNCE = 0.05
SYNC_EVERY = 2.0
"""Seconds between syncs of the cluster scope while `needs_sync` holds."""


@functools.lru_cache(maxsize=65536)
def _decoded(table: str, key: str, owner: str, value: bytes) -> tuple[str, str] | None:
    try:
        if table == PEERS_TABLE:
            endpoint = EndpointRecord.decode(value)
            return endpoint.ip, f"endpoint {endpoint.name!r} ({key}) on {owner}"
        if table == SERVICES_TABLE:
            service = ServiceRecord.decode(value)
            return None if service.vip is None else (service.vip, f"the VIP of service {key!r}")
    except DecodeError:
        return None
    return None


def address_of(entry: Entry) -> tuple[str, str] | None:
    """(address, label) of an endpoint or services entry (None: it holds no address)."""
    return _decoded(entry.table, entry.key, entry.owner, entry.value)


def _offsets(pool: Pool, addresses: Iterable[str]) -> set[int]:
    out = set()
    for text in addresses:
        address = ipaddress.IPv4Address(text.split("/")[0])
        if address in pool.subnet:
            out.add(pool.offset(address))
    return out


class AgentIpam:
    """This agent's IPAM member (see the module docstring)."""

    def __init__(
        self,
        cluster: Cluster,
        view: TablesView,
        store: IpamStore,
        local: LocalEndpoints,
        *,
        saved: Mapping[str, SavedIpam] | None = None,
        left: bool = False,
        rng: random.Random | None = None,
        wait: float = WAIT,
    ) -> None:
        self.cluster = cluster
        self.view = view
        self.store = store
        self.local = local
        self.me = cluster.name
        self.rng = rng if rng is not None else random.Random()
        self.wait = wait
        self.lock = trio.Lock()
        self.saved: dict[str, SavedIpam] = dict(saved or {})
        self.left = left
        self.synced = False
        """A sync of the cluster scope succeeded since the start (or the agent is alone)."""
        self.memory: dict[str, Memory] = {}
        self.adopting: dict[str, set[str]] = {}
        """Addresses (of ours) to claim again: after a graceful leave, or adopted services' VIPs."""
        self.transient: dict[str, set[str]] = {}
        """Reservations kept in memory only (`allocate_address(durable=False)`)."""
        self.allocating: dict[str, int] = {}
        """Network -> allocations in progress (the overlay keeps holding its scope)."""
        self.stats: dict[str, int] = {"granted": 0, "waits": 0, "gave_up": 0, "writes": 0}
        self._changed = trio.Event()
        """Set (and replaced) at every relevant change: what waiting allocations wait on."""
        self._wake_loop = trio.Event()
        self._put_at: dict[str, float] = {}
        self._timer = math.inf
        self._next_sync = 0.0

    # -- the API ------------------------------------------------------------------------------

    async def allocate_address(
        self,
        network: str,
        pinned: str | None = None,
        *,
        field: str = "ip",
        wait: float | None = None,
        durable: bool = True,
    ) -> str:
        """A free address of `network` (or `pinned`), reserved for this agent (see the module
        docstring for the refusals). `durable=False` (the agent's own endpoint and service
        creates, which persist their holder right after): the reservation is kept in memory
        only, sparing a write of the state directory per create."""
        wait = self.wait if wait is None else wait
        want = None if pinned is None else ipaddress.IPv4Address(pinned.split("/")[0])
        deadline = trio.current_time() + wait
        with self.in_flight(network):
            while True:
                changed = self._changed
                async with self.lock:
                    if want is not None and str(want) in self.reserved(network, durable_only=True):
                        return str(want)  # reserved by an earlier allocate_address
                    view = self._view(network, required=True)
                    assert view is not None
                    try:
                        d = allocate(view, self.rng, want, field=field)
                    except IpamError as exc:
                        raise conflict(exc.message, exc.field) from None
                    except LocalProtocolError:  # not attached to the cluster scope yet
                        raise unavailable(f"{field}: the agent is starting: try again", field) from None
                    await self._write(network, d.write)
                    if isinstance(d, Granted):
                        await self._reserve(network, str(d.address), durable)
                        self.stats["granted"] += 1
                        return str(d.address)
                    self.stats["waits"] += 1
                remaining = deadline - trio.current_time()
                if d.write is not None and remaining > 0:
                    await trio.lowlevel.checkpoint()
                    continue  # our own record changed: decide again at once
                if remaining <= 0:
                    await self._give_up(network, want)
                    who = ", ".join(d.waiting_for) or "a first sync with the cluster"
                    raise unavailable(
                        f"{field}: allocation in network {network!r} waits for {who} ({d.reason}); "
                        f"gave up after {wait:g} s: try again once they are back",
                        field,
                    )
                self.wake()  # our record changed: the maintenance loop re-puts it in time
                with trio.move_on_after(remaining):
                    await changed.wait()

    @contextlib.contextmanager
    def in_flight(self, network: str) -> Iterator[None]:
        """Mark an allocation in progress in `network` (`busy`: its scope stays held)."""
        self.allocating[network] = self.allocating.get(network, 0) + 1
        try:
            yield
        finally:
            self.allocating[network] -= 1
            if not self.allocating[network]:
                del self.allocating[network]

    async def release_address(self, network: str, address: str) -> None:
        """Forget a reservation, and drop this agent's single claim on `address` if nothing of
        ours holds it any more."""
        async with self.lock:
            await self._unreserve(network, address)
            view = self._view(network)
            if view is not None:
                await self._write(network, release(view, self.rng, ipaddress.IPv4Address(address)).write)
        self.wake()

    async def settle(self, network: str, address: str) -> None:
        """An endpoint or VIP of ours now holds a reserved address: drop the reservation
        (its holder keeps it in `mine`)."""
        async with self.lock:
            await self._unreserve(network, address)

    def reserved(self, network: str, *, durable_only: bool = False) -> tuple[str, ...]:
        """Addresses granted in `network` that no endpoint or VIP of ours holds yet (the
        durable ones: granted by `allocate_address` with durable=True, for a later create
        to consume)."""
        saved = self.saved.get(network)
        durable = saved.reserved if saved is not None else ()
        if durable_only:
            return durable
        return durable + tuple(sorted(self.transient.get(network, set()) - set(durable)))

    def busy(self, network: str) -> bool:
        """Whether an allocation is in progress in `network` or an address is reserved there."""
        return network in self.allocating or bool(self.reserved(network))

    def adopt_later(self, network: str, address: str) -> None:
        """Claim an address of ours again (an adopted service's VIP), in the maintenance loop."""
        self.adopting.setdefault(network, set()).add(address)
        self.wake()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, alone: bool) -> None:
        """Re-publish the saved records (see the module rules)."""
        now = trio.current_time()
        self.synced = alone
        async with self.lock:
            for network, saved in sorted(self.saved.items()):
                pool = self._pool(saved.subnet, saved.gateway)
                if pool is None or saved.record is None:
                    continue
                try:
                    record = restore(saved.record, self.me, pool.size, left=self.left)
                    if saved.memory is not None:
                        self.memory[network] = Memory.decode(saved.memory, now, pool.size)
                except DecodeError as exc:
                    event(log, "dropped an unreadable IPAM record", level=logging.WARNING,
                          event="ipam_state_dropped", network=network, error=str(exc))  # fmt: skip
                    await self._save(network, record=None, memory=None)
                    continue
                if self.left:
                    self.adopting[network] = set(saved.reserved) | self._holders(network)
                await self._write(network, record, force=True)
            if self.left:
                self.store.save_ipam_left(False)
                self.left = False
        self.wake()

    def stopping(self) -> None:
        """The agent leaves the cluster gracefully: the others drop our records."""
        try:
            self.store.save_ipam_left(True)
        except OSError as exc:
            event(log, "cannot save state", level=logging.ERROR, event="state_error", error=str(exc))

    def synced_now(self) -> None:
        """A sync of the cluster scope succeeded."""
        if not self.synced:
            self.synced = True
            self.wake()

    # -- maintenance --------------------------------------------------------------------------

    def note(self, change: TableChange) -> None:
        """Wake the maintenance (and waiting allocations) on the changes that matter to it."""
        if change.network == CLUSTER_SCOPE:
            relevant = change.table in (IPAM_TABLE, NETWORKS_TABLE)
        else:
            relevant = change.table in (PEERS_TABLE, SERVICES_TABLE)
        if relevant:
            self.wake()

    def wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
        self._wake_loop.set()

    async def run(self) -> None:
        """The maintenance loop (until cancelled)."""
        while True:
            timeout = max(0.0, self._timer - trio.current_time())
            with trio.move_on_after(timeout):
                await self._wake_loop.wait()
            self._wake_loop = trio.Event()
            await trio.sleep(DEBOUNCE)
            if self.cluster.closed:
                return
            await self.maintain_all()

    async def maintain_all(self) -> None:
        """One pass over the networks with IPAM state: votes, confirmations, releases,
        adoptions, re-publication, memory; then a sync of the cluster scope if one is due."""
        now = trio.current_time()
        timer = math.inf
        sync_due = not self.synced
        async with self.lock:
            raw = raw_records(self.cluster.tables, CLUSTER_SCOPE)
            networks = set(raw) | set(self.saved) | set(self.adopting)
            for network in sorted(networks):
                if self._definition_gone(network):
                    await self._forget(network)
                    continue
                view = self._view(network, raw=raw)
                if view is None:
                    continue
                changed = await self._write(network, maintain(view, self.rng).write)
                if changed:
                    view = self._view(network, raw=raw_records(self.cluster.tables, CLUSTER_SCOPE))
                    assert view is not None
                await self._adopt(network, view)
                if waits_on_others(view):
                    due = self._put_at.get(network, 0.0) + REPUBLISH_AFTER
                    if now >= due and self.saved.get(network) is not None:
                        record = self.saved[network].record
                        if record is not None:
                            await self._put(network, record)
                            due = now + REPUBLISH_AFTER
                    timer = min(timer, due)
                if needs_sync(view):
                    sync_due = True
                await self._remember(network, view)
        if sync_due:
            timer = min(timer, self._next_sync if now < self._next_sync else now + SYNC_EVERY)
            if now >= self._next_sync:
                self._next_sync = now + SYNC_EVERY
                if await self.cluster.synced(CLUSTER_SCOPE, timeout=SYNC_EVERY):
                    self.synced_now()
        self._timer = timer

    async def _adopt(self, network: str, view: IpamView) -> None:
        for address in sorted(self.adopting.get(network, ())):
            try:
                d = adopt(view, self.rng, ipaddress.IPv4Address(address))
            except IpamError as exc:
                event(
                    log,
                    "cannot claim our address again",
                    level=logging.WARNING,
                    event="ipam_adopt_failed",
                    network=network,
                    address=address,
                    error=exc.message,
                )
                self.adopting[network].discard(address)
                continue
            await self._write(network, d.write)
            if isinstance(d, Granted):
                self.adopting[network].discard(address)
            if d.write is not None:
                return  # the next pass sees the new record
        if not self.adopting.get(network, True):
            del self.adopting[network]

    # -- views and records ------------------------------------------------------------------

    def _pool(self, subnet: str, gateway: str | None) -> Pool | None:
        try:
            return Pool(subnet, gateway)
        except ValueError:
            return None

    def _definition(self, network: str) -> NetworkRecord | None:
        return self.view.network(network)

    def _definition_gone(self, network: str) -> bool:
        """The network's definition was deleted (a tombstone), and nothing of ours is in flight."""
        return (
            self._definition(network) is None
            and self.view.tombstoned(CLUSTER_SCOPE, NETWORKS_TABLE, network)
            and not self.busy(network)
            and not self.local.count(network)
        )

    def _holders(self, network: str) -> set[str]:
        """Addresses our local endpoints and owned services hold in `network`."""
        out = {spec.ip.split("/")[0] for spec in self.local.in_network(network).values()}
        if self.view.is_joined(network):
            out |= {s.vip for _, s, owner in self.view.services(network) if owner == self.me and s.vip}
        return out

    def _view(
        self,
        network: str,
        *,
        required: bool = False,
        raw: Mapping[str, Mapping[str, tuple[bytes, bool, bool]]] | None = None,
    ) -> IpamView | None:
        record = self._definition(network)
        saved = self.saved.get(network)
        if record is not None:
            subnet, gateway = record.subnet, record.gateway
        elif saved is not None:
            subnet, gateway = saved.subnet, saved.gateway
        elif required:
            raise not_found(f"network {network!r} not found", "network")
        else:
            return None
        pool = self._pool(subnet, gateway)
        if pool is None:
            if required:
                raise conflict(f"ip: network {network} has no free address", "ip")
            return None
        tables = self.cluster.tables
        used: dict[int, Use] = {}
        freed: frozenset[int] = frozenset()
        if self.view.is_joined(network):
            entries = tables.entries(network)
            used = uses_from_entries(entries, pool, address_of)
            freed = freed_from_entries(entries, pool, address_of)
        mine = _offsets(pool, self._holders(network) | set(self.reserved(network)))
        mine |= _offsets(pool, self.adopting.get(network, ()))
        members = self.cluster.members()
        departed = [m.name for m in members if m.state == State.LEFT]
        return view_from_tables(
            tables,
            scope=CLUSTER_SCOPE,
            network=network,
            me=self.me,
            pool=pool,
            used=used,
            mine=mine,
            freed=freed,
            synced=self.synced,
            memory=self.memory.get(network, Memory()),
            departed=departed,
            now=trio.current_time(),
            raw=raw,
        )

    async def _write(self, network: str, data: bytes | None, *, force: bool = False) -> bool:
        """Save, then publish our new record (None: unchanged); whether it wrote."""
        if data is None:
            return False
        saved = self.saved.get(network)
        published = self.cluster.get(CLUSTER_SCOPE, IPAM_TABLE, record_key(network, self.me))
        if not force and saved is not None and saved.record == data and published == data:
            return False
        if saved is None or saved.record != data:
            await self._save(network, record=data)
        await self._put(network, data)
        self.stats["writes"] += 1
        return True

    async def _put(self, network: str, data: bytes) -> None:
        await self.cluster.put(CLUSTER_SCOPE, IPAM_TABLE, record_key(network, self.me), data)
        self._put_at[network] = trio.current_time()

    async def _save(self, network: str, **changes: object) -> None:
        """Persist one network's state with `changes` (FAILED if the directory refuses)."""
        saved = self.saved.get(network)
        if saved is None:
            definition = self._definition(network)
            if definition is None:
                raise not_found(f"network {network!r} not found", "network")
            saved = SavedIpam(definition.subnet, definition.gateway)
        new = SavedIpam(
            subnet=saved.subnet,
            gateway=saved.gateway,
            record=changes.get("record", saved.record),  # type: ignore[arg-type]
            memory=changes.get("memory", saved.memory),  # type: ignore[arg-type]
            reserved=changes.get("reserved", saved.reserved),  # type: ignore[arg-type]
        )
        try:
            self.store.save_ipam(network, new)
        except OSError as exc:
            raise failed(f"cannot save state: {exc}") from None
        self.saved[network] = new

    async def _reserve(self, network: str, address: str, durable: bool) -> None:
        if durable:
            saved = self.saved.get(network)
            await self._save(network, reserved=(*(saved.reserved if saved else ()), address))
        else:
            self.transient.setdefault(network, set()).add(address)

    async def _unreserve(self, network: str, address: str) -> None:
        held = self.transient.get(network)
        if held is not None:
            held.discard(address)
            if not held:
                del self.transient[network]
        saved = self.saved.get(network)
        if saved is not None and address in saved.reserved:
            await self._save(network, reserved=tuple(a for a in saved.reserved if a != address))

    async def _give_up(self, network: str, want: ipaddress.IPv4Address | None) -> None:
        self.stats["gave_up"] += 1
        if want is None:
            return
        async with self.lock:
            view = self._view(network)
            if view is not None:
                await self._write(network, release(view, self.rng, want).write)

    async def _remember(self, network: str, view: IpamView) -> None:
        data = remember(view).encode()
        saved = self.saved.get(network)
        if saved is not None and saved.memory != data:
            try:
                await self._save(network, memory=data)
            except Exception as exc:
                event(log, "cannot save state", level=logging.ERROR, event="state_error", error=str(exc))

    async def _forget(self, network: str) -> None:
        """The network is gone: delete our record and its saved state."""
        if self.cluster.get(CLUSTER_SCOPE, IPAM_TABLE, record_key(network, self.me)) is not None:
            await self.cluster.delete(CLUSTER_SCOPE, IPAM_TABLE, record_key(network, self.me))
        try:
            self.store.save_ipam(network, None)
        except OSError as exc:
            event(log, "cannot save state", level=logging.ERROR, event="state_error", error=str(exc))
            return
        self.saved.pop(network, None)
        self.memory.pop(network, None)
        self.adopting.pop(network, None)
