"""What every part of the Docker plugin shares: its collaborators, its records (`state`,
saved in the state directory), the lock that serialises the calls, and the record lookups.

Rules: a lookup of an id the plugin does not know is refused naming it (`Refused`); the
records change only under `lock` (the plugin's `call`, the reconcile, the binding of a
network dockerd created), and `save()` writes them all.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from swimnet.agent.docker import protocol as p
from swimnet.agent.docker import state as st
from swimnet.agent.docker.addresses import AddressSource
from swimnet.agent.docker.dockerd import DockerApi
from swimnet.agent.docker.refusals import Refused, known
from swimnet.agent.domain.dns import ResolverPoolProtocol
from swimnet.agent.domain.operations import Operations

ADDRESS_SPACE = "swimnet"


class PluginCore:
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

    def save(self) -> None:
        st.save(self.state_dir, self.state)

    def _pool(self, pool_id: str) -> st.Pool:
        return known(self.state.pools, pool_id, "pool")

    def _network(self, network_id: str) -> st.Network:
        return known(self.state.networks, network_id, "network")

    def _endpoint(self, ref: p.EndpointRef) -> st.Endpoint:
        endpoint = self.state.endpoints.get(ref.endpoint_id)
        if endpoint is None or endpoint.network_id != ref.network_id:
            raise Refused(f"unknown endpoint {ref.endpoint_id[:12]} of network {ref.network_id[:12]}")
        return endpoint
