"""Following dockerd's network creations, so `docker network create` makes the swimnet
network cluster-wide at once (Docker's CreateNetwork carries no name: the plugin learns it
from dockerd once the network is stored, see swimnet.agent.docker.plugin).

Rules: subscribe to dockerd's event stream (network creations), then bind every recorded
network still unbound (created while no stream was open: an agent restart, a lost stream),
then each network the stream reports (`DockerPlugin.bind_created`: networks the plugin did
not record, or already bound, are ignored); a stream that cannot be opened or ends (dockerd
restarted or down) is opened again after RETRY_MIN seconds, doubling up to RETRY_MAX, reset
once a stream opened. Binding is also done on first use, so nothing depends on this task.
"""

from __future__ import annotations

import logging

import trio

from swimnet.agent.docker.dockerd import DockerApiError
from swimnet.agent.docker.plugin import DockerPlugin
from swimnet.agent.logs import LOGGER, event

log = logging.getLogger(LOGGER)

RETRY_MIN = 1.0
RETRY_MAX = 30.0


async def follow_network_creations(plugin: DockerPlugin) -> None:
    """Until cancelled (see the module rules)."""
    retry = RETRY_MIN
    while True:
        try:
            async with plugin.docker.network_events() as created:
                retry = RETRY_MIN
                for network_id in plugin.unbound():
                    await plugin.bind_created(network_id)
                async for network_id in created:
                    await plugin.bind_created(network_id)
        except DockerApiError as exc:
            event(
                log,
                "docker events unavailable",
                level=logging.INFO,
                event="docker_events_lost",
                error=str(exc),
                retry=retry,
            )
        await trio.sleep(retry)
        retry = min(retry * 2, RETRY_MAX)
