"""The resolver's sizes and bounds, in one place.

Rules: every buffer the resolver keeps is bounded by these numbers: a query is at most
`MAX_QUERY_SIZE` bytes (UDP and TCP), a UDP reply at most the client's EDNS payload
(512 without EDNS, `MAX_UDP_REPLY` at most), a TCP reply at most 65535 bytes; the number
of TCP connections and of concurrent forwards per namespace are `ResolverConfig` values.
"""

from __future__ import annotations

import attrs

DNS_ADDRESS = "127.0.0.11"
"""Where the resolver listens inside a container namespace (Docker's address)."""
DNS_PORT = 53

DEFAULT_TTL = 10
"""TTL of our answers, seconds: short, because the tables are the only cache we want."""

HEADER_SIZE = 12
MIN_UDP_PAYLOAD = 512
"""The DNS message size every client takes over UDP (RFC 1035)."""
MAX_UDP_REPLY = 4096
"""The largest UDP reply we send, whatever a client's EDNS payload says."""
OUR_PAYLOAD = 4096
"""The EDNS payload size we advertise (the largest query we read)."""
MAX_QUERY_SIZE = 4096
"""Larger queries are dropped (UDP) or end the connection (TCP)."""
MAX_TCP_MESSAGE = 65535


@attrs.frozen
class Policy:
    """How names are answered (the pure functions take it; the server from its config)."""

    ttl: int = DEFAULT_TTL
    forward_single_label: bool = False
    """Forward unknown single-label names upstream (Docker does); by default they are
    NXDOMAIN here: no container name leaks upstream, a removed name is NXDOMAIN at once."""


DEFAULT_POLICY = Policy()


def udp_limit(payload: int | None) -> int:
    """The largest UDP reply for a client that advertised `payload` (None: no EDNS)."""
    if payload is None:
        return MIN_UDP_PAYLOAD
    return max(MIN_UDP_PAYLOAD, min(payload, MAX_UDP_REPLY))


@attrs.frozen
class ResolverConfig:
    """One container namespace's resolver (the defaults are the production values)."""

    address: str = DNS_ADDRESS
    port: int = DNS_PORT
    ttl: int = DEFAULT_TTL
    forward_single_label: bool = False
    """See `Policy.forward_single_label`."""
    forward_timeout: float = 2.0
    """Budget for one relayed query, all upstreams together; then SERVFAIL."""
    max_forwards: int = 64
    """Relayed queries in flight per namespace; more are dropped (UDP) or SERVFAIL (TCP)."""
    max_tcp_connections: int = 16
    """Open TCP connections per namespace; more are closed at once."""
    tcp_idle_timeout: float = 10.0
    """A TCP query must arrive (and its reply leave) within this many seconds."""
    add_address: bool = True
    """Give lo the listen address if missing (and remove it again at stop)."""
    netns_etc: str | None = "/etc/netns"
    """Root of `ip netns exec`'s per-namespace /etc (None: write no resolv.conf)."""

    @property
    def policy(self) -> Policy:
        return Policy(self.ttl, self.forward_single_label)
