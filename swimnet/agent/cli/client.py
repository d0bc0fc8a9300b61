"""The CLI's side of the control socket: one blocking HTTP/1.1 request per call (h11).

Rules: `call` returns the decoded JSON answer of a 2xx; an error answer raises ApiFailure
with the server's message and field; a socket that does not exist, refuses, or that we
may not open raises AgentUnreachable naming the path; no complete answer within `timeout`
seconds (one deadline for the whole exchange: an answer that trickles in does not extend
it) is an ApiFailure (status 0). Nothing here imports trio (the CLI starts fast).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import quote

import h11

DEFAULT_TIMEOUT = 60.0
"""Seconds a request may take (the CLI's `--timeout`, `$SWIMNET_TIMEOUT`); longer than the
agent's own longest wait (an address allocation waits for votes at most 10 s)."""
MAX_ANSWER = 64 * 1024 * 1024


class AgentUnreachable(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot reach the agent at {path}: {reason}")
        self.path = path
        self.reason = reason


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def segment(value: str) -> str:
    """A path segment, percent-encoded."""
    return quote(value, safe="")


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):
            reason = "no such socket (is swimnet-agent running? use --socket PATH)"
        elif isinstance(exc, ConnectionRefusedError):
            reason = "connection refused (the agent is not running)"
        elif isinstance(exc, PermissionError):
            reason = "permission denied (the socket belongs to the agent's user)"
        raise AgentUnreachable(path, reason) from None
    return sock


def _exchange(
    sock: socket.socket, method: str, target: str, payload: bytes, deadline: float
) -> tuple[int, bytes]:
    conn = h11.Connection(h11.CLIENT)
    headers = [
        ("host", "swimnet-agent"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("content-length", str(len(payload))),
        ("connection", "close"),
    ]
    out = conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
    if payload:
        out += conn.send(h11.Data(data=payload)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    sock.sendall(out)
    status = 0
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            conn.receive_data(sock.recv(65_536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_ANSWER:
                raise ApiFailure(0, "the agent's answer is too large")
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, bytes(body)


def call(path: str, method: str, target: str, body: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """One request to the agent at the socket `path`; the JSON answer (see the module rules)."""
    payload = b"" if body is None else json.dumps(body).encode()
    deadline = time.monotonic() + timeout
    sock = _connect(path, timeout)
    try:
        status, data = _exchange(sock, method, target, payload, deadline)
    except TimeoutError:
        raise ApiFailure(0, f"the agent did not answer within {timeout:g} s") from None
    except (OSError, h11.ProtocolError) as exc:
        raise ApiFailure(0, f"connection to the agent failed: {exc}") from None
    finally:
        sock.close()
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        raise ApiFailure(status, f"the agent answered {status} with a body that is not JSON") from None
    if status >= 400 or status == 0:
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            field = doc.get("field")
            raise ApiFailure(status, doc["error"], field if isinstance(field, str) else None)
        raise ApiFailure(status, f"the agent answered {status}")
    return doc
