"""The plugin's calls: Docker's network driver and IPAM driver over swimnet's operations.

    plugin = DockerPlugin(operations, docker=UnixDockerApi(...), addresses=ClusterAddresses(agent),
                          state_dir=..., clock=time.time)
    answer = await plugin.call("NetworkDriver.Join", body_bytes)   # a dict, {"Err": ...} if refused
                                                                   # ({"Error": ...} for IpamDriver)

Rules:
- every call decodes its body first (swimnet.agent.docker.protocol); a body that does not
  decode, an id the plugin does not know, a value swimnet refuses: `{"Err": message}`
  (`{"Error": message}` for the IPAM calls: libnetwork's remote IPAM reads that key), and
  nothing has changed (records are changed, and saved, only after every check and the
  swimnet operation succeeded; a save that fails undoes the operation);
- counted in the agent's stats (exported as `swimnet_counter{name="agent_docker_..."}`):
  `docker_calls`, and `docker_refused` for those answered with an error;
- calls are serialised (one lock): Docker may call concurrently, and each call reads then
  writes the plugin's records;
- IPAM: a pool is a subnet (given with `--subnet`, else the first /24 of DEFAULT_POOLS that
  no swimnet network nor pool of this host uses); one pool per subnet on a host; the
  gateway is the one asked for, else the subnet's first host address (Docker's rule, so
  every host of a network agrees without being told); endpoint addresses come from the
  `AddressSource` (the cluster-wide IPAM), `--ip` pins one;
- binding: Docker never tells a driver a network's name, so a Docker network is bound to
  the swimnet network of the same name (read from dockerd: `DockerApi`) as soon as dockerd
  reports it created (`bind_created`, from its event stream), else when an address or an
  endpoint is first needed: absent, it is created (subnet, gateway, `-o` options);
  present with the same subnet and gateway, it is adopted (same VNI, the cluster's);
  otherwise refused with an error naming both subnets (the Docker network stays unbound
  and every container start on it fails with that error);
- endpoints: CreateEndpoint records the address and the MAC (`--mac-address`, else the
  network's rule `mac_from_ip`, answered to Docker); Join creates the swimnet endpoint,
  named as the container, in the sandbox `SandboxKey` with a hand-off veth (`vh` + the
  endpoint id's first 12 characters) that Docker moves into the container, and answers the
  gateway; Leave removes the swimnet endpoint cluster-wide; DeleteEndpoint forgets it (and
  removes it if Leave never came);
- `docker network rm` (DeleteNetwork, ReleasePool) ends this host's use: the swimnet network
  stays for the other hosts (`swimnet-agent network rm` removes it cluster-wide);
- names: once a joined container's namespace is mounted (dockerd does that after Join
  answered: `sandbox`), a swimnet resolver serves it at DOCKER_DNS_ADDRESS (dockerd's
  `--dns`, the upstream of its embedded DNS); Leave stops it;
- DiscoverNew/DiscoverDelete and Program/RevokeExternalConnectivity change nothing (swimnet
  learns its peers by gossip; external connectivity is not an overlay's business): they
  answer `{}` to a well-formed body (Program/Revoke: for a known endpoint).
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import trio

from swimnet import values
from swimnet.agent.docker import protocol as p
from swimnet.agent.docker import state as st
from swimnet.agent.docker.addresses import AddressSource
from swimnet.agent.docker.dockerd import DockerApi, DockerApiError
from swimnet.agent.docker.sandbox import wait_for_namespace
from swimnet.agent.domain.dns import ResolverPoolProtocol
from swimnet.agent.domain.operations import Operations
from swimnet.agent.errors import ErrorKind, OperationError
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import SwimnetError
from swimnet.overlay import mac_from_ip

log = logging.getLogger(LOGGER)

ADDRESS_SPACE = "swimnet"
DEFAULT_POOLS = "10.224.0.0/12"
"""Where a pool is picked when `docker network create` gives no subnet (/24 each)."""
DEFAULT_PREFIX = 24
HANDOFF_PREFIX = "vh"
DST_PREFIX = "eth"
DOCKER_DNS_ADDRESS = "127.0.0.12"
"""Where a Docker container's swimnet resolver listens: Docker's embedded DNS (127.0.0.11)
forwards the names it does not know there when dockerd runs with `--dns 127.0.0.12`."""
SANDBOX_WAIT = 60.0
"""How long a joined container's namespace may take to appear (see `sandbox`)."""

