"""Names for Docker containers: once a joined container's namespace is mounted (dockerd
does that after Join answered: `sandbox`), a swimnet resolver serves it at
DOCKER_DNS_ADDRESS (dockerd's `--dns`, the upstream of its embedded DNS); Leave stops it.
A namespace that never appears, or a resolver that cannot start, is logged and counted
(`dns_attach_failures`), never fatal.
"""

from __future__ import annotations

import logging

from swimnet.agent.docker.core import PluginCore
from swimnet.agent.docker.sandbox import wait_for_namespace
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import SwimnetError

log = logging.getLogger(LOGGER)

DOCKER_DNS_ADDRESS = "127.0.0.12"
"""Where a Docker container's swimnet resolver listens: Docker's embedded DNS (127.0.0.11)
forwards the names it does not know there when dockerd runs with `--dns 127.0.0.12`."""
SANDBOX_WAIT = 60.0
"""How long a joined container's namespace may take to appear (see `sandbox`)."""


class ContainerNames(PluginCore):
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
