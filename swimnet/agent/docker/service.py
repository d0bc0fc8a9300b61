"""The Docker plugin as the daemon runs it (`swimnet-agent run --docker-plugin [PATH]`).

Rules: built from the agent's settings (`docker_plugin`: the socket, `docker_api`: the
dockerd it serves, `state_dir`: where its records live) over the same `Operations` the
control API serves; addresses from the agent's cluster-wide IPAM (`ClusterAddresses`);
wall-clock time for the records' ages;
with the datapath on, a resolver pool of its own for Docker's containers, listening at
DOCKER_DNS_ADDRESS in each (the upstream of Docker's embedded DNS; see the README).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time

import trio

from swimnet.agent.daemon.settings import AgentSettings
from swimnet.agent.docker.addresses import ClusterAddresses
from swimnet.agent.docker.container_names import DOCKER_DNS_ADDRESS
from swimnet.agent.docker.dockerd import UnixDockerApi
from swimnet.agent.docker.plugin import DockerPlugin
from swimnet.agent.docker.server import serve_plugin
from swimnet.agent.domain.operations import Operations
from swimnet.agent.logs import LOGGER, event

log = logging.getLogger(LOGGER)


async def serve_docker(
    ops: Operations, settings: AgentSettings, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the plugin until cancelled (for `nursery.start`)."""
    assert settings.docker_plugin is not None
    async with contextlib.AsyncExitStack() as stack:
        resolvers = None
        if ops.overlay.driver is not None:  # the datapath is on: containers get resolvers
            from swimnet.dns.pool import open_resolver_pool
            from swimnet.dns.upstream import Upstreams

            pool = open_resolver_pool(
                ops.overlay.dns.index.view,
                config=settings.resolver_config(address=DOCKER_DNS_ADDRESS),
                metrics=ops.overlay.dns.metrics,
                upstreams=Upstreams(settings.resolv_conf),
            )
            resolvers = await stack.enter_async_context(pool)
        plugin = DockerPlugin(
            ops,
            docker=UnixDockerApi(settings.docker_api),
            addresses=ClusterAddresses(ops.overlay),
            state_dir=settings.state_dir,
            clock=time.time,
            resolvers=resolvers,
        )
        nursery = await stack.enter_async_context(trio.open_nursery())
        grace = settings.docker_grace
        await nursery.start(
            functools.partial(serve_plugin, reconcile_interval=grace, grace=grace),
            plugin,
            settings.docker_plugin,
        )
        event(
            log,
            "docker plugin serving",
            event="docker_plugin",
            socket=settings.docker_plugin,
            docker_api=settings.docker_api,
        )
        task_status.started()