Answer = dict[str, Any]
T = TypeVar("T")


def error_key(call: str) -> str:
    """Where a refusal goes: libnetwork's remote IPAM reads `Error`, its remote driver `Err`."""
    return "Error" if call.startswith("IpamDriver.") else "Err"


class Refused(Exception):
    """A call that cannot be done: answered `{"Err": message}`."""


def handoff_name(endpoint_id: str) -> str:
    return f"{HANDOFF_PREFIX}{endpoint_id[:12]}"


def _with_prefix(address: str, subnet: str) -> str:
    return f"{address}/{ipaddress.IPv4Network(subnet).prefixlen}"


def _bare(address: str) -> str:
    return address.split("/")[0]


class DockerPlugin:
    def __init__(
        self,
        ops: Operations,
        *,
        docker: DockerApi,
        addresses: AddressSource,
        state_dir: str,
        clock: Callable[[], float],
        resolvers: ResolverPoolProtocol | None = None,
    ) -> None:
        self.ops = ops
        self.resolvers = resolvers
        """Docker containers' resolvers (at DOCKER_DNS_ADDRESS); None: no DNS."""
        self.nursery: trio.Nursery | None = None
        """Where the waits for sandboxes run (the server's); None: nothing waits."""
        self.docker = docker
        self.addresses = addresses
        self.state_dir = state_dir
        self.clock = clock
        self.state = st.load(state_dir)
        self.lock = trio.Lock()
        self.calls: dict[str, Callable[[Mapping[str, Any]], Awaitable[Answer]]] = {
            "Plugin.Activate": self._activate,
            "NetworkDriver.GetCapabilities": self._net_capabilities,
            "NetworkDriver.CreateNetwork": self._create_network,
            "NetworkDriver.DeleteNetwork": self._delete_network,
            "NetworkDriver.CreateEndpoint": self._create_endpoint,
            "NetworkDriver.EndpointOperInfo": self._endpoint_info,
            "NetworkDriver.DeleteEndpoint": self._delete_endpoint,
            "NetworkDriver.Join": self._join,
            "NetworkDriver.Leave": self._leave,
            "NetworkDriver.DiscoverNew": self._discover,
            "NetworkDriver.DiscoverDelete": self._discover,
            "NetworkDriver.ProgramExternalConnectivity": self._external,
            "NetworkDriver.RevokeExternalConnectivity": self._external,
            "IpamDriver.GetCapabilities": self._ipam_capabilities,
            "IpamDriver.GetDefaultAddressSpaces": self._address_spaces,
            "IpamDriver.RequestPool": self._request_pool,
            "IpamDriver.ReleasePool": self._release_pool,
            "IpamDriver.RequestAddress": self._request_address,
            "IpamDriver.ReleaseAddress": self._release_address,
        }

    async def call(self, name: str, body: bytes) -> Answer:
        """The answer to one call (KeyError: not a call of the protocol)."""
        handler = self.calls[name]
        stats = self.ops.overlay.stats
        stats["docker_calls"] += 1
        try:
            decoded = p.decode_body(body)
            async with self.lock:
                before = copy.deepcopy(self.state)
                try:
                    return await handler(decoded)
                except BaseException:
                    self.state = before  # nothing half-recorded
                    raise
        except (p.ProtocolError, Refused, OperationError, DockerApiError, OSError) as exc:
            if isinstance(exc, OperationError):
                message = exc.message
            elif isinstance(exc, OSError):
                message = f"cannot save the plugin state: {exc.strerror or exc}"
            else:
                message = str(exc)
            stats["docker_refused"] += 1
            event(log, "docker plugin call refused", event="docker_refused", call=name, error=message)
            return {error_key(name): f"swimnet: {message}"}

    def save(self) -> None:
        st.save(self.state_dir, self.state)

    def unbound(self) -> list[str]:
        """The recorded Docker networks not bound to a swimnet network yet."""
        return sorted(n for n, network in self.state.networks.items() if network.name is None)

    async def bind_created(self, network_id: str) -> None:
        """Bind a Docker network dockerd has just created (swimnet.agent.docker.follow), so
        the swimnet network exists cluster-wide before its first container; a refusal is
        logged and counted (`docker_bind_refused`) and the network stays unbound (its first
        container start is refused with the same message). Not ours, or bound: nothing."""
        async with self.lock:
            network = self.state.networks.get(network_id)
            if network is None or network.name is not None:
                return
            before = copy.deepcopy(self.state)
            try:
                await self._bind(network_id)
            except (Refused, OperationError, DockerApiError, OSError) as exc:
                self.state = before
                self.ops.overlay.stats["docker_bind_refused"] += 1
                message = exc.message if isinstance(exc, OperationError) else str(exc)
                event(
                    log,
                    "docker network not bound",
                    level=logging.WARNING,
                    event="docker_bind_refused",
                    docker_id=network_id[:12],
                    error=message,
                )

    # -- handshake and capabilities ---------------------------------------------------------

    async def _activate(self, body: Mapping[str, Any]) -> Answer:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    async def _net_capabilities(self, body: Mapping[str, Any]) -> Answer:
        return {"Scope": "local", "ConnectivityScope": "global"}

    async def _ipam_capabilities(self, body: Mapping[str, Any]) -> Answer:
        return {"RequiresMACAddress": False, "RequiresRequestReplay": False}

    async def _address_spaces(self, body: Mapping[str, Any]) -> Answer:
        return {"LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": ADDRESS_SPACE}

    # -- IPAM -------------------------------------------------------------------------------

    async def _request_pool(self, body: Mapping[str, Any]) -> Answer:
        req = p.RequestPool.decode(body)
        if req.v6:
            raise Refused("IPv6 pools are not supported")
        if req.address_space not in ("", ADDRESS_SPACE):
            raise Refused(f"unknown address space {req.address_space!r} (swimnet has {ADDRESS_SPACE!r})")
        if req.sub_pool:
            raise Refused("--ip-range is not supported: the whole subnet is the network's")
        if req.options:
            raise Refused(f"unknown IPAM option {sorted(req.options)[0]!r}")
        subnet = str(_parsed(values.subnet, req.pool, "subnet")) if req.pool else self._free_subnet()
        pool_id = f"{ADDRESS_SPACE}/{subnet}"
        if pool_id in self.state.pools:
            raise Refused(f"subnet {subnet} is already used by a Docker network of this host")
        self.state.pools[pool_id] = st.Pool(subnet)
        self.save()
        return {"PoolID": pool_id, "Pool": subnet, "Data": {}}

    def _free_subnet(self) -> str:
        used = [ipaddress.IPv4Network(pool.subnet) for pool in self.state.pools.values()]
        used += [ipaddress.IPv4Network(r.subnet) for r, _ in self.ops.overlay.view.networks().values()]
        for candidate in ipaddress.IPv4Network(DEFAULT_POOLS).subnets(new_prefix=DEFAULT_PREFIX):
            if not any(candidate.overlaps(net) for net in used):
                return str(candidate)
        raise Refused(f"no free /{DEFAULT_PREFIX} left in {DEFAULT_POOLS}: give --subnet")

    def _pool(self, pool_id: str) -> st.Pool:
        return _known(self.state.pools, pool_id, "pool")

    async def _release_pool(self, body: Mapping[str, Any]) -> Answer:
        req = p.PoolRef.decode(body)
        pool = self._pool(req.pool_id)
        if pool.network_id is not None and pool.network_id in self.state.networks:
            raise Refused(f"pool {req.pool_id!r} is used by network {pool.network_id[:12]}")
        del self.state.pools[req.pool_id]
        self.save()
        return {}

    async def _request_address(self, body: Mapping[str, Any]) -> Answer:
        req = p.RequestAddress.decode(body)
        pool = self._pool(req.pool_id)
        net = ipaddress.IPv4Network(pool.subnet)
        wanted = str(_parsed(values.host_in, req.address, net, "address").ip) if req.address else None
        if req.gateway:
            gateway = wanted or str(next(net.hosts()))
            if pool.gateway is not None and pool.gateway != gateway:
                raise Refused(f"pool {req.pool_id!r} already has gateway {pool.gateway}")
            pool.gateway = gateway
            self.save()
            return {"Address": _with_prefix(gateway, pool.subnet), "Data": {}}
        if pool.network_id is None:
            raise Refused(f"pool {req.pool_id!r} has no network yet")
        name = await self._bind(pool.network_id)
        address = await self.addresses.request(name, wanted)
        pool.addresses.append(address)
        try:
            self.save()
        except OSError:
            pool.addresses.remove(address)
            await self.addresses.release(name, address)
            raise
        return {"Address": _with_prefix(address, pool.subnet), "Data": {}}

    async def _release_address(self, body: Mapping[str, Any]) -> Answer:
        req = p.ReleaseAddress.decode(body)
        pool = self._pool(req.pool_id)
        address = _bare(req.address)
        if address == pool.gateway:
            pool.gateway = None
        elif address in pool.addresses:
            pool.addresses.remove(address)
            network = self.state.networks.get(pool.network_id or "")
            if network is not None and network.name is not None:
                await self.addresses.release(network.name, address)
        else:
            raise Refused(f"address {address} is not allocated in pool {req.pool_id!r}")
        self.save()
        return {}

    # -- networks ---------------------------------------------------------------------------

    async def _create_network(self, body: Mapping[str, Any]) -> Answer:
        req = p.CreateNetwork.decode(body)
        if req.ipv6:
            raise Refused("IPv6 is not supported")
        if req.network_id in self.state.networks:
            raise Refused(f"network {req.network_id[:12]} exists already")
        if len(req.ipv4) != 1:
            raise Refused("a swimnet network has exactly one IPv4 subnet")
        data = req.ipv4[0]
        pool_id = f"{ADDRESS_SPACE}/{data.pool}"
        pool = self.state.pools.get(pool_id)
        if pool is None or data.address_space != ADDRESS_SPACE:
            raise Refused("swimnet networks take their addresses from swimnet: add --ipam-driver swimnet")
        if pool.network_id is not None:
            raise Refused(f"pool {pool_id!r} is used by network {pool.network_id[:12]}")
        if data.gateway and _bare(data.gateway) != pool.gateway:
            raise Refused(f"gateway {data.gateway} is not the pool's ({pool.gateway})")
        pool.network_id = req.network_id
        self.state.networks[req.network_id] = st.Network(
            pool_id, options=dict(req.options), created=self.clock()
        )
        self.save()
        return {}

    def _network(self, network_id: str) -> st.Network:
        return _known(self.state.networks, network_id, "network")

    async def _delete_network(self, body: Mapping[str, Any]) -> Answer:
        req = p.NetworkRef.decode(body)
        network = self._network(req.network_id)
        used = [e for e, ep in self.state.endpoints.items() if ep.network_id == req.network_id]
        if used:
            raise Refused(f"network {req.network_id[:12]} still has endpoint {used[0][:12]}")
        del self.state.networks[req.network_id]
        pool = self.state.pools.get(network.pool_id)
        if pool is not None:
            pool.network_id = None
        self.save()
        return {}

    async def _bind(self, network_id: str) -> str:
        """The swimnet network of a Docker network (see the module rules)."""
        network = self._network(network_id)
        pool = self._pool(network.pool_id)
        if network.name is not None:
            return network.name
        found = await self.docker.network(network_id)
        if found is None:
            raise Refused(f"dockerd does not know network {network_id[:12]}")
        name: str = _parsed(values.name, found.name, "name")
        record = self.ops.overlay.view.network(name)
        if record is None:
            try:
                await self.ops.networks.create(
                    name, pool.subnet, gateway=pool.gateway, options=network.options
                )
            except OperationError:
                if self.ops.overlay.view.network(name) is None:
                    raise
                # another host created it meanwhile: adopt it as below
            record = self.ops.overlay.view.network(name)
            assert record is not None
        if record.subnet != pool.subnet:
            raise Refused(
                f"network {name!r} exists in the cluster with subnet {record.subnet}, not {pool.subnet}: "
                f"remove this Docker network and create it with --subnet {record.subnet}"
            )
        if (record.gateway or None) != pool.gateway:
            raise Refused(
                f"network {name!r} exists in the cluster with gateway {record.gateway}, not {pool.gateway}: "
                f"remove this Docker network and create it with --gateway {record.gateway}"
            )
        network.name = name
        self.save()
        event(log, "docker network bound", event="docker_bound", network=name, docker_id=network_id[:12])
        return name

    # -- endpoints --------------------------------------------------------------------------

    async def _create_endpoint(self, body: Mapping[str, Any]) -> Answer:
        req = p.CreateEndpoint.decode(body)
        network = self._network(req.network_id)
        pool = self._pool(network.pool_id)
        if req.endpoint_id in self.state.endpoints:
            raise Refused(f"endpoint {req.endpoint_id[:12]} exists already")
        if req.address_v6:
            raise Refused("IPv6 is not supported")
        if not req.address:
            raise Refused("the endpoint has no IPv4 address (use --ipam-driver swimnet)")
        iface = _parsed(values.host_in, req.address, ipaddress.IPv4Network(pool.subnet), "address")
        if str(iface.ip) not in pool.addresses:
            raise Refused(f"address {iface.ip} was not handed out by swimnet's IPAM")
        mac = _parsed(values.mac, req.mac, "mac") if req.mac else mac_from_ip(str(iface.ip))
        await self._bind(req.network_id)
        self.state.endpoints[req.endpoint_id] = st.Endpoint(
            req.network_id, _with_prefix(str(iface.ip), pool.subnet), mac, self.clock()
        )
        self.save()
        return {"Interface": {} if req.mac else {"MacAddress": mac}}

    def _endpoint(self, ref: p.EndpointRef) -> st.Endpoint:
        endpoint = self.state.endpoints.get(ref.endpoint_id)
        if endpoint is None or endpoint.network_id != ref.network_id:
            raise Refused(f"unknown endpoint {ref.endpoint_id[:12]} of network {ref.network_id[:12]}")
        return endpoint

    async def _endpoint_info(self, body: Mapping[str, Any]) -> Answer:
        endpoint = self._endpoint(p.EndpointRef.decode(body))
        name = self._network(endpoint.network_id).name
        value = {"swimnet_network": name, "ip": endpoint.ip, "mac": endpoint.mac}
        if endpoint.swimnet_id is not None:
            value["swimnet_endpoint"] = endpoint.swimnet_id
        return {"Value": value}

    async def _join(self, body: Mapping[str, Any]) -> Answer:
        req = p.Join.decode(body)
        ref = p.EndpointRef(req.network_id, req.endpoint_id)
        endpoint = self._endpoint(ref)
        if endpoint.swimnet_id is not None:
            raise Refused(f"endpoint {req.endpoint_id[:12]} is joined already")
        name = await self._bind(req.network_id)
        docker = await self.docker.network(req.network_id)
        container = docker.endpoints.get(req.endpoint_id) if docker is not None else None
        if container is None:
            raise Refused(f"dockerd does not list endpoint {req.endpoint_id[:12]} (no container name)")
        created = await self.ops.endpoints.create(
            name,
            _parsed(values.name, container, "container name"),
            endpoint.ip,
            mac=endpoint.mac,
            netns=_parsed(values.netns_name, req.sandbox_key, "SandboxKey"),
            handoff=handoff_name(req.endpoint_id),
        )
        endpoint.swimnet_id = created.spec.endpoint_id
        endpoint.sandbox = req.sandbox_key
        try:
            self.save()
        except OSError:
            await self.ops.endpoints.remove(created.spec.endpoint_id)
            endpoint.swimnet_id = endpoint.sandbox = None
            raise
        self.serve_names(req.endpoint_id)
        gateway = self._pool(self._network(req.network_id).pool_id).gateway
        interface = {"SrcName": handoff_name(req.endpoint_id), "DstPrefix": DST_PREFIX}
        answer: Answer = {"InterfaceName": interface}
        if gateway:
            answer["Gateway"] = gateway
        return answer

    async def _leave(self, body: Mapping[str, Any]) -> Answer:
        ref = p.EndpointRef.decode(body)
        endpoint = self._endpoint(ref)
        if endpoint.swimnet_id is None:
            raise Refused(f"endpoint {ref.endpoint_id[:12]} is not joined")
        await self._unpublish(endpoint)
        self.save()
        return {}

    async def _unpublish(self, endpoint: st.Endpoint) -> None:
        """Remove the endpoint's swimnet endpoint (already gone: fine)."""
        if endpoint.swimnet_id is None:
            return
        try:
            await self.ops.endpoints.remove(endpoint.swimnet_id)
        except OperationError as exc:
            if exc.kind is not ErrorKind.NOT_FOUND:
                raise
        if self.resolvers is not None:
            await self.resolvers.detach(endpoint.swimnet_id)
        endpoint.swimnet_id = endpoint.sandbox = None

    async def _delete_endpoint(self, body: Mapping[str, Any]) -> Answer:
        ref = p.EndpointRef.decode(body)
        endpoint = self._endpoint(ref)
        await self._unpublish(endpoint)
        del self.state.endpoints[ref.endpoint_id]
        self.save()
        return {}

    def serve_names(self, endpoint_id: str | None = None) -> None:
        """Start the resolver of a joined endpoint's container (all: None) once its namespace
        exists (in the background: Docker makes it after `Join` answered)."""
        if self.resolvers is None or self.nursery is None:
            return
        wanted = [endpoint_id] if endpoint_id is not None else sorted(self.state.endpoints)
        for docker_id in wanted:
            endpoint = self.state.endpoints.get(docker_id)
            if endpoint is not None and endpoint.swimnet_id and endpoint.sandbox:
                self.nursery.start_soon(self._resolver, endpoint.swimnet_id, endpoint.sandbox)

    async def _resolver(self, swimnet_id: str, sandbox: str) -> None:
        if not await wait_for_namespace(sandbox, SANDBOX_WAIT):
            event(
                log,
                "docker sandbox never appeared",
                level=logging.WARNING,
                event="docker_sandbox_missing",
                endpoint=swimnet_id,
                sandbox=sandbox,
            )
            return
        spec = self.ops.overlay.local.get(swimnet_id)
        if spec is None or self.resolvers is None:
            return  # removed meanwhile
        try:
            await self.resolvers.attach(sandbox, swimnet_id, spec.network)
        except (OSError, SwimnetError) as exc:
            self.ops.overlay.stats["dns_attach_failures"] += 1
            event(
                log,
                "docker container resolver not started",
                level=logging.ERROR,
                event="dns_attach_failed",
                endpoint=swimnet_id,
                netns=sandbox,
                error=str(exc),
            )

    async def forget_endpoint(self, endpoint_id: str) -> None:
        """Remove an endpoint Docker no longer knows (the reconcile; the caller holds the
        lock and saves): its swimnet endpoint, its record, its address."""
        endpoint = self.state.endpoints[endpoint_id]
        await self._unpublish(endpoint)
        del self.state.endpoints[endpoint_id]
        network = self.state.networks.get(endpoint.network_id)
        pool = self.state.pools.get(network.pool_id) if network is not None else None
        address = _bare(endpoint.ip)
        if network is not None and pool is not None and address in pool.addresses:
            pool.addresses.remove(address)
            if network.name is not None:
                await self.addresses.release(network.name, address)

    def forget_network(self, network_id: str) -> None:
        """Forget a network Docker no longer knows, and its pool (the caller saves)."""
        network = self.state.networks.pop(network_id)
        self.state.pools.pop(network.pool_id, None)

    async def _discover(self, body: Mapping[str, Any]) -> Answer:
        p.Discovery.decode(body)
        return {}

    async def _external(self, body: Mapping[str, Any]) -> Answer:
        self._endpoint(p.EndpointRef.decode(body))
        return {}


def _known(table: Mapping[str, T], key: str, what: str) -> T:
    """A record of the plugin's, or the refusal naming the unknown id."""
    found = table.get(key)
    if found is None:
        raise Refused(f"unknown {what} {key[:40]!r}")
    return found


def _parsed(parse: Callable[..., Any], *args: Any) -> Any:
    """A swimnet.values verdict; its InvalidValue refused with the field named."""
    try:
        return parse(*args)
    except values.InvalidValue as exc:
        raise Refused(f"{exc.field}: {exc.reason}") from None
