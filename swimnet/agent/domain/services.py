"""Service operations: create, update, list, inspect, remove (the per-network services tables).

Rules:
- a service is one entry of <network>/"services" keyed by its name: VIP (vip mode; none in
  dnsrr mode), ports (protocol, published, target) and backend endpoint ids; backends may
  be given by endpoint id or by name (unique in the network) and are stored as ids;
- the agent holds the network's scope to create, update or remove a service there (the
  checks see the network's endpoints and services after the first sync) and keeps holding
  it while it owns the entry (see `overlay`); the entry outlives its writer: when the
  writer leaves or fails, another agent of the network adopts it (`adoption`); a refused
  change releases a scope it joined for the occasion;
- checks before any change: arguments (INVALID: name, mode, ports), network exists
  (NOT_FOUND), name free on create / the service exists on update and remove (CONFLICT /
  NOT_FOUND), no VIP in dnsrr mode, a given VIP inside the subnet (INVALID) and used by no
  endpoint, gateway or other service (CONFLICT), every backend (and every added backend)
  an endpoint of the network, every removed backend one of the service's (INVALID naming
  backends, add_backends, rm_backends), the whole record small enough for one table value
  (INVALID naming backends or ports); then, in vip mode, the VIP comes from the IPAM
  (`ipam.allocate_address(field="vip")`: a free address, or the given one claimed
  cluster-wide; CONFLICT if taken or the network is full, UNAVAILABLE if the votes do not
  come in time), outside the overlay lock; then everything is checked again under the lock
  and the entry written; a failure after the allocation releases the address;
- update replaces only the arguments given (None: keep; `backends` replaces the whole
  list, `add_backends` / `rm_backends` change it: all of them apply or none); a VIP is
  kept while the mode stays vip; switching to dnsrr, a new VIP, or `remove` release the
  old VIP to the IPAM (after the entry changed);
- `detail` (inspect) adds each backend's state in the tables here (visible, hidden: its
  owner failed, unknown) and, with a datapath, the container namespaces of this host that
  get the VIP rules (the network's attached local endpoints; their state from the driver's
  latest load-balancing pass when it reports one).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from swimnet.agent import checks
from swimnet.agent.domain.dns import container_of
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.domain.values import (
    BackendState,
    ProgrammedNetns,
    ServiceDetail,
    ServiceInfo,
    ServiceListing,
)
from swimnet.agent.errors import conflict, invalid, not_found
from swimnet.agent.logs import LOGGER, event
from swimnet.overlay import PEERS_TABLE, SERVICES_TABLE, NetworkRecord, ServiceRecord

log = logging.getLogger(LOGGER)

MODES = ("vip", "dnsrr")

_STAND_IN = "223.255.255.255"
"""The VIP the checks before an allocation build the record with (the longest address)."""

Port = tuple[str, int, int]
"""(protocol, published, target)."""


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise invalid(f"mode: must be vip or dnsrr, got {mode!r}", "mode")
    return mode


def _check_arguments(mode: str | None, ports: Sequence[Port] | None) -> tuple[Port, ...] | None:
    if mode is not None:
        check_mode(mode)
    return None if ports is None else tuple(checks.port_mapping(*port) for port in ports)


def _value(service: ServiceRecord) -> bytes:
    """The table value (INVALID naming the list that made it too large)."""
    return checks.encoded(service, "backends" if service.backends else "ports")


class Services:
    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def _resolve_backends(
        self, network: str, refs: Sequence[str], field: str = "backends"
    ) -> tuple[str, ...]:
        view = self.agent.view
        out: list[str] = []
        for ref in refs:
            if view.endpoint(network, ref) is not None:
                out.append(ref)
                continue
            named = [endpoint_id for endpoint_id, _, _ in view.endpoints_using(network, name=ref)]
            if len(named) != 1:
                why = "is ambiguous" if named else "is not an endpoint"
                raise invalid(f"{field}: {ref!r} {why} of network {network!r}", field)
            out.append(named[0])
        return tuple(dict.fromkeys(out))

    def _check_vip(self, record: NetworkRecord, service: str, vip: str | None) -> str | None:
        if vip is None:
            return None
        address = str(checks.host_in(vip, checks.subnet(record.subnet), "vip").ip)
        if address == record.gateway:
            raise conflict(f"vip: {address} is the gateway of network {record.name!r}", "vip")
        users = self.agent.view.endpoints_using(record.name, address=address)
        if users:
            endpoint_id, endpoint, owner = users[0]
            who = f"endpoint {endpoint.name!r} ({endpoint_id}) on {owner}"
            raise conflict(f"vip: {address} is used by {who}", "vip")
        for name, other, _ in self.agent.view.services(record.name):
            if name != service and other.vip == address:
                raise conflict(f"vip: {address} is the VIP of service {name!r}", "vip")
        return address

    def _build(
        self,
        record: NetworkRecord,
        name: str,
        old: ServiceRecord | None,
        *,
        vip: str | None,
        mode: str,
        ports: tuple[Port, ...] | None,
        backends: Sequence[str] | None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
        precheck: bool = False,
    ) -> ServiceRecord:
        """The new record (`vip`: its final VIP, allocated or kept); INVALID / CONFLICT.
        `precheck`: before the VIP is allocated (a stand-in of the longest form checks the
        size; the VIP itself was checked by `_vip_plan`)."""
        if precheck:
            vip = _STAND_IN if mode == "vip" else None
        elif vip is not None:
            vip = self._check_vip(record, name, vip)
        if ports is None:
            ports = old.ports if old is not None else ()
        if backends is not None:
            ids = self._resolve_backends(record.name, backends)
        else:
            ids = old.backends if old is not None else ()
        if add:
            ids = tuple(dict.fromkeys((*ids, *self._resolve_backends(record.name, add, "add_backends"))))
        if remove:
            gone = self._resolve_removals(record.name, name, ids, remove)
            ids = tuple(i for i in ids if i not in gone)
        extra = dict(old.extra) if old is not None else {}
        service = ServiceRecord(name=name, vip=vip, mode=mode, ports=ports, backends=ids, extra=extra)
        _value(service)  # INVALID if too large for one table value
        return service

    def _resolve_removals(
        self, network: str, service: str, current: Sequence[str], refs: Sequence[str]
    ) -> set[str]:
        """Backend ids to drop: each ref a current backend id, or the name of an endpoint of
        the network that is one (INVALID naming rm_backends otherwise)."""
        view = self.agent.view
        out = set()
        for ref in refs:
            if ref in current:
                out.add(ref)
                continue
            named = [i for i, _, _ in view.endpoints_using(network, name=ref) if i in current]
            if len(named) != 1:
                why = "is ambiguous" if named else f"is not a backend of service {service!r}"
                raise invalid(f"rm_backends: {ref!r} {why}", "rm_backends")
            out.add(named[0])
        return out

    def _vip_plan(
        self, record: NetworkRecord, name: str, old: ServiceRecord | None, vip: str | None, mode: str
    ) -> tuple[str | None, bool]:
        """(the VIP to keep or to pin, whether to allocate one): INVALID / CONFLICT early."""
        if mode == "dnsrr":
            if vip is not None:
                raise invalid("vip: dnsrr services have no VIP", "vip")
            return None, False
        if vip is not None:
            address = self._check_vip(record, name, vip)
            keep = old is not None and old.vip == address
            return address, not keep
        if old is not None and old.mode == "vip" and old.vip is not None:
            return old.vip, False
        return None, True

    def _network(self, network: str) -> NetworkRecord:
        record = self.agent.view.network(network)
        if record is None:
            raise not_found(f"network {network!r} not found", "network")
        return record

    def _current(self, network: str, name: str) -> ServiceRecord | None:
        found = self.agent.view.service(network, name)
        return found[0] if found is not None else None

    async def create(
        self,
        network: str,
        name: str,
        *,
        vip: str | None = None,
        mode: str | None = None,
        ports: Sequence[Port] | None = None,
        backends: Sequence[str] | None = None,
    ) -> ServiceInfo:
        """Create a service (mode "vip" unless given; its VIP from the IPAM unless `vip`)."""
        checks.name(name)
        checked_ports = _check_arguments(mode, ports)
        return await self._change(
            network, name, creating=True, vip=vip, mode=mode, ports=checked_ports, backends=backends
        )

    async def update(
        self,
        network: str,
        name: str,
        *,
        vip: str | None = None,
        mode: str | None = None,
        ports: Sequence[Port] | None = None,
        backends: Sequence[str] | None = None,
        add_backends: Sequence[str] = (),
        rm_backends: Sequence[str] = (),
    ) -> ServiceInfo:
        """Change the arguments given (None: keep; `backends` replaces the list, `add_backends`
        and `rm_backends` change it, all or nothing)."""
        checked_ports = _check_arguments(mode, ports)
        if backends is not None and (add_backends or rm_backends):
            raise invalid("backends: give either backends or add_backends / rm_backends", "backends")
        return await self._change(
            network,
            name,
            creating=False,
            vip=vip,
            mode=mode,
            ports=checked_ports,
            backends=backends,
            add=tuple(add_backends),
            remove=tuple(rm_backends),
        )

    async def _change(
        self,
        network: str,
        name: str,
        *,
        creating: bool,
        vip: str | None,
        mode: str | None,
        ports: tuple[Port, ...] | None,
        backends: Sequence[str] | None,
        add: Sequence[str] = (),
        remove: Sequence[str] = (),
    ) -> ServiceInfo:
        """Create or update: check everything (holding the scope), allocate the VIP if one is
        needed (outside the overlay lock), then check again, write, and settle the address."""
        agent = self.agent
        ipam = agent.ipam
        try:
            with ipam.in_flight(network):
                async with agent.lock:
                    record = self._network(network)
                    await agent.hold(network)
                    old = self._checked_old(network, name, creating)
                    new_mode = mode or (old.mode if old is not None else "vip")
                    address, allocating = self._vip_plan(record, name, old, vip, new_mode)
                    self._build(record, name, old, vip=None, mode=new_mode, ports=ports,
                                backends=backends, add=add, remove=remove, precheck=True)  # fmt: skip
                reserved_before = address is not None and address in ipam.reserved(network, durable_only=True)
                if allocating:
                    address = await ipam.allocate_address(network, address, field="vip", durable=False)
                try:
                    async with agent.lock:
                        await agent.hold(network)
                        old = self._checked_old(network, name, creating)
                        service = self._build(record, name, old, vip=address, mode=new_mode, ports=ports,
                                              backends=backends, add=add, remove=remove)  # fmt: skip
                        await agent.cluster.put(network, SERVICES_TABLE, service.name, _value(service))
                        if address is not None:
                            await ipam.settle(network, address)
                        previous = old.vip if old is not None else None
                except BaseException:
                    if allocating and address is not None and not reserved_before:
                        with trio.CancelScope(shield=True):
                            await ipam.release_address(network, address)
                    raise
        except BaseException:
            with trio.CancelScope(shield=True):
                async with agent.lock:
                    await agent.release(network)  # the scope joined for the request, if unused
            raise
        if previous is not None and previous != service.vip:
            await ipam.release_address(network, previous)
        what = "created" if creating else "updated"
        event(log, f"service {what}", event=f"service_{what}", network=network, service=name, vip=service.vip)
        agent.wake()
        return ServiceInfo(network, service, agent.me)

    def _checked_old(self, network: str, name: str, creating: bool) -> ServiceRecord | None:
        old = self._current(network, name)
        if creating and old is not None:
            raise conflict(f"name: network {network!r} already has a service {name!r}", "name")
        if not creating and old is None:
            raise not_found(f"service {name!r} not found in network {network!r}", "name")
        return old

    def listing(self, network: str | None = None) -> ServiceListing:
        view = self.agent.view
        if network is not None and view.network(network) is None:
            raise not_found(f"network {network!r} not found", "network")
        held = [n for n in view.held() if network is None or n == network]
        rows = [ServiceInfo(n, r, o) for n in held for _, r, o in view.services(n)]
        not_held = sorted(n for n in view.networks() if n not in held and (network is None or n == network))
        return ServiceListing(rows, not_held)

    def inspect(self, network: str, name: str) -> ServiceInfo:
        self._network(network)
        found = self.agent.view.service(network, name)
        if found is not None:
            return ServiceInfo(network, *found)
        raise not_found(f"service {name!r} not found in network {network!r}", "name")

    def detail(self, network: str, name: str) -> ServiceDetail:
        info = self.inspect(network, name)
        return ServiceDetail(info, self._backend_states(info), self._programmed(info))

    def _backend_states(self, info: ServiceInfo) -> tuple[BackendState, ...]:
        view = self.agent.view
        visible = {eid: (record, owner) for eid, record, owner in view.endpoints(info.network)}
        out: list[BackendState] = []
        for eid in info.record.backends:
            if eid in visible:
                record, owner = visible[eid]
                out.append(BackendState(eid, "visible", record, owner))
                continue
            stored = view.stored(info.network, PEERS_TABLE, eid)
            if stored is not None and not stored.deleted:
                out.append(BackendState(eid, "hidden", None, stored.owner))
            else:
                out.append(BackendState(eid, "unknown"))
        return tuple(out)

    def _programmed(self, info: ServiceInfo) -> tuple[ProgrammedNetns, ...] | None:
        driver = self.agent.driver
        if driver is None:
            return None
        if info.record.mode != "vip" or info.record.vip is None:
            return ()
        last = getattr(driver, "lb_last", None)
        outcomes = {str(o.netns): o for o in getattr(last, "outcomes", ())}
        out: list[ProgrammedNetns] = []
        for spec in sorted(self.agent.local.values(), key=lambda s: s.endpoint_id):
            netns = container_of(spec)
            if spec.network != info.network or netns is None:
                continue
            ref = spec.netns or str(spec.pid)
            outcome = outcomes.get(ref)
            if outcome is None:
                state = "attached"
            else:
                state = "failed" if outcome.error or outcome.gone else "programmed"
            out.append(ProgrammedNetns(spec.endpoint_id, netns, state))
        return tuple(out)

    async def remove(self, network: str, name: str) -> None:
        agent = self.agent
        async with agent.lock:
            self._network(network)
            joined_now = await agent.hold(network)
            try:
                old = self._current(network, name)
                if old is None:
                    raise not_found(f"service {name!r} not found in network {network!r}", "name")
                await agent.cluster.delete(network, SERVICES_TABLE, name)
            except BaseException:
                if joined_now:
                    await agent.release(network)
                raise
            event(log, "service removed", event="service_removed", network=network, service=name)
        if old.vip is not None:
            await agent.ipam.release_address(network, old.vip)
        agent.wake()
