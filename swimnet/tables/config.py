"""Tunables of the replicated tables (NetworkDB's timers and sizes as defaults).

Rules: every value is checked at construction (ConfigError names the field); times are
seconds; two nodes may run with different values (none of them is a protocol constant).
"""

from __future__ import annotations

from typing import Any

import attrs

from swimnet.errors import ConfigError


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigError(attribute.name, f"must be positive, got {value!r}")


@attrs.frozen
class TablesConfig:
    reap_interval: float = attrs.field(default=1800.0, validator=_positive)
    """How long tombstones and the hidden entries of a failed node are kept (NetworkDB 30 min)."""
    network_reap_interval: float = attrs.field(default=1825.0, validator=_positive)
    """How long a leaving attachment is kept (30 min + 5 reap periods)."""
    node_reap_interval: float = attrs.field(default=86_400.0, validator=_positive)
    """How long a departed node's late events are refused."""
    left_grace_interval: float = attrs.field(default=30.0, validator=_positive)
    """How long a member that left keeps its entries hidden before they are dropped: a leave
    can be forged, and the member refutes it (membership) within seconds; if it does, its
    entries come back at once instead of after an anti-entropy round. 30 s also covers one
    push-pull interval, for members the refutation reaches late."""
    max_entries_per_owner: int = attrs.field(default=131_072, validator=_positive)
    """Live entries one owner may have in one network (own writes past it raise
    LocalProtocolError; peers' are refused and counted, `table_owner_cap`). Twice the
    100,000 endpoints of one host the benchmarks exercise."""
    max_entries_per_network: int = attrs.field(default=524_288, validator=_positive)
    """Stored versions (tombstones included) of one network, all owners together (about
    200 MB at most); past it, versions of new keys are refused and counted
    (`table_network_cap`); own writes raise LocalProtocolError."""
    retransmit_mult: int = attrs.field(default=4, validator=_positive)
    queue_max_len: int = attrs.field(default=10_000, validator=_positive)
    """Per-network broadcast queues (own and relay each); anti-entropy covers what is pruned."""
    max_broadcast_size: int = attrs.field(default=1_200, validator=_positive)
    """Larger table events are not gossiped (they could never fit a packet); sync carries them."""
    sync_chunk_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    """Estimated size cap of one sync message; more is sent in further rounds."""
    sync_max_rounds: int = attrs.field(default=64, validator=_positive)
    """Requests in one sync conversation (64 x 4 MiB = 256 MiB)."""
    summary_max: int = attrs.field(default=32, validator=_positive)
    """A digest region with at most this many entries is sent as summaries, not child hashes."""
    sync_relay_max: int = attrs.field(default=64, validator=_positive)
    """A sync section that brings at most this many newer entries relays them by gossip: news
    whose gossip was lost (loss, a partition) then spreads in gossip time, not one sync
    partner per push_pull_interval; a larger section is a bulk catch-up and is not relayed."""
