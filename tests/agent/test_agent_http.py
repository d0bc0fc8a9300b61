"""The h11 server: keep-alive, bounds, timeouts (virtual time), broken handlers, connection cap."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import trio
import trio.testing

from swimnet.agent.http.server import (
    Limits,
    Request,
    Response,
    json_answer,
    json_response,
    serve_http,
    serve_stream,
)

LIMITS = Limits(max_header=1024, max_body=100, request_timeout=5.0, idle_timeout=20.0, max_connections=2)


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    return json_response(
        200,
        {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body.decode(),
        },
    )


def get(path: str, body: bytes = b"", close: bool = False) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return f"POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def parse(data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Responses in `data` (JSON bodies with Content-Length)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(
            int(v)
            for k, _, v in (line.partition(b": ") for line in lines[1:])
            if k.lower() == b"content-length"
        )
        out.append((int(lines[0].split(b" ")[1]), json.loads(rest[:length])))
        data = rest[length:]
    return out


async def exchange(request: bytes, *, limits: Limits = LIMITS) -> list[tuple[int, dict[str, Any]]]:
    """Send `request` bytes, read until the server closes; the responses."""
    client, server = trio.testing.memory_stream_pair()
    data = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_stream, server, echo, limits)
        await client.send_all(request)
        while chunk := await client.receive_some(65536):
            data += chunk
    return parse(data)


async def test_keep_alive_answers_requests_in_order(autojump_clock: trio.testing.MockClock) -> None:
    responses = await exchange(get("/a?x=1", b"one") + get("/b", b"two") + get("/c", close=True))
    assert [(s, d["path"], d["body"]) for s, d in responses] == [
        (200, "/a", "one"),
        (200, "/b", "two"),
        (200, "/c", ""),
    ]
    assert responses[0][1]["query"] == {"x": "1"}


async def test_a_handler_bug_is_a_500_and_the_connection_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    responses = await exchange(get("/boom") + get("/ok", close=True))
    assert responses[0] == (500, {"error": "internal error (see the agent's log)", "field": None})
    assert responses[1][0] == 200


async def test_oversize_bodies_are_refused(autojump_clock: trio.testing.MockClock) -> None:
    responses = await exchange(get("/big", b"x" * 101) + get("/never"))
    assert (
        len(responses) == 1 and responses[0][0] == 413 and "larger than 100 bytes" in responses[0][1]["error"]
    )
    chunk = b"40\r\n" + b"y" * 64 + b"\r\n"  # two chunks of 64 bytes: over the limit only together
    chunked = (
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk + b"0\r\n\r\n"
    )
    responses = await exchange(chunked)
    assert [s for s, _ in responses] == [413]


async def test_malformed_requests_get_400_and_a_close(autojump_clock: trio.testing.MockClock) -> None:
    for raw in (
        b"NOT HTTP\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: z\r\n\r\n",
    ):
        responses = await exchange(raw)
        assert (
            len(responses) == 1
            and responses[0][0] == 400
            and responses[0][1]["error"].startswith("bad request")
        )
    responses = await exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"h" * 2000)  # a head that never ends
    assert [s for s, _ in responses] == [431]


async def test_timeouts_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    # a request that starts and never finishes: 408 after request_timeout
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_stream, server, echo, LIMITS)
        await client.send_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        data = b""
        while chunk := await client.receive_some(65536):
            data += chunk
    assert [s for s, _ in parse(data)] == [408]
    # an idle keep-alive connection is closed quietly after idle_timeout
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_stream, server, echo, LIMITS)
        await client.send_all(get("/one"))
        data = b""
        while chunk := await client.receive_some(65536):
            data += chunk
    assert [s for s, _ in parse(data)] == [200]


async def test_connections_beyond_the_cap_are_closed(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(8)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_http, [trio.SocketListener(sock)], echo, LIMITS)
        held = [await trio.open_unix_socket(path) for _ in range(2)]
        await held[0].send_all(get("/x"))  # the server has accepted both before the third
        await held[0].receive_some(65536)
        await held[1].send_all(get("/x"))
        await held[1].receive_some(65536)
        third = await trio.open_unix_socket(path)
        await third.send_all(get("/x"))
        try:
            answer = await third.receive_some(65536)
        except trio.BrokenResourceError:  # closed with our request unread: a reset
            answer = b""
        assert answer == b""
        for stream in [*held, third]:
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_long_lists_are_encoded_in_batches_with_the_same_bytes() -> None:
    payloads: list[object] = [
        [],
        list(range(1000)),
        {"b": list(range(600)), "a": {"x": [1, 2]}, "c": []},
        [{"z": i, "a": [i, "é"]} for i in range(777)],
        "text",
    ]
    for payload in payloads:
        assert (await json_answer(201, payload, batch=100)) == json_response(201, payload)
