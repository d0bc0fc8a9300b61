"""Admission and resource limits shared by all of one node's stream exchanges.

Rules:
- sources: a peer's source is its IPv4 address, or the /64 of its IPv6 address (one host
  usually holds a whole /64, so per-address limits would not bind it);
- admission: at most `max_per_source` inbound connections from one source at once; one more
  is closed as soon as it is accepted (`drop_stream_source_busy`);
- a connection holds no stream slot until its frame's length is known: it gets
  `prefix_timeout` seconds to send the length prefix or authenticated header
  (`drop_stream_prefix_timeout`), then takes a slot of the node's limiter or is refused
  (`drop_stream_busy`);
- buffer budget: a frame body we are about to buffer (a request we serve, a reply we
  receive) and a reply we hold while sending it first reserve their size in `budget`; what
  the budget cannot cover is refused (`drop_stream_budget`, `drop_stream_budget_reply`,
  `stream_failed_budget`). Reservations are made from the announced length, before the
  body is read, and reading never runs past the frame, so buffered stream bytes never
  exceed `budget.limit`, plus per connection at most the header (45 bytes) before a length
  is known and, transiently, the copy of the one frame being handed to the engine (the
  engine runs synchronously: one frame at a time). `stream_buffer_peak_bytes` is the
  high-water mark of reservations;
- inflation: per source, a token bucket of plain bytes we may inflate for it
  (`swimnet.wire.inflate` allowance), refilled at `inflate_rate` bytes/s up to
  `inflate_burst`: the CPU one source can make us spend on decompression is bounded over
  time, nested frames included. A refused frame is dropped (`drop_stream_inflate_rate`);
- state is bounded: per-source connection counts exist only while connections do; at most
  MAX_SOURCES inflation buckets are kept (full ones are forgotten first: a forgotten bucket
  is a full one);
- every counter only grows (they are exported as counters).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable

import trio

from swimnet.config import Config
from swimnet.runtime.framing import FrameSecurity
from swimnet.security.seal import SecurityPolicy
from swimnet.wire.inflate import Take

MAX_SOURCES = 4096


def source_key(host: str) -> str:
    """The source a peer address counts against: the IPv4 address or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ByteBudget:
    """Bytes reserved for buffered stream frames, across all exchanges of a node."""

    __slots__ = ("_stats", "in_use", "limit", "peak")

    def __init__(self, limit: int, stats: Counter[str]) -> None:
        self.limit = limit
        self.in_use = 0
        self.peak = 0
        self._stats = stats

    def reserve(self, n: int) -> bool:
        if self.in_use + n > self.limit:
            return False
        self.in_use += n
        if self.in_use > self.peak:
            self.peak = self.in_use
            self._stats["stream_buffer_peak_bytes"] = self.peak
        return True

    def release(self, n: int) -> None:
        self.in_use -= n


class TokenBucket:
    """`rate` tokens per second up to `burst`; starts full."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, n: int, now: float) -> bool:
        self.refill(now)
        if n > self.tokens:
            return False
        self.tokens -= n
        return True


class StreamGuard:
    """The limits above for one node (see `from_config`)."""

    def __init__(
        self,
        stats: Counter[str],
        *,
        prefix_timeout: float,
        max_per_source: int,
        buffer_budget: int,
        inflate_rate: float,
        inflate_burst: int,
        security: FrameSecurity | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.stats = stats
        self.prefix_timeout = prefix_timeout
        self.max_per_source = max_per_source
        self.budget = ByteBudget(buffer_budget, stats)
        self.inflate_rate = inflate_rate
        self.inflate_burst = inflate_burst
        self.security = security
        self._clock = clock
        self._connections: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def from_config(
        cls, config: Config, stats: Counter[str], policy: Callable[[], SecurityPolicy | None]
    ) -> StreamGuard:
        """The guard for a node: limits from `config`, `policy()` read for every frame."""
        return cls(
            stats,
            prefix_timeout=config.stream_prefix_timeout,
            max_per_source=config.max_streams_per_source,
            buffer_budget=config.stream_buffer_budget,
            inflate_rate=config.stream_inflate_rate,
            inflate_burst=config.stream_inflate_burst,
            security=FrameSecurity(policy, replay_window=config.effective_replay_window),
        )

    # -- admission ---------------------------------------------------------------------

    def admit(self, host: str) -> str | None:
        """Count an inbound connection from `host`; its source, or None (refused, counted)."""
        source = source_key(host)
        count = self._connections.get(source, 0)
        if count >= self.max_per_source:
            self.stats["drop_stream_source_busy"] += 1
            return None
        self._connections[source] = count + 1
        return source

    def leave(self, source: str) -> None:
        """An admitted connection closed."""
        count = self._connections.get(source, 0) - 1
        if count > 0:
            self._connections[source] = count
        else:
            self._connections.pop(source, None)

    def connections(self, host: str) -> int:
        return self._connections.get(source_key(host), 0)

    # -- inflation ---------------------------------------------------------------------

    def allowance(self, host: str) -> Take:
        """The inflation allowance of `host`'s source (for `swimnet.wire.inflate`)."""
        source = source_key(host)

        def take(n: int) -> bool:
            now = self._clock()
            bucket = self._buckets.get(source)
            if bucket is None:
                self._make_room(now)
                bucket = self._buckets[source] = TokenBucket(self.inflate_rate, self.inflate_burst, now)
            if bucket.take(n, now):
                self.stats["stream_inflated_bytes"] += n
                return True
            self.stats["drop_stream_inflate_rate"] += 1
            return False

        return take

    def _make_room(self, now: float) -> None:
        buckets = self._buckets
        if len(buckets) < MAX_SOURCES:
            return
        for source, bucket in list(buckets.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.burst:
                del buckets[source]
        for source in list(buckets)[: max(0, len(buckets) - MAX_SOURCES // 2)]:
            del buckets[source]
