"""Binding a Docker network to the swimnet network of the same name.

Rules: Docker never tells a driver a network's name, so a Docker network is bound to the
swimnet network of the same name (read from dockerd: `DockerApi`) as soon as dockerd
reports it created (`bind_created`, from its event stream), else when an address or an
endpoint is first needed (`_bind`): absent, it is created (subnet, gateway, `-o` options);
present with the same subnet and gateway, it is adopted (same VNI, the cluster's);
otherwise refused with an error naming both subnets (the Docker network stays unbound and
every container start on it fails with that error).
"""

from __future__ import annotations

import copy
import logging

from swimnet import values
from swimnet.agent.docker.core import PluginCore
from swimnet.agent.docker.dockerd import DockerApiError
from swimnet.agent.docker.refusals import Refused, parsed
from swimnet.agent.errors import OperationError
from swimnet.agent.logs import LOGGER, event

log = logging.getLogger(LOGGER)


class NetworkBinding(PluginCore):
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

    async def _bind(self, network_id: str) -> str:
        """The swimnet network of a Docker network (see the module rules)."""
        network = self._network(network_id)
        pool = self._pool(network.pool_id)
        if network.name is not None:
            return network.name
        found = await self.docker.network(network_id)
        if found is None:
            raise Refused(f"dockerd does not know network {network_id[:12]}")
        name: str = parsed(values.name, found.name, "name")
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
