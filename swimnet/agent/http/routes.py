"""The control API: HTTP/1.1 + JSON on the agent's Unix socket (mode 0600).

    GET    /v1/status                                  health, counters, identity
    GET    /v1/members                                 the cluster as this agent sees it
    GET    /v1/networks                                every network (cluster-wide)
    POST   /v1/networks                                {"name", "subnet", "vni"?, "gateway"?, "mtu"?,
                                                        "options"?}
    GET    /v1/networks/{name}                         inspect (VNI collision, agents, endpoints, conflicts)
    DELETE /v1/networks/{name}
    GET    /v1/endpoints[?network=NAME]                endpoints of the networks this agent holds
    POST   /v1/networks/{name}/endpoints               {"name", "ip", "mac"?, "netns"? | "pid"?, "ifname"?}
    GET    /v1/endpoints/{id-or-name}
    DELETE /v1/endpoints/{id-or-name}                  only on the agent that owns it
    GET    /v1/services[?network=NAME]
    POST   /v1/networks/{name}/services                {"name", "vip"?, "mode"?, "ports"?, "backends"?}
    GET    /v1/networks/{name}/services/{service}
    PATCH  /v1/networks/{name}/services/{service}      the fields given replace the old ones
    DELETE /v1/networks/{name}/services/{service}
    GET    /v1/keys                                    key ids (never key material), primary first
    POST   /v1/keys                                    {"key": base64}: install, cluster-wide
    PUT    /v1/keys/primary                            {"id": "8 hex"}: use, cluster-wide
    DELETE /v1/keys/{id}                               remove, cluster-wide
    GET    /v1/tables/{network}                        raw dump of a network's tables (diagnosis;
                                                       "_cluster" is the network definitions)
    GET    /v1/fdb/{network}                           what the datapath programmed

Answers are JSON: 200 (201 for a creation) with the resource; errors are
`{"error": "what is wrong", "field": "the request field or null"}` with 400 (bad request
body or value), 404 (no such resource), 405 (method), 409 (conflict with the current state:
name or address in use, resource busy, not the owner), 413 (body too large), 500 (the
datapath or the state directory failed: nothing was changed), 503 (a change requested
while the agent is still starting). A refused request changes
nothing. Path segments are percent-decoded.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import attrs

from swimnet.agent.domain import endpoints as endpoint_ops
from swimnet.agent.domain import networks as network_ops
from swimnet.agent.domain import services as service_ops
from swimnet.agent.domain.keys import KeysAdmin
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.errors import ApiError, conflict, not_found
from swimnet.agent.fields import Body
from swimnet.agent.http.answers import member_json
from swimnet.agent.http.server import Request, Response, error_response, json_response
from swimnet.errors import DatapathError, DecodeError
from swimnet.membership.member import Member
from swimnet.overlay import (
    NETWORKS_TABLE,
    PEERS_TABLE,
    SERVICES_TABLE,
    EndpointRecord,
    NetworkRecord,
    ServiceRecord,
)
from swimnet.tables.entry import Entry
from swimnet.wire.messages import State

Action = Callable[[Request, list[str]], Awaitable[tuple[int, Any]]]


@attrs.frozen
class Route:
    method: str
    pattern: re.Pattern[str]
    action: Action


class ControlApi:
    """Routes control requests to the agent's operations (see the module docstring)."""

    def __init__(
        self,
        agent: OverlayAgent,
        keys: KeysAdmin,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.agent = agent
        self.keys = keys
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
            if request.method != "GET" and not self.agent.started:
                return error_response(503, "the agent is starting (joining the cluster): try again shortly")
            try:
                status, payload = await route.action(request, args)
            except ApiError as exc:
                return json_response(exc.status, exc.to_json())
            return json_response(status, payload)
        if allowed:
            return error_response(
                405, f"method {request.method} not allowed here (allowed: {', '.join(allowed)})"
            )
        return error_response(404, f"no such resource: {request.path}")

    # -- cluster ----------------------------------------------------------------------------

    async def _status(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, self.status()

    async def _members(self, request: Request, args: list[str]) -> tuple[int, Any]:
        node = self.agent.node
        engine = node.engine

        def row(m: Member) -> dict[str, Any]:
            local = m.name == node.name
            return member_json(m, None if local else engine.rtt_estimate(m.name), local=local)

        members = sorted(node.members(), key=lambda m: (m.state is not State.ALIVE, m.name))
        return 200, [row(m) for m in members]

    # -- networks -----------------------------------------------------------------------------

    async def _networks(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, network_ops.listing(self.agent)

    async def _network_create(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 201, await network_ops.create(self.agent, Body(request.body))

    async def _network_inspect(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, network_ops.inspect(self.agent, args[0])

    async def _network_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, await network_ops.remove(self.agent, args[0])

    # -- endpoints ----------------------------------------------------------------------------

    async def _endpoints(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, endpoint_ops.listing(self.agent, request.query.get("network") or None)

    async def _endpoint_create(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 201, await endpoint_ops.create(self.agent, args[0], Body(request.body))

    async def _endpoint_inspect(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, endpoint_ops.inspect(self.agent, args[0])

    async def _endpoint_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, await endpoint_ops.remove(self.agent, args[0])

    # -- services -----------------------------------------------------------------------------

    async def _services(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, service_ops.listing(self.agent, request.query.get("network") or None)

    async def _service_create(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 201, await service_ops.create(self.agent, args[0], Body(request.body))

    async def _service_inspect(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, service_ops.inspect(self.agent, args[0], args[1])

    async def _service_update(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, await service_ops.update(self.agent, args[0], args[1], Body(request.body))

    async def _service_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, await service_ops.remove(self.agent, args[0], args[1])

    # -- keys ---------------------------------------------------------------------------------

    async def _keys(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, self.keys.listing()

    async def _key_install(self, request: Request, args: list[str]) -> tuple[int, Any]:
        body = Body(request.body)
        key = body.text("key", required=True) or ""
        body.done()
        return 200, await self.keys.install(key)

    async def _key_use(self, request: Request, args: list[str]) -> tuple[int, Any]:
        body = Body(request.body)
        key_id = body.text("id", required=True) or ""
        body.done()
        return 200, await self.keys.use(key_id)

    async def _key_remove(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, await self.keys.remove(args[0])

    # -- diagnosis ----------------------------------------------------------------------------

    async def _tables(self, request: Request, args: list[str]) -> tuple[int, Any]:
        return 200, dump_tables(self.agent, args[0])

    async def _fdb(self, request: Request, args: list[str]) -> tuple[int, Any]:
        network = args[0]
        driver = self.agent.driver
        if driver is None:
            raise conflict("datapath disabled: this agent runs with --no-datapath")
        if self.agent.view.network(network) is None:
            raise not_found(f"network {network!r} not found", "network")
        try:
            entries = await driver.fdb(network)
        except DatapathError as exc:
            raise ApiError(500, f"datapath: {exc}") from None
        return 200, {"network": network, "entries": entries}


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    NETWORKS_TABLE: NetworkRecord.decode,
    PEERS_TABLE: EndpointRecord.decode,
    SERVICES_TABLE: ServiceRecord.decode,
}


def _entry_json(agent: OverlayAgent, e: Entry) -> dict[str, Any]:
    state = agent.view.state
    out: dict[str, Any] = {
        "table": e.table,
        "key": e.key,
        "owner": e.owner,
        "ltime": e.ltime,
        "deleted": e.deleted,
        "hidden": state.is_failed(e.owner),
        "size": len(e.value),
    }
    decode = _DECODERS.get(e.table)
    try:
        if decode is None:
            raise DecodeError("unknown table")
        record = decode(e.value)
        out["value"] = attrs.asdict(record, filter=lambda a, _: a.name != "extra")
    except DecodeError:
        out["value"] = None
        out["raw"] = base64.b64encode(e.value).decode("ascii")
    return out


def dump_tables(agent: OverlayAgent, network: str) -> dict[str, Any]:
    """Every stored entry of a network (tombstones and hidden entries included), its
    attachments and its digest, like NetworkDB's diagnostic server."""
    state = agent.view.state
    attachments = state.attachments.of_network(network)
    if not state.is_joined(network):
        agents = sorted(n for n, a in attachments.items() if not a.leaving)
        where = f"; agents that do: {', '.join(agents)}" if agents else ""
        raise not_found(
            f"this agent does not hold network {network!r} (no local endpoint or service here){where}",
            "network",
        )
    entries = sorted(state.entries(network), key=lambda e: (e.table, e.key))
    count, digest = state.digest_hash(network)
    return {
        "network": network,
        "attachments": [
            {"node": node, "ltime": a.ltime, "leaving": a.leaving, "failed": state.is_failed(node)}
            for node, a in sorted(attachments.items())
        ],
        "entries": [_entry_json(agent, e) for e in entries],
        "digest": {"count": count, "hash": f"{digest:016x}"},
        "table_clock": state.table_clock.time,
    }
