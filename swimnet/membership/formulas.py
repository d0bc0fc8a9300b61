"""The protocol's formulas as pure functions (memberlist's util.go, awareness.go, suspicion.go).

Each is pinned by a case table in tests/membership/test_formulas.py.
"""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, n: int, probe_interval: float) -> float:
    """Minimum suspicion timeout: mult * max(1, log10(max(1, n))) * probe_interval.

    (memberlist's comment says log(n+1); its code, which we follow, does not.)
    """
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    # memberlist keeps 3 decimals of node_scale (integer durations); so do we
    return suspicion_mult * (math.floor(node_scale * 1000) / 1000) * probe_interval


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times a broadcast is sent: mult * ceil(log10(n + 1))."""
    return retransmit_mult * math.ceil(math.log10(n + 1))


def remaining_suspicion_time(
    confirmations: int, k: int, elapsed: float, min_timeout: float, max_timeout: float
) -> float:
    """Lifeguard's dynamic suspicion: falls from max to min as log(c+1)/log(k+1), minus elapsed.

    With k < 1 no confirmations are expected and the timeout is the minimum.
    """
    if k < 1:
        return min_timeout - elapsed
    frac = math.log(confirmations + 1.0) / math.log(k + 1.0)
    raw = max_timeout - frac * (max_timeout - min_timeout)
    timeout = math.floor(1000.0 * raw) / 1000.0  # millisecond resolution, as memberlist
    return max(timeout, min_timeout) - elapsed


def scale_by_health(interval: float, health_score: int) -> float:
    """Lifeguard local health: an interval scaled by (score + 1)."""
    return interval * (health_score + 1)


def push_pull_scale(interval: float, n: int) -> float:
    """Push-pull interval grows with cluster size beyond 32 nodes (memberlist's pushPullScale)."""
    threshold = 32
    if n <= threshold:
        return interval
    multiplier = math.ceil(math.log2(n) - math.log2(threshold)) + 1.0
    return interval * multiplier
