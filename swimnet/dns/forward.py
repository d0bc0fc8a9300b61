"""Relaying a query the overlay does not answer to the host's upstream resolvers (trio).

Rules:
- runs in the agent's own (host) network namespace: the sockets are made by the calling
  thread, never inside the container's namespace;
- each attempt uses a fresh UDP socket connected to one upstream (a random source port)
  and a fresh random query id; a datagram that is not the reply to that query (another id,
  another question, not a response) is counted and ignored; a reply with TC set is asked
  again over TCP, to the same upstream, within the same attempt;
- upstreams are tried in order; each attempt gets an equal share of what is left of the
  `timeout` budget (2 s by default); SERVFAIL or REFUSED from one upstream moves on to the
  next (the last such reply is returned if no upstream does better);
- no upstream, or no usable reply within the budget: SERVFAIL (echoing the question);
- the returned bytes carry the client's id and fit the client's size (`exchange.clip`);
- everything read is bounded: UDP replies by 65535 bytes, TCP replies by their 2-byte length.
"""

from __future__ import annotations

import secrets
import socket
import struct
from collections.abc import Callable, Sequence

import trio

from swimnet.dns.exchange import (
    SERVFAIL,
    Relay,
    clip,
    is_truncated,
    reply_rcode,
    servfail,
    upstream_reply,
)
from swimnet.dns.metrics import DnsMetrics

FORWARD_TIMEOUT = 2.0
REFUSED = 5
_MAX_REPLY = 65535


def _random_id() -> bytes:
    return secrets.token_bytes(2)


async def forward(
    relay: Relay,
    upstreams: Sequence[tuple[str, int]],
    metrics: DnsMetrics,
    *,
    timeout: float = FORWARD_TIMEOUT,
    new_id: Callable[[], bytes] = _random_id,
) -> bytes:
    """The client's reply to a relayed query (see the module rules)."""
    metrics.forwarded["sent"] += 1
    deadline = trio.current_time() + timeout
    fallback: bytes | None = None
    for i, (host, port) in enumerate(upstreams):
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            break
        reply: bytes | None = None
        with trio.move_on_after(remaining / (len(upstreams) - i)) as scope:
            reply = await _ask(relay, host, port, metrics, new_id)
        if scope.cancelled_caught:
            metrics.forwarded["timeout"] += 1
        if reply is None:
            continue
        if reply_rcode(reply) in (SERVFAIL, REFUSED):
            fallback = reply
            continue
        return _to_client(reply, relay, metrics)
    if fallback is not None:
        return _to_client(fallback, relay, metrics)
    metrics.forwarded["servfail"] += 1
    return servfail(relay)


def _to_client(reply: bytes, relay: Relay, metrics: DnsMetrics) -> bytes:
    metrics.forwarded["answered"] += 1
    data, truncated = clip(reply, relay)
    if truncated:
        metrics.forwarded["truncated"] += 1
    return data


async def _ask(
    relay: Relay, host: str, port: int, metrics: DnsMetrics, new_id: Callable[[], bytes]
) -> bytes | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sent_id = new_id()
    query = sent_id + relay.query[2:]
    try:
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.connect((host, port))
            await sock.send(query)
            while True:
                data = await sock.recv(_MAX_REPLY)
                reply = upstream_reply(data, relay, sent_id)
                if reply is not None:
                    break
                metrics.forwarded["mismatched"] += 1
    except OSError:
        metrics.forwarded["upstream_error"] += 1
        return None
    if not is_truncated(reply):
        return reply
    metrics.forwarded["tcp_retry"] += 1
    return await _ask_tcp(relay, host, port, metrics, new_id)


async def _ask_tcp(
    relay: Relay, host: str, port: int, metrics: DnsMetrics, new_id: Callable[[], bytes]
) -> bytes | None:
    sent_id = new_id()
    query = sent_id + relay.query[2:]
    try:
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(struct.pack("!H", len(query)) + query)
            head = await _read_exactly(stream, 2)
            if head is None:
                return None
            body = await _read_exactly(stream, struct.unpack("!H", head)[0])
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        metrics.forwarded["upstream_error"] += 1
        return None
    if body is None:
        metrics.forwarded["upstream_error"] += 1
        return None
    reply = upstream_reply(body, relay, sent_id)
    if reply is None:
        metrics.forwarded["mismatched"] += 1
    return reply


async def _read_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(min(n - len(buf), _MAX_REPLY))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
