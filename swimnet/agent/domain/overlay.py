"""The agent's overlay state: its own endpoints, the scopes it holds, and the datapath feed.

The core the operations (`networks`, `endpoints`, `services`) work on. Its collaborators
come in at construction: the cluster (`cluster.Cluster`, the node as the agent uses it),
the endpoint store (`ports.EndpointStore`, the state directory) and the datapath driver
(`ports.DatapathDriverProtocol`, None without a datapath).

Rules:
- one lock (`lock`) serialises every change an agent makes (API operations, restore,
  adoption, re-publication, scope release): checks and the change they guard happen under
  it, so a refused request changes nothing and two local requests never interleave;
- scopes: every agent holds CLUSTER_SCOPE (network definitions); it holds a network's scope
  while it has a local endpoint there or owns a service entry there (live or tombstone: a
  deletion must outlive a copy a lagging peer might still hold); `hold()` joins a scope and
  waits (at most `sync_timeout`) for the first table sync, so duplicate checks see what the
  other agents hold (with no peer known yet, it waits `peer_grace` = 5 gossip intervals
  for attachments still on their way); scopes nobody needs any more are released by
  `refresh()`;
- local endpoints are persisted before they are published (`remember` / `forget`: the
  store first, then memory; OSError: nothing changed), and re-published whenever the table
  does not show exactly our record (after a restart, or if someone overwrote it);
- until the first cluster-wide sync after a start, the datapath gets the network records
  cached in the state directory for networks with local endpoints (so a restart never tears
  down working sandboxes); after it, the tables are authoritative; a cached network that
  the synced cluster has neither as a live entry nor as a tombstone (a lone agent came back)
  is re-published once;
- every change of the tables wakes `refresh()` (debounced; it also runs every second):
  conflicts, adoption of orphaned definitions, local re-publication, scope release, and
  the snapshot for the driver, which gets it only when it differs from the last one sent;
- cost: `watch` keeps the view current from a table-change feed (see `tables_view`), and
  the refresh works from what changed since its last run: conflicts of the networks whose
  view version moved, the local endpoints whose table entry changed (noted by `watch`;
  all of them after a start or when changes were dropped), the cached records when the
  networks table or the local endpoints moved, and a datapath snapshot only when one of
  its inputs moved (built in a worker thread, after the lock is released, paced by its
  own cost: see `push`). An idle agent's refresh is a few lookups per held network,
  whatever the number of endpoints; a new endpoint costs its own entry, not a pass over
  the others.
- the snapshot carries the visible services of the networks held (the driver's VIP rules);
- addresses (`ipam`, see `domain.ipam`): allocations run under the IPAM's own lock, never
  this one, and its maintenance in its own task (`ipam.run`), so a request waiting for
  votes holds back neither the refresh nor this agent's votes; a network's scope stays
  held while an allocation is in progress or an address is reserved there; the VIP of an
  adopted service is claimed again;
- DNS (`dns`, see `domain.dns`): the names index follows every table change received here;
  a container's resolver follows its endpoint's datapath attach / detach.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import trio

from swimnet.agent.domain.adoption import Orphans
from swimnet.agent.domain.cluster import Cluster
from swimnet.agent.domain.conflicts import Conflict, Row, find_conflicts, for_datapath
from swimnet.agent.domain.dns import AgentDns
from swimnet.agent.domain.ipam import AgentIpam
from swimnet.agent.domain.local_endpoints import LocalEndpoints
from swimnet.agent.domain.ports import DatapathDriverProtocol, EndpointStore, IpamStore, SavedIpam
from swimnet.agent.domain.tables_view import TablesView
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import DatapathError, DecodeError
from swimnet.overlay import (
    CLUSTER_SCOPE,
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
    LocalEndpointSpec,
    OverlaySnapshot,
    build_snapshot,
)
from swimnet.overlay.model import NetworkRecord, ServiceRecord
from swimnet.tables.changes import TableChange

log = logging.getLogger(LOGGER)

SYNC_TIMEOUT = 2.0
"""How long `hold()` waits for the first sync of a newly joined scope."""
CLUSTER_SYNC_TIMEOUT = 5.0
REFRESH_DEBOUNCE = 0.05
REFRESH_PERIOD = 1.0
PUSH_PACING = 10
"""The refresh's snapshots are at least this many build durations apart: building them
takes at most about 1/(PUSH_PACING + 1) of the time, however many endpoints there are
(with a few hundred endpoints a build takes a millisecond: no visible delay)."""
WATCH_BUFFER = 1 << 16
"""Table changes `watch` and the view's feed buffer (past it, they start over from the tables)."""


