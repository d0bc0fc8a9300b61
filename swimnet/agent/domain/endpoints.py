"""Endpoint operations: create, list, inspect, remove (the per-network overlay_peer tables).

Rules:
- an endpoint belongs to the agent that created it: its entry (id -> name, IP, MAC, VTEP =
  this agent's advertise host) is written by that agent only, and only that agent removes
  it (elsewhere: CONFLICT naming the owner); ids are 12 random hex characters;
- create checks, in order, before anything changes: the arguments (INVALID: name, ifname,
  netns or pid but not both, netns, pid, mac, service), that the network exists
  (NOT_FOUND), that a pinned IP is a host address of its subnet (INVALID), then - holding
  the network's scope and after its first sync - that a pinned IP is not the gateway nor
  used by another endpoint or a service VIP, that the MAC and the name are free in the
  network (CONFLICT), that the service exists (NOT_FOUND: looked up in the view's
  indexes, not by a pass over the network's endpoints); then the address comes from the
  IPAM (`ipam.allocate_address`: a free one, or the pinned one claimed cluster-wide; a
  full network or a taken address is CONFLICT, votes that do not come in time
  UNAVAILABLE naming whom it waited for), outside the overlay lock; then, under the lock
  again, the checks are repeated (the state may have moved meanwhile), the datapath
  attaches the container (if a netns or pid was given), the endpoint is persisted, and
  only then published (and added to the service's backends); the driver gets the new
  snapshot from the refresh the create wakes (debounced: a burst of creates costs one
  snapshot, not one each; an attach pins the endpoint in the driver meanwhile). A failed
  step undoes the earlier ones (detach, forget, release the scope and the address) and
  is FAILED: nothing is published;
- remove detaches the container, forgets and persists, then deletes the entry and
  releases the address (reusable at once); a detach that fails changes nothing, a persist
  that fails re-attaches the container (FAILED); the driver gets the snapshot without it
  from the refresh the removal wakes;
- the IPAM hands an address to one endpoint or VIP at a time cluster-wide; endpoints
  created with the same IP by older agents, or left by a partition longer than the
  tables' reap interval, can still collide: both entries stay (different keys); every
  agent that holds the network reports the conflict (log, `network inspect`,
  `endpoint ls` flag, metrics) and the datapath resolves it deterministically (see
  `conflicts`);
- listing shows the endpoints of the networks this agent holds (a host knows only the
  overlays it takes part in); `not_held` names the known networks it does not hold.
"""

from __future__ import annotations

import logging
import secrets

import attrs
import trio

from swimnet.agent import checks
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.values import EndpointInfo, EndpointListing, LocalEndpointInfo
from swimnet.agent.errors import conflict, failed, invalid, not_found
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import DatapathError
from swimnet.overlay import (
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
    LocalEndpointSpec,
    NetworkRecord,
    mac_from_ip,
)

log = logging.getLogger(LOGGER)

LISTING_BATCH = 250
"""Rows a listing builds between two checkpoints."""


@attrs.frozen
class _Placement:
    """Where and how a new endpoint is plugged in, checked once by `Endpoints.create`."""

    mac: str | None
    netns: str | None
    pid: int | None
    ifname: str
    service: str | None
    handoff: str | None


def _who(endpoint_id: str, record: EndpointRecord, owner: str) -> str:
    return f"endpoint {record.name!r} ({endpoint_id}) on {owner}"


