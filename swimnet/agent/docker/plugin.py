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
- the calls live in one module per concern, combined here: `ipam_calls` (pools and
  addresses), `network_calls`, `endpoint_calls` (with Join's hand-off veth, and the calls
  that change nothing), `binding` (a Docker network to the swimnet network of its name),
  `container_names` (the joined containers' resolvers), over `core` (the records, their
  lookups and the lock) and `refusals` (what a refusal is); each module states its rules.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from swimnet.agent.docker import protocol as p
from swimnet.agent.docker.addresses import AddressSource
from swimnet.agent.docker.dockerd import DockerApi, DockerApiError
from swimnet.agent.docker.endpoint_calls import EndpointCalls
from swimnet.agent.docker.ipam_calls import IpamCalls
from swimnet.agent.docker.network_calls import NetworkCalls
from swimnet.agent.docker.refusals import Answer, Refused, error_key
from swimnet.agent.domain.dns import ResolverPoolProtocol
from swimnet.agent.domain.operations import Operations
from swimnet.agent.errors import OperationError
from swimnet.agent.logs import LOGGER, event

log = logging.getLogger(LOGGER)


class DockerPlugin(IpamCalls, NetworkCalls, EndpointCalls):
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
        super().__init__(
            ops, docker=docker, addresses=addresses, state_dir=state_dir, clock=clock, resolvers=resolvers
        )
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

    # -- handshake and capabilities ---------------------------------------------------------

    async def _activate(self, body: Mapping[str, Any]) -> Answer:
        return {"Implements": ["NetworkDriver", "IpamDriver"]}

    async def _net_capabilities(self, body: Mapping[str, Any]) -> Answer:
        return {"Scope": "local", "ConnectivityScope": "global"}
