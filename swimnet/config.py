"""Node configuration: memberlist's presets and every tunable, validated at construction.

Rules:
- `Config` is immutable; derive variants with `Config.lan(...)` / `attrs.evolve(...)`;
- every field is checked when the object is built and a bad value raises `ConfigError`
  whose message starts with the field's name;
- durations are seconds (float); addresses are "host:port" strings (IPv6 as "[::1]:7946").
"""

from __future__ import annotations

from typing import Any

import attrs

from swimnet.errors import ConfigError
from swimnet.security.keyring import Keyring
from swimnet.wire.limits import MAX_META, MAX_NAME
from swimnet.wire.messages import Address

DEFAULT_PORT = 7946


def parse_address(value: str, field: str = "address", default_port: int = DEFAULT_PORT) -> Address:
    """'host:port', 'host', '[v6]:port' or '[v6]' -> (host, port); ConfigError naming `field`."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, f"expected 'host:port', got {value!r}")
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(field, f"malformed IPv6 address {value!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:  # bare IPv6 without port
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(field, f"empty host in {value!r}")
    if port_text == "":
        return (host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65_535:
        raise ConfigError(field, f"port must be 0..65535, got {port_text!r}")
    return (host, int(port_text))


def format_address(addr: Address) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _positive(field: str, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(field, f"must be a positive number, got {value!r}")


def _non_negative(field: str, value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(field, f"must be >= 0, got {value!r}")


def _int_at_least(field: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(field, f"must be an integer >= {low}, got {value!r}")


@attrs.frozen(kw_only=True)
class Config:
    """Everything a node needs; see `lan()`, `wan()`, `local()` for memberlist's presets."""

    name: str = ""
    bind: str = f"0.0.0.0:{DEFAULT_PORT}"
    advertise: str | None = None
    meta: bytes = b""
    keyring: Keyring | None = attrs.field(default=None, eq=False)
    """Encrypt and authenticate all traffic with these keys (None: plaintext)."""
    label: str = ""
    """Cluster label: separates clusters sharing a network (associated data when sealed)."""
    replay_window: float | None = None
    """Sealed input older than this (by the sender's clock) is refused; must stay below
    dead_reap_time (None: half of it). Clocks must agree to within it (NTP)."""
    verify_incoming: bool = True
    """With a keyring: refuse plaintext input (turn off only while migrating to encryption)."""
    encrypt_outgoing: bool = True
    """With a keyring: seal output (turn off only while migrating to encryption)."""

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 30.0
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    retransmit_mult: int = 4
    push_pull_interval: float = 30.0
    awareness_max_multiplier: int = 8
    tcp_timeout: float = 10.0
    stream_prefix_timeout: float = 1.0
    """Seconds an inbound stream connection gets to send its frame's length (prefix or
    authenticated header), holding no stream slot meanwhile (tcp_timeout still bounds the
    whole exchange). A client writes its frame as soon as it is connected, so one second
    covers any sane round trip; an idle connection is then cut and frees its file
    descriptor."""
    max_streams_per_source: int = 32
    """Inbound stream connections at once from one source address (IPv6: one /64); more are
    closed at once. A quarter of the default 128 slots: filling them takes 4 sources."""
    stream_buffer_budget: int = 128 * 1024 * 1024
    """Bytes of stream frames buffered at once over all exchanges (requests and replies
    being received, replies being sent); an exchange that would go past it is refused. Two
    largest frames (MAX_STREAM_FRAME is 64 MiB); a larger frame can never be accepted."""
    stream_inflate_rate: float = 32 * 1024 * 1024
    """Plain bytes per second one source may make us inflate from compressed stream frames
    (a token bucket; real frames compress 2-7:1, so this is far above what a peer's
    push-pulls need; about a sixth of a core of zlib)."""
    stream_inflate_burst: int = 128 * 1024 * 1024
    """The bucket's size: a push-pull of the largest frame plus its nested tables section.
    Must cover the largest frame a peer legitimately sends."""
    tcp_fallback_probe: bool = True
    """Also probe over a stream when the UDP probe times out (memberlist's TCP fallback ping)."""
    packet_size: int = 1400
    """Largest datagram we build (memberlist's UDPBufferSize)."""
    dead_node_reclaim_time: float = 0.0
    """A dead member's name may be taken from a new address after this long (0 = never)."""
    dead_reap_time: float | None = None
    """Dead and left members are forgotten after this long (None = gossip_to_the_dead_time)."""
    rejoin_interval: float = 30.0
    """How often a node re-contacts unreachable seeds and recently failed members (heals splits)."""
    rejoin_window: float = 24 * 3600.0
    """How long failed members are remembered for rejoin attempts."""
    join_sync_delays: tuple[float, ...] = (0.2, 0.6, 1.2, 2.4)
    """Extra push-pulls with random members this long after a join (speeds up bootstrap)."""
    leave_timeout: float = 5.0
    topology_bias: float = 0.7
    """0..1: how strongly gossip targets, probe helpers and sync partners favour peers with a
    low estimated round-trip time (0 = uniform, memberlist's behaviour)."""
    coordinate_every: int = 2
    """Our probes ask for the peer's network coordinate on its ack once in this many (1: every
    ack, as serf; 0: we neither ask for coordinates nor attach ours), 8 times less often in a flat
    network, and on every probe while we are unplaced or do not hold the peer's."""
    topology_rtt_floor: float = 0.005
    """A peer is "near" if its estimated RTT is at most half the median RTT of our last probes
    and that median exceeds this floor; the bias favours near peers and treats all others alike,
    so a flat network (a LAN: median under the floor) keeps uniform random choices."""
    topology_uniform_share: float = 0.25
    """Share of those choices that stay uniform whatever the bias, so far zones still hear."""
    broadcast_queue_max: int = 100_000

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or len(self.name.encode()) > MAX_NAME:
            raise ConfigError("name", f"must be a string of at most {MAX_NAME} bytes")
        parse_address(self.bind, "bind")
        if self.advertise is not None:
            parse_address(self.advertise, "advertise")
        if self.keyring is not None and not isinstance(self.keyring, Keyring):
            raise ConfigError("keyring", "must be a swimnet.Keyring")
        if not isinstance(self.label, str) or len(self.label.encode()) > 255:
            raise ConfigError("label", "must be a string of at most 255 bytes")
        if not isinstance(self.meta, bytes) or len(self.meta) > MAX_META:
            raise ConfigError("meta", f"must be bytes of at most {MAX_META} bytes")
        for field in (
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "push_pull_interval",
            "tcp_timeout",
            "rejoin_interval",
            "leave_timeout",
        ):
            _positive(field, getattr(self, field))
        _positive("stream_prefix_timeout", self.stream_prefix_timeout)
        _int_at_least("max_streams_per_source", self.max_streams_per_source, 1)
        _int_at_least("stream_buffer_budget", self.stream_buffer_budget, 64 * 1024)
        _positive("stream_inflate_rate", self.stream_inflate_rate)
        _int_at_least("stream_inflate_burst", self.stream_inflate_burst, 64 * 1024)
        for field in ("gossip_to_the_dead_time", "dead_node_reclaim_time", "rejoin_window"):
            _non_negative(field, getattr(self, field))
        if self.dead_reap_time is not None:
            _non_negative("dead_reap_time", self.dead_reap_time)
        if self.replay_window is not None:
            _positive("replay_window", self.replay_window)
            if self.replay_window >= self.effective_dead_reap_time:
                raise ConfigError("replay_window", "must be shorter than dead_reap_time")
        if self.probe_timeout > self.probe_interval:
            raise ConfigError("probe_timeout", "must not exceed probe_interval")
        _int_at_least("indirect_checks", self.indirect_checks, 0)
        _int_at_least("gossip_nodes", self.gossip_nodes, 0)
        _int_at_least("suspicion_mult", self.suspicion_mult, 1)
        _int_at_least("suspicion_max_timeout_mult", self.suspicion_max_timeout_mult, 1)
        _int_at_least("retransmit_mult", self.retransmit_mult, 1)
        _int_at_least("awareness_max_multiplier", self.awareness_max_multiplier, 1)
        _int_at_least("packet_size", self.packet_size, 512)
        if self.packet_size > 65_000:
            raise ConfigError("packet_size", "must be at most 65000")
        _non_negative("topology_rtt_floor", self.topology_rtt_floor)
        for field in ("topology_bias", "topology_uniform_share"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ConfigError(field, f"must be a number in [0, 1], got {value!r}")
        _int_at_least("broadcast_queue_max", self.broadcast_queue_max, 16)
        _int_at_least("coordinate_every", self.coordinate_every, 0)
        if not all(isinstance(d, int | float) and d > 0 for d in self.join_sync_delays):
            raise ConfigError("join_sync_delays", "must be positive numbers")

    # -- derived values ----------------------------------------------------------------

    @property
    def bind_address(self) -> Address:
        return parse_address(self.bind, "bind")

    @property
    def advertise_address(self) -> Address:
        """Where peers reach us: `advertise`, else `bind`."""
        return parse_address(self.advertise if self.advertise is not None else self.bind, "advertise")

    @property
    def effective_replay_window(self) -> float:
        return 0.5 * self.effective_dead_reap_time if self.replay_window is None else self.replay_window

    @property
    def effective_dead_reap_time(self) -> float:
        return self.gossip_to_the_dead_time if self.dead_reap_time is None else self.dead_reap_time

    # -- presets -----------------------------------------------------------------------

    @classmethod
    def lan(cls, **overrides: Any) -> Config:
        """memberlist's DefaultLANConfig."""
        return cls._preset({}, overrides)

    @classmethod
    def wan(cls, **overrides: Any) -> Config:
        """memberlist's DefaultWANConfig."""
        return cls._preset(
            dict(
                tcp_timeout=30.0,
                suspicion_mult=6,
                push_pull_interval=60.0,
                probe_timeout=3.0,
                probe_interval=5.0,
                gossip_nodes=4,
                gossip_interval=0.5,
                gossip_to_the_dead_time=60.0,
            ),
            overrides,
        )

    @classmethod
    def local(cls, **overrides: Any) -> Config:
        """memberlist's DefaultLocalConfig."""
        return cls._preset(
            dict(
                tcp_timeout=1.0,
                indirect_checks=1,
                retransmit_mult=2,
                suspicion_mult=3,
                push_pull_interval=15.0,
                probe_timeout=0.2,
                probe_interval=1.0,
                gossip_interval=0.1,
                gossip_to_the_dead_time=15.0,
            ),
            overrides,
        )

    @classmethod
    def _preset(cls, preset: dict[str, Any], overrides: dict[str, Any]) -> Config:
        fields = attrs.fields_dict(cls)
        for key in overrides:
            if key not in fields:
                raise ConfigError(key, "unknown configuration field")
        return cls(**{**preset, **overrides})

    def evolve(self, **changes: Any) -> Config:
        return self._preset(attrs.asdict(self, recurse=False), changes)
