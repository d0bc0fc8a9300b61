"""The control API: HTTP/1.1 + JSON on the agent's Unix socket (mode 0600).

    GET    /v1/status                                  health, counters, identity
    GET    /v1/members                                 the cluster as this agent sees it
    GET    /v1/networks                                every network (cluster-wide)
    POST   /v1/networks                                {"name", "subnet", "vni"?, "gateway"?, "mtu"?,
                                                        "options"?}
    GET    /v1/networks/{name}                         inspect (VNI collision, agents, endpoints, conflicts)
    DELETE /v1/networks/{name}
    GET    /v1/endpoints[?network=NAME]                endpoints of the networks this agent holds
    POST   /v1/networks/{name}/endpoints               {"name", "ip"? (default: from the IPAM), "mac"?,
                                                        "netns"? | "pid"?, "ifname"?, "service"?}
    GET    /v1/endpoints/{id-or-name}
    DELETE /v1/endpoints/{id-or-name}                  only on the agent that owns it
    GET    /v1/services[?network=NAME]
    POST   /v1/networks/{name}/services                {"name", "vip"?, "mode"?, "ports"?, "backends"?}
    GET    /v1/networks/{name}/services/{service}
    PATCH  /v1/networks/{name}/services/{service}      the fields given replace the old ones;
                                                       "add_backends"? / "rm_backends"? change the list
    DELETE /v1/networks/{name}/services/{service}
    GET    /v1/keys                                    key ids (never key material), primary first
    POST   /v1/keys                                    {"key": base64}: install, cluster-wide
    PUT    /v1/keys/primary                            {"id": "8 hex"}: use, cluster-wide
    DELETE /v1/keys/{id}                               remove, cluster-wide
    GET    /v1/tables/{network}                        raw dump of a network's tables (diagnosis;
                                                       "_cluster" is the network definitions)
    GET    /v1/fdb/{network}                           what the datapath programmed
    GET    /v1/dns/{network}/{name}[?from=EP&type=A]   resolve as a container would (type A,
                                                       AAAA or PTR; from: a local endpoint)

Answers are JSON: 200 (201 for a creation) with the resource; errors are
`{"error": "what is wrong", "field": "the request field or null"}` with 400 (bad request
body or value), 404 (no such resource), 405 (method), 409 (conflict with the current state:
name or address in use, resource busy, not the owner), 413 (body too large), 500 (the
datapath or the state directory failed: nothing was changed), 503 (a change requested
while the agent is still starting, or an address allocation that waited for other agents'
votes and gave up: the message names them). A refused request changes nothing. Path segments are
percent-decoded.

Rules: a route parses (path segments, query, body -> typed arguments, see `requests`),
calls one domain operation (`swimnet.agent.domain.operations.Operations`) and renders its
answer (`answers`); the only translation of a domain error is its kind to a status
(INVALID 400, NOT_FOUND 404, CONFLICT 409, FAILED 500, UNAVAILABLE 503), with the domain's message and field.
Listings are described, rendered and encoded a batch of rows at a time with checkpoints in
between (`RENDER_BATCH`, `server.json_answer`): thousands of rows never hold the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

import attrs
import trio

from swimnet.agent.domain.operations import Operations
from swimnet.agent.errors import ErrorKind, OperationError
from swimnet.agent.http import answers, requests
from swimnet.agent.http.server import Request, Response, error_response, json_answer

Action = Callable[[Request, list[str]], Awaitable[tuple[int, Any]]]
T = TypeVar("T")
RENDER_BATCH = 250

STATUS = {
    ErrorKind.INVALID: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.FAILED: 500,
    ErrorKind.UNAVAILABLE: 503,
}
"""The status of each domain error kind (the only translation the routes make)."""


async def _rendered(items: Sequence[T], render: Callable[[T], Any]) -> list[Any]:
    """`[render(i) for i in items]`, with a checkpoint every RENDER_BATCH items."""
    out = []
    for index, item in enumerate(items):
        if index and not index % RENDER_BATCH:
            await trio.lowlevel.checkpoint()
        out.append(render(item))
    return out


@attrs.frozen
class Route:
    method: str
    pattern: re.Pattern[str]
    action: Action


class ControlApi:
    """Routes control requests to the agent's operations (see the module docstring)."""

    def __init__(self, ops: Operations, status: Callable[[], dict[str, Any]]) -> None:
        self.ops = ops
        self.status = status
        seg = r"([^/]+)"
        table: list[tuple[str, str, Action]] = [
            ("GET", "/v1/status", self._status),
            ("GET", "/v1/members", self._members),
            ("GET", "/v1/networks", self._networks),
            ("POST", "/v1/networks", self._network_create),
            ("GET", f"/v1/networks/{seg}", self._network_inspect),
            ("DELETE", f"/v1/networks/{seg}", self._network_remove),
            ("GET", "/v1/endpoints", self._endpoints),
            ("POST", f"/v1/networks/{seg}/endpoints", self._endpoint_create),
            ("GET", f"/v1/endpoints/{seg}", self._endpoint_inspect),
            ("DELETE", f"/v1/endpoints/{seg}", self._endpoint_remove),
            ("GET", "/v1/services", self._services),
            ("POST", f"/v1/networks/{seg}/services", self._service_create),
            ("GET", f"/v1/networks/{seg}/services/{seg}", self._service_inspect),
            ("PATCH", f"/v1/networks/{seg}/services/{seg}", self._service_update),
            ("DELETE", f"/v1/networks/{seg}/services/{seg}", self._service_remove),
            ("GET", "/v1/keys", self._keys),
            ("POST", "/v1/keys", self._key_install),
            ("PUT", "/v1/keys/primary", self._key_use),
            ("DELETE", f"/v1/keys/{seg}", self._key_remove),
            ("GET", f"/v1/tables/{seg}", self._tables),
            ("GET", f"/v1/fdb/{seg}", self._fdb),
            ("GET", f"/v1/dns/{seg}/{seg}", self._dns),
        ]
        self.routes = [Route(m, re.compile(p + "/?"), a) for m, p, a in table]

    async def handle(self, request: Request) -> Response:
        allowed: list[str] = []
        for route in self.routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            args = [unquote(g) for g in match.groups()]
            if request.method != "GET" and not self.ops.ready:
                return error_response(503, "the agent is starting (joining the cluster): try again shortly")
            try:
                status, payload = await route.action(request, args)
            except OperationError as exc:
                return error_response(STATUS[exc.kind], exc.message, exc.field)
            return await json_answer(status, payload)
        if allowed:
            return error_response(
                405, f"method {request.method} not allowed here (allowed: {', '.join(allowed)})"
            )
        return error_response(404, f"no such resource: {request.path}")

    # -- cluster ----------------------------------------------------------------------------

    async def _status(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, self.status()

    async def _members(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, [answers.member_json(m) for m in self.ops.diagnosis.members()]

    # -- networks -----------------------------------------------------------------------------

    async def _networks(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, await _rendered(await self.ops.networks.listing(), answers.network_json)

    async def _network_create(self, request: Request, args: list[str]) -> tuple[int, Any]:
        r = requests.network_create(request.body)
        info = await self.ops.networks.create(
            r.name, r.subnet, vni=r.vni, gateway=r.gateway, mtu=r.mtu, options=r.options
        )
        return 201, answers.network_json(info)

    async def _network_inspect(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.network_detail_json(self.ops.networks.inspect(args[0]))

    async def _network_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        await self.ops.networks.remove(args[0])
        return 200, {"removed": args[0]}

    # -- endpoints ----------------------------------------------------------------------------

    async def _endpoints(self, request: Request, args: list[str]) -> tuple[int, Any]:
        listing = await self.ops.endpoints.listing(request.query.get("network") or None)
        endpoints = await _rendered(listing.endpoints, answers.endpoint_json)
        return 200, answers.endpoint_listing_json(listing, endpoints)

    async def _endpoint_create(self, request: Request, args: list[str]) -> tuple[int, Any]:
        r = requests.endpoint_create(request.body)
        info = await self.ops.endpoints.create(
            args[0], r.name, r.ip, mac=r.mac, netns=r.netns, pid=r.pid, ifname=r.ifname, service=r.service
        )
        return 201, answers.endpoint_json(info)

    async def _endpoint_inspect(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.endpoint_json(self.ops.endpoints.inspect(args[0]))

    async def _endpoint_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.endpoint_removed_json(await self.ops.endpoints.remove(args[0]))

    # -- services -----------------------------------------------------------------------------

    async def _services(self, request: Request, args: list[str]) -> tuple[int, Any]:
        listing = self.ops.services.listing(request.query.get("network") or None)
        return 200, answers.service_listing_json(listing)

    async def _service_create(self, request: Request, args: list[str]) -> tuple[int, Any]:
        f = requests.service_fields(request.body, creating=True)
        assert f.name is not None
        info = await self.ops.services.create(
            args[0], f.name, vip=f.vip, mode=f.mode, ports=f.ports, backends=f.backends
        )
        return 201, answers.service_json(info)

    async def _service_inspect(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.service_detail_json(self.ops.services.detail(args[0], args[1]))

    async def _service_update(self, request: Request, args: list[str]) -> tuple[int, Any]:
        f = requests.service_fields(request.body, creating=False)
        info = await self.ops.services.update(
            args[0],
            args[1],
            vip=f.vip,
            mode=f.mode,
            ports=f.ports,
            backends=f.backends,
            add_backends=f.add_backends,
            rm_backends=f.rm_backends,
        )
        return 200, answers.service_json(info)

    async def _service_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        await self.ops.services.remove(args[0], args[1])
        return 200, {"removed": args[1], "network": args[0]}

    # -- keys ---------------------------------------------------------------------------------

    async def _keys(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.key_listing_json(self.ops.keys.listing())

    async def _key_install(self, request: Request, args: list[str]) -> tuple[int, Any]:
        key = requests.key_install(request.body)
        return 200, answers.key_result_json(await self.ops.keys.install(key))

    async def _key_use(self, request: Request, args: list[str]) -> tuple[int, Any]:
        key_id = requests.key_use(request.body)
        return 200, answers.key_result_json(await self.ops.keys.use(key_id))

    async def _key_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.key_result_json(await self.ops.keys.remove(args[0]))

    # -- diagnosis ----------------------------------------------------------------------------

    async def _tables(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, answers.tables_dump_json(self.ops.diagnosis.tables(args[0]))

    async def _fdb(self, request: Request, args: list[str]) -> tuple[int, Any]:
        network = args[0]
        return 200, {"network": network, "entries": await self.ops.diagnosis.fdb(network)}

    async def _dns(self, request: Request, args: list[str]) -> tuple[int, Any]:
        source = request.query.get("from") or None
        qtype = request.query.get("type") or "A"
        return 200, answers.dns_json(self.ops.dns.resolve(args[0], args[1], source=source, qtype=qtype))
