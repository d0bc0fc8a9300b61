"""What the plugin asks its dockerd: the name of a network and the names of its endpoints.

Docker's remote driver protocol never tells a driver a network's or a container's name, yet
swimnet networks are cluster-wide by name and its DNS answers container names. Both are in
dockerd's API (`GET /networks/{id}`: `Name`, and `Containers` with each endpoint's id and
container name), readable while dockerd is in a driver call (the network is stored before
any endpoint is made, an endpoint before it joins a sandbox), the way Calico's and Weave's
plugins read them.

Rules:
- `DockerApi` is the narrow Protocol the plugin uses; `UnixDockerApi` speaks HTTP/1.1 (h11)
  to dockerd's Unix socket, one connection per request;
- an answer is bounded (MAX_ANSWER bytes) and checked: a network must have a string `Name`
  and an object `Containers` of objects with string `EndpointID` and `Name`; anything else
  is a `DockerApiError`, and so is a request that does not finish within `timeout`;
- 404 means Docker does not know the network: None, not an error;
- the event stream (`GET /events`, filtered to network creations) is read line by line, a
  line at most MAX_EVENT bytes; a line that is not an event object with a string
  `Actor.ID` is skipped (counted in `skipped_events`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import attrs
import h11
import trio

from swimnet.errors import SwimnetError

MAX_ANSWER = 8 * 1024 * 1024
MAX_EVENT = 64 * 1024
DEFAULT_TIMEOUT = 10.0
CREATES = json.dumps({"type": ["network"], "event": ["create"]})


class DockerApiError(SwimnetError):
    """dockerd could not be asked, or answered something unexpected."""


@attrs.frozen
class DockerNetwork:
    network_id: str
    name: str
    endpoints: Mapping[str, str]
    """Endpoint id -> container name, for the endpoints of containers attached now."""


class DockerApi(Protocol):
    async def network(self, network_id: str) -> DockerNetwork | None:
        """The network as dockerd knows it; None if it does not."""
        ...

    def network_events(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[str]]:
        """dockerd's event stream of network creations, subscribed on entry: the ids of the
        networks created from then on (the iteration ends when dockerd closes the stream)."""
        ...


def parse_network(network_id: str, doc: Any) -> DockerNetwork:
    """A network from dockerd's inspect answer (see the module rules)."""
    if type(doc) is not dict or type(doc.get("Name")) is not str:
        raise DockerApiError(f"network {network_id[:12]}: the answer has no name")
    containers = doc.get("Containers") or {}
    if type(containers) is not dict:
        raise DockerApiError(f"network {network_id[:12]}: Containers is not an object")
    endpoints: dict[str, str] = {}
    for item in containers.values():
        if type(item) is not dict:
            raise DockerApiError(f"network {network_id[:12]}: a container entry is not an object")
        endpoint, name = item.get("EndpointID"), item.get("Name")
        if type(endpoint) is not str or type(name) is not str:
            raise DockerApiError(f"network {network_id[:12]}: a container entry lacks EndpointID or Name")
        endpoints[endpoint] = name
    return DockerNetwork(network_id, doc["Name"], endpoints)


class UnixDockerApi:
    """dockerd's API on a Unix socket (`unix:///var/run/docker.sock` or a plain path)."""

    def __init__(self, address: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = address.removeprefix("unix://")
        self.timeout = timeout
        self.skipped_events = 0

    @contextlib.asynccontextmanager
    async def network_events(self) -> AsyncIterator[AsyncIterator[str]]:
        try:
            with trio.fail_after(self.timeout):
                stream = await trio.open_unix_socket(self.path)
        except (OSError, trio.TooSlowError) as exc:
            raise DockerApiError(f"dockerd at {self.path}: cannot follow its events: {exc!r}") from None
        async with stream:
            conn = h11.Connection(our_role=h11.CLIENT)
            target = f"/events?filters={quote(CREATES, safe='')}"
            request = h11.Request(method="GET", target=target, headers=[("Host", "docker")])
            try:
                await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
                with trio.fail_after(self.timeout):
                    head = await _next(conn, stream)
            except (OSError, trio.TooSlowError, h11.ProtocolError) as exc:
                raise DockerApiError(f"dockerd at {self.path}: events: {exc!r}") from None
            if not isinstance(head, h11.Response) or head.status_code != 200:
                raise DockerApiError(f"dockerd at {self.path}: events: {head!r}")
            yield self._created(conn, stream)

    async def _created(self, conn: h11.Connection, stream: trio.abc.Stream) -> AsyncIterator[str]:
        buffer = bytearray()
        while True:
            try:
                got = await _next(conn, stream)
            except (OSError, h11.ProtocolError):
                return
            if not isinstance(got, h11.Data):
                return  # the end of the stream
            buffer += got.data
            *lines, rest = bytes(buffer).split(b"\n")
            if len(rest) > MAX_EVENT:
                raise DockerApiError(f"dockerd at {self.path}: an event longer than {MAX_EVENT} bytes")
            buffer = bytearray(rest)
            for line in lines:
                if not line.strip():
                    continue
                network_id = _created_id(line)
                if network_id is None:
                    self.skipped_events += 1
                else:
                    yield network_id

    async def network(self, network_id: str) -> DockerNetwork | None:
        status, body = await self._get(f"/networks/{quote(network_id, safe='')}")
        if status == 404:
            return None
        if status != 200:
            raise DockerApiError(f"GET /networks/{network_id[:12]}: status {status}")
        try:
            doc = json.loads(body)
        except ValueError:
            raise DockerApiError(f"network {network_id[:12]}: the answer is not JSON") from None
        return parse_network(network_id, doc)

    async def _get(self, target: str) -> tuple[int, bytes]:
        try:
            with trio.fail_after(self.timeout):
                stream = await trio.open_unix_socket(self.path)
                async with stream:
                    return await _exchange(stream, target)
        except trio.TooSlowError:
            raise DockerApiError(f"dockerd at {self.path}: no answer within {self.timeout} s") from None
        except OSError as exc:
            raise DockerApiError(f"dockerd at {self.path}: {exc.strerror or exc}") from None
        except h11.ProtocolError as exc:
            raise DockerApiError(f"dockerd at {self.path}: bad HTTP: {exc}") from None


async def _next(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
    """The connection's next h11 event, reading as needed."""
    while True:
        got = conn.next_event()
        if got is not h11.NEED_DATA:
            return got
        conn.receive_data(bytes(await stream.receive_some(65536)))


def _created_id(line: bytes) -> str | None:
    """The network id of one event line (None: not a usable event)."""
    if len(line) > MAX_EVENT:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    actor = doc.get("Actor") if type(doc) is dict else None
    network_id = actor.get("ID") if type(actor) is dict else None
    return network_id if type(network_id) is str and network_id else None


async def _exchange(stream: trio.abc.Stream, target: str) -> tuple[int, bytes]:
    conn = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(method="GET", target=target, headers=[("Host", "docker"), ("Connection", "close")])
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    status = 0
    body = bytearray()
    while True:
        got = conn.next_event()
        if got is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
            continue
        if isinstance(got, h11.Response):
            status = got.status_code
        elif isinstance(got, h11.Data):
            body += got.data
            if len(body) > MAX_ANSWER:
                raise DockerApiError(f"{target}: answer larger than {MAX_ANSWER} bytes")
        elif isinstance(got, (h11.EndOfMessage, h11.ConnectionClosed)):
            return status, bytes(body)
