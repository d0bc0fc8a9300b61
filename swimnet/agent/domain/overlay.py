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
- local endpoints are persisted before they are published, and re-published whenever the
  table does not show exactly our record (after a restart, or if someone overwrote it);
- until the first cluster-wide sync after a start, the datapath gets the network records
  cached in the state directory for networks with local endpoints (so a restart never tears
  down working sandboxes); after it, the tables are authoritative; a cached network that
  the synced cluster has neither as a live entry nor as a tombstone (a lone agent came back)
  is re-published once;
- every change of the tables wakes `refresh()` (debounced; it also runs every second):
  conflicts, adoption of orphaned definitions, local re-publication, scope release, and
  the snapshot for the driver, which gets it only when it differs from the last one sent;
  the snapshot carries the visible services of the networks held (the driver's VIP rules);
- DNS (`dns`, see `domain.dns`): the names index follows every table change received here;
  a container's resolver follows its endpoint's datapath attach / detach.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import trio

from swimnet.agent.domain.adoption import Orphans
from swimnet.agent.domain.cluster import Cluster
from swimnet.agent.domain.conflicts import Conflict, find_conflicts, for_datapath
from swimnet.agent.domain.dns import AgentDns
from swimnet.agent.domain.ports import DatapathDriverProtocol, EndpointStore
from swimnet.agent.domain.tables_view import TablesView
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import DatapathError
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
from swimnet.overlay.model import NetworkRecord
from swimnet.tables.changes import TableChange

log = logging.getLogger(LOGGER)

SYNC_TIMEOUT = 2.0
"""How long `hold()` waits for the first sync of a newly joined scope."""
CLUSTER_SYNC_TIMEOUT = 5.0
REFRESH_DEBOUNCE = 0.05
REFRESH_PERIOD = 1.0


class OverlayAgent:
    def __init__(
        self,
        cluster: Cluster,
        store: EndpointStore,
        *,
        driver: DatapathDriverProtocol | None,
        local: Iterable[LocalEndpointSpec] = (),
        cache: dict[str, NetworkRecord] | None = None,
        sync_timeout: float = SYNC_TIMEOUT,
        peer_grace: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.store = store
        self.driver = driver
        self.me = cluster.name
        self.vtep = cluster.vtep
        self.view = TablesView(cluster.tables)
        self.local: dict[str, LocalEndpointSpec] = {s.endpoint_id: s for s in local}
        self.cache: dict[str, NetworkRecord] = dict(cache or {})
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
        self.dns = AgentDns(cluster, self.stats)

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
        if network == CLUSTER_SCOPE:
            return True
        if any(s.network == network for s in self.local.values()):
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

    def persist(self) -> None:
        """Save the local endpoints and their networks' records (OSError: nothing changed)."""
        networks = {s.network for s in self.local.values()}
        cache = {n: r for n, r in self.cache.items() if n in networks}
        self.store.save_endpoints(list(self.local.values()), cache)
        self.cache = cache

    async def publish(self, spec: LocalEndpointSpec) -> None:
        await self.cluster.put(spec.network, PEERS_TABLE, spec.endpoint_id, self.record_of(spec).encode())

    def published(self, spec: LocalEndpointSpec) -> bool:
        found = self.view.visible(spec.network, PEERS_TABLE, spec.endpoint_id)
        return found is not None and found == (self.record_of(spec).encode(), self.me)

    # -- datapath feed --------------------------------------------------------------------

    def snapshot(self, extra_networks: Iterable[str] = ()) -> OverlaySnapshot:
        records = self.view.records()
        if not self.cluster_synced:
            for name, record in self.cache.items():
                records.setdefault(name, record)
        held = self.view.held()
        peers = {n: for_datapath(self.view.endpoints(n), self.me) for n in held}
        services = {n: [r for _, r, _ in self.view.services(n)] for n in held}
        return build_snapshot(records, self.local.values(), peers, self.me, extra_networks, services)

    def push(self, extra_networks: Iterable[str] = ()) -> None:
        """Send the driver the desired state, if it differs from the last one sent."""
        if self.driver is None:
            return
        snapshot = self.snapshot(extra_networks)
        if snapshot != self._pushed:
            self._pushed = snapshot
            self.driver.update(snapshot)
            self.stats["datapath_updates"] += 1

    async def attach(self, spec: LocalEndpointSpec) -> None:
        """Plug a container in through the driver (DatapathError propagates)."""
        if self.driver is None or (spec.netns is None and spec.pid is None):
            return
        self.push(extra_networks=[spec.network])
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

    async def start(self, *, alone: bool) -> None:
        """Join CLUSTER_SCOPE, re-publish the persisted endpoints, feed the driver.

        `alone`: no seeds were reachable (or none configured): the local tables are all
        there is, so they count as synced."""
        async with self.lock:
            await self.cluster.join_network(CLUSTER_SCOPE)
            for network in sorted({s.network for s in self.local.values()}):
                await self.cluster.join_network(network)
            for spec in sorted(self.local.values(), key=lambda s: s.endpoint_id):
                await self.publish(spec)
            if self.local:
                event(log, "re-published local endpoints", event="endpoints_restored", count=len(self.local))
            if alone:
                await self._synced()
            self.started = True
            self.push()
            for spec in sorted(self.local.values(), key=lambda s: s.endpoint_id):
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
        await self.cluster.synced(CLUSTER_SCOPE, timeout=CLUSTER_SYNC_TIMEOUT)
        async with self.lock:
            await self._synced()
        self.wake()

    async def _synced(self) -> None:
        """The tables now hold what the cluster knows: re-publish cached definitions it lacks."""
        if self.cluster_synced:
            return
        self.cluster_synced = True
        for name, record in sorted(self.cache.items()):
            live = self.cluster.get(CLUSTER_SCOPE, NETWORKS_TABLE, name)
            if live is None and not self.view.tombstoned(CLUSTER_SCOPE, NETWORKS_TABLE, name):
                await self.cluster.put(CLUSTER_SCOPE, NETWORKS_TABLE, name, record.encode())
                event(log, "re-published network definition", event="network_restored", network=name)

    # -- reacting to the tables -------------------------------------------------------------

    def note(self, change: TableChange) -> None:
        self.orphans.note(change, self.view, self.me, trio.current_time())
        self.dns.apply(change)

    def wake(self) -> None:
        self._wake.set()

    async def watch(self) -> None:
        """Feed table changes to `note` and wake `refresh` (runs until cancelled)."""
        async with self.cluster.subscribe_tables() as changes:
            self.dns.load()  # no await since subscribing: the changes follow the load
            async for change in changes:
                self.note(change)
                while len(changes):
                    self.note(changes.receive_nowait())
                if changes.dropped != self.stats["table_changes_dropped"]:
                    self.stats["table_changes_dropped"] = changes.dropped
                    self.dns.load()
                self.wake()

    async def refresher(self) -> None:
        """Run `refresh` after changes (debounced) and every REFRESH_PERIOD (until cancelled)."""
        while True:
            with trio.move_on_after(REFRESH_PERIOD):
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
            self.push()

    def _find_conflicts(self) -> None:
        found = {n: find_conflicts(n, self.view.endpoints(n)) for n in self.view.held()}
        for network, conflicts in found.items():
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

    async def _adopt(self) -> None:
        for orphan in self.orphans.due(self.view, self.me, trio.current_time()):
            await self.cluster.put(orphan.network, orphan.table, orphan.key, orphan.value)
            self.stats["adopted"] += 1
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
        for spec in sorted(self.local.values(), key=lambda s: s.endpoint_id):
            if not self.view.is_joined(spec.network):
                await self.cluster.join_network(spec.network)
            if not self.published(spec):
                await self.publish(spec)
                self.stats["republished"] += 1

    def _update_cache(self) -> None:
        records = self.view.records()
        changed = False
        for network in {s.network for s in self.local.values()}:
            record = records.get(network)
            if record is not None and self.cache.get(network) != record:
                self.cache[network] = record
                changed = True
        if changed:
            try:
                self.persist()
            except OSError as exc:
                event(log, "cannot save state", level=logging.ERROR, event="state_error", error=str(exc))
