"""The plugin's socket: Docker's plugin protocol (HTTP/1.1 POST + JSON) on a Unix socket.

    await nursery.start(serve_plugin, plugin, "/run/docker/plugins/swimnet.sock")

Rules:
- the socket is made like the control socket (swimnet.agent.http.control_socket: mode 0600,
  a stale socket replaced, a live one refused); its name without `.sock` is the driver's
  name for Docker (`swimnet.sock` -> `-d swimnet --ipam-driver swimnet`), found by Docker's
  plugin discovery in /run/docker/plugins;
- `POST /<Interface>.<Method>`: the plugin's answer, status 200, content type
  `application/vnd.docker.plugins.v1.2+json` (refusals are `{"Err": ...}`, or `{"Error":
  ...}` for IPAM calls, with 200, as libnetwork reads them); a call the protocol does not
  have: 404 (Docker then treats the
  method as not implemented); another method than POST: 405; a body over the protocol's
  bound: 413 (the HTTP server's limits);
- the reconcile (swimnet.agent.docker.reconcile) runs beside the server, and so do the
  waits for joined containers' namespaces (their resolvers start once they exist) and the
  following of dockerd's network creations (swimnet.agent.docker.follow).
"""

from __future__ import annotations

import json

import trio

from swimnet.agent.docker.follow import follow_network_creations
from swimnet.agent.docker.plugin import DockerPlugin
from swimnet.agent.docker.protocol import MAX_BODY
from swimnet.agent.docker.reconcile import reconcile_forever
from swimnet.agent.http.control_socket import open_control_socket
from swimnet.agent.http.server import Limits, Request, Response, serve_http

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
DEFAULT_SOCKET = "/run/docker/plugins/swimnet.sock"


def _answer(status: int, payload: object) -> Response:
    return Response(status, json.dumps(payload, sort_keys=True).encode() + b"\n", CONTENT_TYPE)


class PluginHttp:
    def __init__(self, plugin: DockerPlugin) -> None:
        self.plugin = plugin

    async def handle(self, request: Request) -> Response:
        name = request.path.removeprefix("/")
        if name not in self.plugin.calls:
            return _answer(404, {"Err": f"swimnet: no call {name[:80]!r}"})
        if request.method != "POST":
            return _answer(405, {"Err": "swimnet: POST only"})
        return _answer(200, await self.plugin.call(name, request.body))


async def serve_plugin(
    plugin: DockerPlugin,
    path: str = DEFAULT_SOCKET,
    *,
    reconcile_interval: float = 30.0,
    grace: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the plugin on `path` and reconcile it, until cancelled (the socket is removed)."""
    sock = await open_control_socket(path)
    try:
        async with trio.open_nursery() as nursery:
            plugin.nursery = nursery
            plugin.serve_names()  # the containers joined before a restart
            http = PluginHttp(plugin)
            await nursery.start(serve_http, [sock.listener], http.handle, Limits(max_body=MAX_BODY))
            nursery.start_soon(lambda: reconcile_forever(plugin, grace=grace, interval=reconcile_interval))
            nursery.start_soon(follow_network_creations, plugin)
            task_status.started()
    finally:
        sock.close()