class Endpoints:
    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def _new_id(self) -> str:
        while True:
            endpoint_id = secrets.token_hex(6)
            if endpoint_id not in self.agent.local:
                return endpoint_id

    async def create(
        self,
        network: str,
        name: str,
        ip: str | None = None,
        *,
        mac: str | None = None,
        netns: str | None = None,
        pid: int | None = None,
        ifname: str = "eth0",
        service: str | None = None,
        handoff: str | None = None,
    ) -> LocalEndpointInfo:
        """Create an endpoint of this agent in `network`; `ip` (with or without the prefix)
        pins its address, else the network's IPAM gives one; `service`: the endpoint joins
        that service's backends; `handoff`: the container end is left in the host namespace
        under that name for the container runtime to move into `netns` (Docker; see
        swimnet.datapath.containers)."""
        agent = self.agent
        checks.name(name)
        checks.ifname(ifname)
        if netns is not None and pid is not None:
            raise invalid("netns: give either netns or pid, not both", "netns")
        if handoff is not None:
            checks.ifname(handoff, "handoff")
            if netns is None:
                raise invalid("handoff: needs the container's netns", "handoff")
        if netns is not None:
            checks.netns(netns)
        if pid is not None:
            checks.pid(pid)
        if service is not None:
            checks.name(service, "service")
        where = _Placement(checks.mac(mac) if mac else None, netns, pid, ifname, service, handoff)
        try:
            return await self._allocate_and_create(network, name, ip, where)
        except BaseException:
            with trio.CancelScope(shield=True):
                async with agent.lock:
                    await agent.release(network)  # the scope joined for the request, if unused
            raise

    async def _allocate_and_create(
        self, network: str, name: str, ip: str | None, where: _Placement
    ) -> LocalEndpointInfo:
        agent = self.agent
        ipam = agent.ipam
        with ipam.in_flight(network):
            async with agent.lock:
                record = self._network(network)
                subnet = checks.subnet(record.subnet)
                pinned = None if ip is None else str(checks.host_in(ip, subnet, "ip").ip)
                if pinned is not None and record.gateway == pinned:
                    raise conflict(f"ip: {pinned} is the gateway of network {network!r}", "ip")
                await agent.hold(network)
                self._check_free(network, name, pinned, where.mac, where.service)
            reserved_before = pinned is not None and pinned in ipam.reserved(network, durable_only=True)
            address = await ipam.allocate_address(network, pinned, field="ip", durable=False)
            try:
                return await self._create(record, name, f"{address}/{subnet.prefixlen}", where)
            except BaseException:
                if not reserved_before:
                    with trio.CancelScope(shield=True):
                        await ipam.release_address(network, address)
                raise

    async def _create(
        self, record: NetworkRecord, name: str, ip: str, where: _Placement
    ) -> LocalEndpointInfo:
        """The endpoint, its address granted: checks again under the lock (the state may have
        moved while the allocation waited), attach, persist, publish, join the service."""
        agent, network = self.agent, record.name
        address = ip.split("/")[0]
        mac = where.mac or mac_from_ip(address)
        async with agent.lock:
            joined_now = await agent.hold(network)
            try:
                self._check_free(network, name, address, mac, where.service)
                spec = LocalEndpointSpec(
                    endpoint_id=self._new_id(),
                    network=network,
                    name=name,
                    ip=ip,
                    mac=mac,
                    netns=where.netns,
                    pid=where.pid,
                    ifname=where.ifname,
                    handoff=where.handoff,
                )
                try:
                    await agent.attach(spec)
                except DatapathError as exc:
                    agent.stats["datapath_attach_failures"] += 1
                    raise failed(f"datapath: {exc}") from None
                try:
                    agent.remember(spec, record)
                except OSError as exc:
                    await self._undo_attach(spec)
                    raise failed(f"cannot save state: {exc}") from None
                await agent.publish(spec)
                await agent.ipam.settle(network, address)
                if where.service is not None:
                    await self._join_service(spec, where.service)
            except BaseException:
                if joined_now:
                    await agent.release(network)
                await agent.push()  # undo: the driver no longer needs the network for it
                raise
            event(
                log,
                "endpoint created",
                event="endpoint_created",
                network=network,
                endpoint=spec.endpoint_id,
                name=name,
                ip=spec.ip,
                mac=mac,
            )
        agent.wake()
        return LocalEndpointInfo(spec, agent.vtep, agent.me, published=True)

    def _network(self, network: str) -> NetworkRecord:
        record = self.agent.view.network(network)
        if record is None:
            raise not_found(f"network {network!r} not found", "network")
        return record

    async def _join_service(self, spec: LocalEndpointSpec, service: str) -> None:
        """Add the new endpoint to the service's backends (checked to exist before)."""
        found = self.agent.view.service(spec.network, service)
        assert found is not None
        current = found[0]
        backends = (*current.backends, spec.endpoint_id)
        await self.agent.cluster.put(
            spec.network, SERVICES_TABLE, service, attrs.evolve(current, backends=backends).encode()
        )

    def _check_free(
        self, network: str, name: str, address: str | None, mac: str | None, service: str | None
    ) -> None:
        """IP (when known), MAC (when known) and name free in the network, the service (if
        any) one of its services (index lookups: O(1) in its size)."""
        view = self.agent.view
        if address is not None:
            by_ip = view.endpoints_using(network, address=address)
            if by_ip:
                who = _who(*by_ip[0])
                raise conflict(f"ip: {address} is already used in network {network!r} by {who}", "ip")
        if mac is not None:
            by_mac = view.endpoints_using(network, mac=mac)
            if by_mac:
                who = _who(*by_mac[0])
                raise conflict(f"mac: {mac} is already used in network {network!r} by {who}", "mac")
        if view.endpoints_using(network, name=name):
            raise conflict(f"name: network {network!r} already has an endpoint named {name!r}", "name")
        if service is not None and view.service(network, service) is None:
            raise not_found(f"service: network {network!r} has no service {service!r}", "service")
        if address is None:
            return
        for spec in self.agent.local.at_address(network, address):  # published or not, our own count too
            raise conflict(f"ip: {address} is already used in network {network!r} by {spec.name!r}", "ip")
        for service_name, other, _ in view.services(network):
            if other.vip == address:
                raise conflict(f"ip: {address} is the VIP of service {service_name!r}", "ip")

    async def _undo_attach(self, spec: LocalEndpointSpec) -> None:
        try:
            await self.agent.detach(spec)
        except DatapathError as exc:
            event(
                log,
                "detach failed",
                level=logging.ERROR,
                event="detach_failed",
                endpoint=spec.endpoint_id,
                error=str(exc),
            )

    async def _undo_detach(self, spec: LocalEndpointSpec) -> None:
        try:
            await self.agent.attach(spec)
        except DatapathError as exc:
            self.agent.stats["datapath_attach_failures"] += 1
            event(
                log,
                "re-attach failed",
                level=logging.ERROR,
                event="attach_failed",
                endpoint=spec.endpoint_id,
                error=str(exc),
            )

    async def listing(self, network: str | None = None) -> EndpointListing:
        """The endpoints of the held networks (all, or `network`'s) and this agent's own
        (a checkpoint every LISTING_BATCH rows: a long listing never holds the event loop)."""
        agent = self.agent
        known = agent.view.networks()
        if network is not None and network not in known and not agent.local.count(network):
            raise not_found(f"network {network!r} not found", "network")
        held = [n for n in agent.view.held() if network is None or n == network]
        not_held = sorted(n for n in known if n not in held and (network is None or n == network))
        rows: list[EndpointInfo | LocalEndpointInfo] = []
        for net in held:
            flagged = {i for c in agent.conflicts.get(net, []) for i, _ in c.endpoints}
            for endpoint_id, record, owner in agent.view.endpoints(net):
                if len(rows) % LISTING_BATCH == LISTING_BATCH - 1:
                    await trio.lowlevel.checkpoint()
                local = agent.local.get(endpoint_id) if owner == agent.me else None
                rows.append(
                    EndpointInfo(
                        endpoint_id, net, record, owner, local=local, conflict=endpoint_id in flagged
                    )
                )
        shown = {r.endpoint_id for r in rows if isinstance(r, EndpointInfo)}
        for spec in sorted(agent.local.values(), key=lambda s: (s.network, s.endpoint_id)):
            if spec.endpoint_id not in shown and (network is None or spec.network == network):
                rows.append(LocalEndpointInfo(spec, agent.vtep, agent.me, published=False))
        return EndpointListing(rows, not_held)

    def find_local(self, ref: str) -> LocalEndpointSpec:
        """A local endpoint by id, else by name (unique among local endpoints)."""
        agent = self.agent
        spec = agent.local.get(ref)
        if spec is not None:
            return spec
        named = agent.local.named(ref)
        if len(named) > 1:
            ids = ", ".join(sorted(s.endpoint_id for s in named))
            raise conflict(f"endpoint name {ref!r} is ambiguous on this agent (ids {ids}): use the id", "id")
        if named:
            return named[0]
        for net in agent.view.held():
            found = self._held_endpoint(net, ref)
            if found is not None:
                owner = found[2]
                raise conflict(f"endpoint {ref!r} belongs to agent {owner!r}: remove it there", "id")
        raise not_found(f"endpoint {ref!r} not found on this agent", "id")

    def _held_endpoint(self, network: str, ref: str) -> tuple[str, EndpointRecord, str] | None:
        """The visible endpoint of `network` with id `ref`, else the first named `ref`."""
        view = self.agent.view
        found = view.endpoint(network, ref)
        if found is not None:
            return (ref, *found)
        named = view.endpoints_using(network, name=ref)
        return named[0] if named else None

    def inspect(self, ref: str) -> EndpointInfo | LocalEndpointInfo:
        """A local endpoint by id or name, else one of the held networks' endpoints."""
        agent = self.agent
        spec = agent.local.get(ref)
        named = agent.local.named(ref)
        if spec is None and len(named) == 1:
            spec = named[0]
        if spec is not None:
            return LocalEndpointInfo(spec, agent.vtep, agent.me, published=agent.published(spec))
        if named:
            self.find_local(ref)  # ambiguous: raises the CONFLICT
        for net in agent.view.held():
            found = self._held_endpoint(net, ref)
            if found is not None:
                endpoint_id, record, owner = found
                return EndpointInfo(endpoint_id, net, record, owner)
        raise not_found(f"endpoint {ref!r} not found on this agent", "id")

    async def remove(self, ref: str) -> LocalEndpointSpec:
        """Remove a local endpoint (by id or name); the endpoint removed."""
        agent = self.agent
        async with agent.lock:
            spec = self.find_local(ref)
            try:
                await agent.detach(spec)
            except DatapathError as exc:
                raise failed(f"datapath: {exc}") from None
            try:
                agent.forget(spec)
            except OSError as exc:
                await self._undo_detach(spec)
                raise failed(f"cannot save state: {exc}") from None
            if agent.view.is_joined(spec.network):
                await agent.cluster.delete(spec.network, PEERS_TABLE, spec.endpoint_id)
            await agent.ipam.release_address(spec.network, spec.ip.split("/")[0])
            await agent.release(spec.network)
            event(
                log,
                "endpoint removed",
                event="endpoint_removed",
                network=spec.network,
                endpoint=spec.endpoint_id,
                name=spec.name,
            )
        agent.wake()
        return spec