class OverlayAgent:
    def __init__(
        self,
        cluster: Cluster,
        store: EndpointStore,
        *,
        ipam_store: IpamStore,
        driver: DatapathDriverProtocol | None,
        local: Iterable[LocalEndpointSpec] = (),
        cache: dict[str, NetworkRecord] | None = None,
        sync_timeout: float = SYNC_TIMEOUT,
        peer_grace: float | None = None,
        ipam_saved: dict[str, SavedIpam] | None = None,
        ipam_left: bool = False,
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.driver = driver
        self.me = cluster.name
        self.vtep = cluster.vtep
        self.view = TablesView(cluster.tables)
        self.local = LocalEndpoints(self.vtep, local)
        self.cache: dict[str, NetworkRecord] = dict(cache or {})
        """Records of the networks with a local endpoint, as saved (see the module rules)."""
        self.sync_timeout = sync_timeout
        self.peer_grace = (
            peer_grace if peer_grace is not None else min(sync_timeout, max(0.2, 5 * cluster.gossip_interval))
        )
        self.lock = trio.Lock()
        self.orphans = Orphans(frozenset({(CLUSTER_SCOPE, NETWORKS_TABLE), (None, SERVICES_TABLE)}))
        self.conflicts: dict[str, list[Conflict]] = {}
        self.stats: Counter[str] = Counter()
        self.started = False
        self.cluster_synced = False
        self._wake = trio.Event()
        self._pushed: OverlaySnapshot | None = None
        self._cache_version = 0
        self._recheck: set[str] = set()
        """Local endpoints whose table entry changed since the last refresh."""
        self._recheck_all = True
        self._conflicts_at: dict[str, int] = {}
        self._cache_at: tuple[int, int] | None = None
        self._push_at: tuple[object, ...] | None = None
        self._push_lock = trio.Lock()
        self._push_not_before = 0.0
        self._push_deferred = False
        self._datapath_rows: dict[str, tuple[int, list[Row]]] = {}
        self.dns = AgentDns(cluster, self.stats)
        self.ipam = AgentIpam(cluster, self.view, ipam_store, self.local, saved=ipam_saved, left=ipam_left)

    # -- scopes ---------------------------------------------------------------------------

    async def hold(self, network: str) -> bool:
        """Join `network`'s scope (if needed) and wait for its first sync; True if joined now.

        With peers in the network: wait until a sync with one of them completed (starting
        one if none is under way), at most `sync_timeout`. With none known yet: wait a short
        grace (`peer_grace`) for attachments still travelling by gossip, then go on."""
        if self.view.is_joined(network):
            return False
        await self.cluster.join_network(network)
        event(log, "joined network scope", event="scope_joined", network=network)
        synced = await self.cluster.synced_after_join(
            network, timeout=self.sync_timeout, grace=self.peer_grace
        )
        if not synced:
            self.stats["scope_sync_timeouts"] += 1
        return True

    def needs(self, network: str) -> bool:
        if network == CLUSTER_SCOPE or self.local.count(network) or self.ipam.busy(network):
            return True
        return self.view.owns_any(network, SERVICES_TABLE, self.me)

    async def release(self, network: str) -> None:
        """Leave `network`'s scope unless this agent still needs it."""
        if self.view.is_joined(network) and not self.needs(network):
            await self.cluster.leave_network(network)
            self.dns.forget(network)
            event(log, "left network scope", event="scope_left", network=network)

    # -- local endpoints ------------------------------------------------------------------

    def record_of(self, spec: LocalEndpointSpec) -> EndpointRecord:
        return EndpointRecord(spec.name, spec.ip, spec.mac, self.vtep)

    def value_of(self, spec: LocalEndpointSpec) -> bytes:
        """The table value of our record for `spec`."""
        if spec.endpoint_id in self.local:
            return self.local.value(spec.endpoint_id)
        return self.record_of(spec).encode()

    def remember(self, spec: LocalEndpointSpec, network: NetworkRecord) -> None:
        """Add a local endpoint, saved first (OSError: nothing changed)."""
        self.local.add(spec)
        try:
            self.store.add_endpoint(spec, network)
        except OSError:
            self.local.remove(spec.endpoint_id)
            raise
        self.cache[spec.network] = network
        self._cache_version += 1

    def forget(self, spec: LocalEndpointSpec) -> None:
        """Remove a local endpoint, saved first (OSError: nothing changed)."""
        self.store.remove_endpoint(spec.endpoint_id)
        self.local.remove(spec.endpoint_id)
        if not self.local.count(spec.network):
            self.cache.pop(spec.network, None)
            self._cache_version += 1

    async def publish(self, spec: LocalEndpointSpec) -> None:
        await self.cluster.put(spec.network, PEERS_TABLE, spec.endpoint_id, self.value_of(spec))

    def published(self, spec: LocalEndpointSpec) -> bool:
        found = self.view.visible(spec.network, PEERS_TABLE, spec.endpoint_id)
        return found is not None and found == (self.value_of(spec), self.me)

    # -- datapath feed --------------------------------------------------------------------

    def _wanted(self, extra_networks: Iterable[str]) -> list[str]:
        return sorted(set(self.local.networks()).union(extra_networks))

    def _rows_for_datapath(self, network: str) -> Sequence[Row]:
        """The network's endpoints with duplicate addresses resolved: `for_datapath` over
        the endpoints that share an IP or MAC (no other endpoint is ever left out, nor
        decides for another), merged back into the others by id."""
        rows = self.view.endpoints(network)
        sharing = self.view.sharing_endpoints(network)
        if not sharing:
            return rows
        version = self.view.version(network)
        cached = self._datapath_rows.get(network)
        if cached is None or cached[0] != version:
            ids = {endpoint_id for endpoint_id, _, _ in sharing}
            kept = [row for row in rows if row[0] not in ids] + for_datapath(sharing, self.me)
            cached = (version, sorted(kept, key=lambda row: row[0]))
            self._datapath_rows[network] = cached
        return cached[1]

    def _snapshot_args(
        self, extra_networks: list[str]
    ) -> tuple[
        dict[str, NetworkRecord],
        tuple[LocalEndpointSpec, ...],
        dict[str, Sequence[Row]],
        str,
        list[str],
        dict[str, list[ServiceRecord]],
    ]:
        """`build_snapshot`'s arguments, as values nothing changes afterwards."""
        records: dict[str, NetworkRecord] = self.view.records()
        if not self.cluster_synced:
            records = {**self.cache, **records}
        wanted = self._wanted(extra_networks)
        peers = {n: self._rows_for_datapath(n) for n in wanted if self.view.is_held(n)}
        for gone in set(self._datapath_rows) - set(wanted):
            del self._datapath_rows[gone]
        services = {n: [r for _, r, _ in self.view.services(n)] for n in peers}
        return records, tuple(self.local.values()), peers, self.me, list(extra_networks), services

    def snapshot(self, extra_networks: Iterable[str] = ()) -> OverlaySnapshot:
        return build_snapshot(*self._snapshot_args(list(extra_networks)))

    def _inputs(self, extra_networks: Iterable[str]) -> tuple[object, ...]:
        """What `snapshot` is computed from (equal inputs: equal snapshots)."""
        wanted = self._wanted(extra_networks)
        return (
            self.view.version(CLUSTER_SCOPE),
            self.cluster_synced,
            self._cache_version,
            self.local.version,
            tuple((n, self.view.is_held(n), self.view.version(n)) for n in wanted),
        )

    async def push(self, extra_networks: Iterable[str] = (), *, paced: bool = False) -> None:
        """Send the driver the desired state, if it differs from the last one sent.

        Built only when one of its inputs changed, in a worker thread from values taken on
        the event loop (`build_snapshot` is linear in the endpoints: other tasks keep
        running, and callers need not hold `lock`); one push at a time, so the driver gets
        snapshots in order. `paced` (the refresh's pushes): not before PUSH_PACING times the
        last build's duration has passed since it ended (the refresher comes back then)."""
        if self.driver is None:
            return
        extra = list(extra_networks)
        async with self._push_lock:
            inputs = self._inputs(extra)
            if inputs == self._push_at:
                return
            if paced and trio.current_time() < self._push_not_before:
                self._push_deferred = True
                return
            self._push_deferred = False
            started = trio.current_time()
            snapshot = await trio.to_thread.run_sync(build_snapshot, *self._snapshot_args(extra))
            ended = trio.current_time()
            self._push_not_before = ended + PUSH_PACING * (ended - started)
            self._push_at = inputs
            if snapshot != self._pushed:
                self._pushed = snapshot
                self.driver.update(snapshot)
                self.stats["datapath_updates"] += 1

    async def attach(self, spec: LocalEndpointSpec) -> None:
        """Plug a container in through the driver (DatapathError propagates)."""
        if self.driver is None or (spec.netns is None and spec.pid is None):
            return
        if self._pushed is None or spec.network not in self._pushed.networks:
            await self.push(extra_networks=[spec.network])  # the driver must know the network first
        await self.driver.attach(spec)
        self.stats["datapath_attaches"] += 1
        await self.dns.attach(spec)

    async def detach(self, spec: LocalEndpointSpec) -> None:
        if self.driver is None or (spec.netns is None and spec.pid is None):
            return
        await self.driver.detach(spec)
        self.stats["datapath_detaches"] += 1
        await self.dns.detach(spec)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *, alone: bool, bootstrap: bool = False) -> None:
        """Join CLUSTER_SCOPE, re-publish the persisted endpoints and IPAM records, feed the
        driver.

        `alone`: no seeds were reachable (or none configured): the local tables are all
        there is, so they count as synced. `bootstrap`: no seeds are configured (this
        agent starts the cluster): its IPAM may claim before any sync; an agent whose
        seeds did not answer claims nothing until it syncs with a peer."""
        async with self.lock:
            await self.cluster.join_network(CLUSTER_SCOPE)
            for network in self.local.networks():
                await self.cluster.join_network(network)
            for endpoint_id in sorted(self.local):
                await self.publish(self.local[endpoint_id])
            if self.local:
                event(log, "re-published local endpoints", event="endpoints_restored", count=len(self.local))
            if alone:
                await self._synced()
            await self.ipam.start(alone=bootstrap)
            self.started = True
            await self.push()
            for endpoint_id in sorted(self.local):
                spec = self.local[endpoint_id]
                try:
                    await self.attach(spec)
                except DatapathError as exc:
                    self.stats["datapath_attach_failures"] += 1
                    event(
                        log,
                        "re-attach failed",
                        level=logging.ERROR,
                        event="attach_failed",
                        endpoint=spec.endpoint_id,
                        error=str(exc),
                    )
        self.wake()

    async def cluster_joined(self) -> None:
        """After the first successful join: wait for the first CLUSTER_SCOPE sync (bounded),
        then treat the tables as authoritative (see the module rules)."""
        if await self.cluster.synced(CLUSTER_SCOPE, timeout=CLUSTER_SYNC_TIMEOUT):
            self.ipam.synced_now()
        async with self.lock:
            await self._synced()
        self.wake()

    async def _synced(self) -> None:
        """The tables now hold what the cluster knows: re-publish cached definitions it lacks."""
        if self.cluster_synced:
            return
        self.cluster_synced = True
        deleted = self.view.deleted_keys(CLUSTER_SCOPE)
        for name, record in sorted(self.cache.items()):
            live = self.cluster.get(CLUSTER_SCOPE, NETWORKS_TABLE, name)
            if live is None and (NETWORKS_TABLE, name) not in deleted:
                await self.cluster.put(CLUSTER_SCOPE, NETWORKS_TABLE, name, record.encode())
                event(log, "re-published network definition", event="network_restored", network=name)

    # -- reacting to the tables -------------------------------------------------------------

    def note(self, change: TableChange) -> None:
        self.orphans.note(change, self.view, self.me, trio.current_time())
        if change.table == PEERS_TABLE and change.key in self.local:
            self._recheck.add(change.key)
        self.dns.apply(change)
        self.ipam.note(change)

    def wake(self) -> None:
        self._wake.set()

    async def watch(self) -> None:
        """Keep the view current, feed table changes to `note` and wake `refresh` (runs
        until cancelled)."""
        async with (
            self.cluster.subscribe_tables(WATCH_BUFFER) as feed,
            self.cluster.subscribe_tables(WATCH_BUFFER) as changes,
        ):
            self.view.follow(feed)
            self.dns.load()  # no await since subscribing: the changes follow the load
            self._recheck_all = True
            dropped = 0
            try:
                async for change in changes:
                    self.note(change)
                    while len(changes):
                        self.note(changes.receive_nowait())
                    self.orphans.settle(self.view)
                    if changes.dropped != dropped:
                        dropped = changes.dropped
                        self.stats["table_changes_dropped"] = dropped
                        self._recheck_all = True
                        self.dns.load()
                    self.wake()
            finally:
                self.view.follow(None)

    async def refresher(self) -> None:
        """Run `refresh` after changes (debounced) and every REFRESH_PERIOD (until cancelled)."""
        while True:
            timeout = REFRESH_PERIOD
            if self._push_deferred:
                timeout = min(timeout, max(0.0, self._push_not_before - trio.current_time()))
            with trio.move_on_after(timeout):
                await self._wake.wait()
            self._wake = trio.Event()
            await trio.sleep(REFRESH_DEBOUNCE)
            if self.started and not self.cluster.closed:
                await self.refresh()

    async def refresh(self) -> None:
        async with self.lock:
            self._find_conflicts()
            await self._adopt()
            await self._republish()
            self._update_cache()
            for network in self.view.held():
                await self.release(network)
        await self.push(paced=True)

    def _find_conflicts(self) -> None:
        """Conflicts of the held networks, recomputed where the view changed."""
        found: dict[str, list[Conflict]] = {}
        at: dict[str, int] = {}
        for network in self.view.held():
            at[network] = version = self.view.version(network)
            if self._conflicts_at.get(network) == version:
                found[network] = self.conflicts.get(network, [])
                continue
            found[network] = conflicts = find_conflicts(network, self.view.sharing_endpoints(network))
            known = set(self.conflicts.get(network, []))
            for c in conflicts:
                if c not in known:
                    self.stats["conflicts_detected"] += 1
                    event(
                        log,
                        f"duplicate {c.kind} in network",
                        level=logging.WARNING,
                        event="endpoint_conflict",
                        network=network,
                        kind=c.kind,
                        value=c.value,
                        endpoints=",".join(f"{i}@{o}" for i, o in c.endpoints),
                    )
        self.conflicts = {n: c for n, c in found.items() if c}
        self._conflicts_at = at

    async def _adopt(self) -> None:
        for orphan in self.orphans.due(self.view, self.me, trio.current_time()):
            await self.cluster.put(orphan.network, orphan.table, orphan.key, orphan.value)
            self.stats["adopted"] += 1
            if orphan.table == SERVICES_TABLE:
                with contextlib.suppress(DecodeError):
                    vip = ServiceRecord.decode(orphan.value).vip
                    if vip is not None:
                        self.ipam.adopt_later(orphan.network, vip)  # its claim went with the owner
            event(
                log,
                "adopted orphaned entry",
                event="entry_adopted",
                network=orphan.network,
                table=orphan.table,
                key=orphan.key,
                previous_owner=orphan.owner,
            )

    async def _republish(self) -> None:
        """Re-publish the local endpoints the tables do not show exactly (those whose entry
        changed; all of them when the view follows no feed or changes were dropped)."""
        for network in self.local.networks():
            if not self.view.is_joined(network):
                await self.cluster.join_network(network)
                self._recheck.update(self.local.in_network(network))
        if self._recheck_all or not self.view.following:
            suspects = sorted(self.local)
        else:
            suspects = sorted(i for i in self._recheck if i in self.local)
        self._recheck_all = False
        self._recheck.clear()
        for endpoint_id in suspects:
            spec = self.local.get(endpoint_id)
            if spec is not None and not self.published(spec):
                await self.publish(spec)
                self.stats["republished"] += 1

    def _update_cache(self) -> None:
        """Save the records of the networks with a local endpoint when they changed."""
        at = (self.view.version(CLUSTER_SCOPE), self.local.version)
        if at == self._cache_at:
            return
        records = self.view.networks()
        changed: dict[str, NetworkRecord] = {}
        for network in self.local.networks():
            found = records.get(network)
            if found is not None and self.cache.get(network) != found[0]:
                changed[network] = found[0]
        if changed:
            try:
                self.store.save_networks(changed)
            except OSError as exc:
                event(log, "cannot save state", level=logging.ERROR, event="state_error", error=str(exc))
                return  # tried again at the next refresh
            self.cache.update(changed)
            self._cache_version += 1
        self._cache_at = at
