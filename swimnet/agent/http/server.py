"""A small HTTP/1.1 server: h11 over trio streams (the control socket and the metrics port).

Rules:
- keep-alive: requests on one connection are answered in order, one at a time; a
  connection waits at most `idle_timeout` for the next request, and a request must arrive
  completely (head and body) within `request_timeout` (else 408 and close);
- bounds: the request head at most `max_header` bytes (else 431), the body at most
  `max_body` bytes, checked against Content-Length before reading and while reading chunked
  bodies (else 413); at most `max_connections` connections at once (more are closed at once);
- a request h11 refuses gets 400 with a JSON error and the connection is closed; so does
  every error answer sent before the body was read in full;
- the handler gets a complete `Request` and returns a `Response`; an exception escaping it is
  logged and answered 500 (the server never dies of a handler's bug);
- `json_answer` encodes a long list (the payload, or a value of its top-level object)
  ENCODE_BATCH items at a time and lets other tasks run in between, so a large listing
  never holds the event loop; its bytes are those of `json_response`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qsl, urlsplit

import attrs
import h11
import trio

log = logging.getLogger("swimnet.agent.http")

JSON_TYPE = "application/json"
_READ_SIZE = 65_536
ENCODE_BATCH = 250


@attrs.frozen
class Limits:
    max_header: int = 16 * 1024
    max_body: int = 1024 * 1024
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 64


@attrs.frozen
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@attrs.frozen
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE


Handler = Callable[[Request], Awaitable[Response]]


def json_response(status: int, payload: object) -> Response:
    return Response(status, json.dumps(payload, sort_keys=True).encode() + b"\n")


async def _encoded(value: object, batch: int) -> str:
    if not isinstance(value, list) or len(value) <= batch:
        return json.dumps(value, sort_keys=True)
    parts = []
    for start in range(0, len(value), batch):
        await trio.lowlevel.checkpoint()
        parts.append(json.dumps(value[start : start + batch], sort_keys=True)[1:-1])
    return "[" + ", ".join(parts) + "]"


async def json_answer(status: int, payload: object, batch: int = ENCODE_BATCH) -> Response:
    """`json_response(status, payload)`, long lists encoded a batch at a time (see the rules)."""
    if isinstance(payload, dict) and all(type(key) is str for key in payload):
        fields = [f"{json.dumps(key)}: {await _encoded(payload[key], batch)}" for key in sorted(payload)]
        text = "{" + ", ".join(fields) + "}"
    else:
        text = await _encoded(payload, batch)
    return Response(status, text.encode() + b"\n")


def error_response(status: int, message: str, field: str | None = None) -> Response:
    return json_response(status, {"error": message, "field": field})


class _Refused(Exception):
    """The request cannot be served: answer `response` and close the connection."""

    def __init__(self, response: Response | None) -> None:
        super().__init__(response)
        self.response = response


class _Connection:
    def __init__(self, stream: trio.abc.Stream, handler: Handler, limits: Limits) -> None:
        self.stream = stream
        self.handler = handler
        self.limits = limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header)
        self._deadline = 0.0
        self._started = False
        """Bytes of the current request have arrived (its request_timeout runs)."""

    async def _receive(self) -> bytes:
        with trio.move_on_at(self._deadline):
            try:
                data = await self.stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
            if data and not self._started:
                self._started = True
                self._deadline = trio.current_time() + self.limits.request_timeout
            return bytes(data)
        if self._started:
            raise _Refused(error_response(408, "request timeout: the request did not arrive in time"))
        raise _Refused(None)  # idle connection: close quietly

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Refused(error_response(exc.error_status_hint, f"bad request: {exc}")) from None
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self._receive())

    async def _read_request(self) -> Request | None:
        """The next request; None when the client closed the connection between requests."""
        self._started = bool(self.conn.trailing_data[0])
        now = trio.current_time()
        self._deadline = now + (self.limits.request_timeout if self._started else self.limits.idle_timeout)
        first = await self._next_event()
        if isinstance(first, h11.ConnectionClosed):
            return None
        if not isinstance(first, h11.Request):
            raise _Refused(None)
        if not self._started:
            self._started = True
            self._deadline = trio.current_time() + self.limits.request_timeout
        head = len(first.method) + len(first.target) + sum(len(k) + len(v) + 4 for k, v in first.headers)
        if head > self.limits.max_header:  # h11 bounds only heads that arrive in pieces
            raise _Refused(
                error_response(431, f"bad request: request head larger than {self.limits.max_header} bytes")
            )
        body = await self._read_body(first)
        target = urlsplit(first.target.decode("latin-1"))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in first.headers}
        query = dict(parse_qsl(target.query, keep_blank_values=True))
        return Request(first.method.decode("ascii", "replace"), target.path, query, headers, body)

    async def _read_body(self, request: h11.Request) -> bytes:
        limit = self.limits.max_body
        for name, value in request.headers:
            if name.lower() == b"content-length" and int(value) > limit:
                raise _Refused(error_response(413, f"request body larger than {limit} bytes"))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise _Refused(error_response(413, f"request body larger than {limit} bytes"))
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise _Refused(error_response(400, "bad request: connection closed inside the request"))

    async def _send(self, response: Response, *, close: bool = False) -> None:
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
        ]
        if close:
            headers.append(("connection", "close"))
        out = self.conn.send(h11.Response(status_code=response.status, headers=headers)) or b""
        out += self.conn.send(h11.Data(data=response.body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        with trio.move_on_after(self.limits.request_timeout):
            await self.stream.send_all(out)

    async def serve(self) -> bool:
        """Serve requests in order; True if the connection ended with a refusal."""
        while True:
            try:
                request = await self._read_request()
            except _Refused as refused:
                if refused.response is None:
                    return False
                if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(refused.response, close=True)
                return True
            if request is None:
                return False
            response = await self._call(request)
            await self._send(response)
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                return False
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return False

    async def _call(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except Exception:
            log.exception("control request %s %s failed", request.method, request.path)
            return error_response(500, "internal error (see the agent's log)")


async def _linger(stream: trio.abc.Stream) -> None:
    """After an error answer: stop sending, read (and drop) what the client still sends for a
    moment, so closing with unread data does not reset the connection before the client
    has read the answer."""
    with trio.move_on_after(1.0):
        try:
            if isinstance(stream, trio.SocketStream):
                await stream.send_eof()
            total = 0
            while total < 16 * 1024 * 1024 and (data := await stream.receive_some(_READ_SIZE)):
                total += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def serve_stream(stream: trio.abc.Stream, handler: Handler, limits: Limits) -> None:
    """Serve HTTP on one connection until it closes or misbehaves."""
    refused = False
    try:
        refused = await _Connection(stream, handler, limits).serve()
        if refused:
            await _linger(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        pass
    finally:
        with trio.move_on_after(1.0):
            await stream.aclose()


async def serve_http(
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    handler: Handler,
    limits: Limits = Limits(),
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on `listeners` until cancelled (for `nursery.start`)."""
    active = 0

    async def one(stream: trio.abc.Stream) -> None:
        nonlocal active
        if active >= limits.max_connections:
            await stream.aclose()
            return
        active += 1
        try:
            await serve_stream(stream, handler, limits)
        finally:
            active -= 1

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, one, [listener])
        task_status.started()
