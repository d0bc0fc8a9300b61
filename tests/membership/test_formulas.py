"""The protocol formulas as case tables, with hashicorp/memberlist's own test values.

Sources (memberlist): util_test.go TestSuspicionTimeout, TestRetransmitLimit, TestPushPullScale;
suspicion_test.go TestSuspicion_remainingSuspicionTime, TestSuspicion_Timer;
awareness_test.go TestAwareness.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.membership.formulas import (
    push_pull_scale,
    remaining_suspicion_time,
    retransmit_limit,
    scale_by_health,
    suspicion_timeout,
)

# memberlist durations are integer nanoseconds; ours are float seconds
EXACT = {"rel": 0, "abs": 1e-9}

# -- suspicion timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        # memberlist TestSuspicionTimeout: suspicionTimeout(3, n, time.Second) / 3
        (5, 1.000),
        (10, 1.000),
        (50, 1.698),  # log10(50) = 1.69897.. kept to 3 decimals by truncation
        (100, 2.000),
        (500, 2.698),
        (1000, 3.000),
    ],
)
def test_suspicion_timeout_memberlist_table(n: int, expected: float) -> None:
    assert suspicion_timeout(3, n, 1.0) / 3 == pytest.approx(expected, **EXACT)
    assert suspicion_timeout(3, n, 1.0) == pytest.approx(3 * expected, **EXACT)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 4.0), (1, 4.0), (2, 4.0), (10, 4.0), (100, 8.0), (1000, 12.0), (10_000, 16.0)],
)
def test_suspicion_timeout_lan_preset(n: int, expected: float) -> None:
    """DefaultLANConfig: SuspicionMult 4, ProbeInterval 1 s."""
    assert suspicion_timeout(4, n, 1.0) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize(
    ("mult", "n", "interval", "expected"),
    [
        (4, 10, 0.2, 0.8),
        (4, 100, 0.2, 1.6),
        (5, 1000, 5.0, 75.0),  # 5 * log10(1000) * 5 s
        (6, 10, 5.0, 30.0),  # DefaultWANConfig: SuspicionMult 6, ProbeInterval 5 s
        (3, 50, 0.5, 2.547),  # 3 * 1.698 * 0.5
    ],
)
def test_suspicion_timeout_scales_with_mult_and_interval(
    mult: int, n: int, interval: float, expected: float
) -> None:
    assert suspicion_timeout(mult, n, interval) == pytest.approx(expected, **EXACT)


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_suspicion_timeout_is_monotonic_in_n(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert suspicion_timeout(4, lo, 1.0) <= suspicion_timeout(4, hi, 1.0)


@given(st.integers(0, 10**7))
def test_suspicion_timeout_never_below_mult_times_interval(n: int) -> None:
    timeout = suspicion_timeout(4, n, 1.0)
    assert timeout >= 4.0
    assert timeout <= 4.0 * max(1.0, math.log10(max(1, n))) + 1e-9


# -- retransmit limit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, 0),  # memberlist TestRetransmitLimit
        (1, 3),  # memberlist TestRetransmitLimit
        (9, 3),
        (10, 6),
        (99, 6),  # memberlist TestRetransmitLimit
        (100, 9),
        (999, 9),
        (1000, 12),
        (9999, 12),
        (10_000, 15),
    ],
)
def test_retransmit_limit_table(n: int, expected: int) -> None:
    assert retransmit_limit(3, n) == expected


@pytest.mark.parametrize(("n", "expected"), [(1, 4), (2, 4), (9, 4), (10, 8), (99, 8), (100, 12), (1000, 16)])
def test_retransmit_limit_lan_preset(n: int, expected: int) -> None:
    """DefaultLANConfig: RetransmitMult 4."""
    assert retransmit_limit(4, n) == expected


@given(st.integers(1, 10), st.integers(0, 10**6))
def test_retransmit_limit_is_mult_times_digits(mult: int, n: int) -> None:
    """ceil(log10(n + 1)) is the number of decimal digits of n (0 for n = 0)."""
    digits = len(str(n)) if n else 0
    assert retransmit_limit(mult, n) == mult * digits


# -- Lifeguard: dynamic suspicion -------------------------------------------------------------


@pytest.mark.parametrize(
    ("confirmations", "k", "elapsed", "expected"),
    [
        # memberlist TestSuspicion_remainingSuspicionTime: min 2 s, max 30 s
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.81),
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_time_memberlist_table(
    confirmations: int, k: int, elapsed: float, expected: float
) -> None:
    assert remaining_suspicion_time(confirmations, k, elapsed, 2.0, 30.0) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize(
    ("confirmations", "expected"),
    [
        # memberlist TestSuspicion_Timer: k 3, min 500 ms, max 2 s (total timeouts from the start)
        (0, 2.0),
        (1, 1.25),
        # memberlist's timer test says 810 ms within its 25 ms sleep fudge; the formula gives
        # floor(1000 * (2 - 1.5 * log(3) / log(4))) ms = floor(811.28) ms
        (2, 0.811),
        (3, 0.5),
        (4, 0.5),
    ],
)
def test_remaining_suspicion_time_memberlist_timer_table(confirmations: int, expected: float) -> None:
    assert remaining_suspicion_time(confirmations, 3, 0.0, 0.5, 2.0) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize(("k", "elapsed"), [(0, 0.0), (0, 1.5), (0, 7.0), (-1, 0.0)])
@pytest.mark.parametrize("confirmations", [0, 1, 5])
def test_no_expected_confirmations_means_minimum_timeout(k: int, elapsed: float, confirmations: int) -> None:
    assert remaining_suspicion_time(confirmations, k, elapsed, 2.0, 30.0) == pytest.approx(
        2.0 - elapsed, **EXACT
    )


@given(
    st.integers(1, 10),
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(0, 60_000).map(lambda ms: ms / 1000),
    st.integers(1, 10_000).map(lambda ms: ms / 1000),
    st.integers(0, 60_000).map(lambda ms: ms / 1000),
)
def test_remaining_suspicion_time_properties(
    k: int, c1: int, c2: int, elapsed: float, min_timeout: float, extra: float
) -> None:
    max_timeout = min_timeout + extra
    lo, hi = sorted((c1, c2))
    r_lo = remaining_suspicion_time(lo, k, elapsed, min_timeout, max_timeout)
    r_hi = remaining_suspicion_time(hi, k, elapsed, min_timeout, max_timeout)
    # more independent confirmations never lengthen the timeout
    assert r_hi <= r_lo + 1e-9
    # the total timeout stays within [min, max]
    for r in (r_lo, r_hi):
        assert min_timeout - 1e-9 <= r + elapsed <= max_timeout + 1e-9
    # no confirmations: max, to the millisecond (like memberlist, the float floor of
    # 1000 * 1.001 can lose the last millisecond)
    if lo == 0:
        assert max_timeout - 0.001 - 1e-9 <= r_lo + elapsed <= max_timeout + 1e-9
    # k or more: min
    if hi >= k:
        assert r_hi + elapsed == pytest.approx(min_timeout, abs=1e-6)


# -- Lifeguard: local health ----------------------------------------------------------------------


@pytest.mark.parametrize(("score", "expected"), [(s, s + 1.0) for s in range(8)])
def test_scale_by_health_memberlist_awareness_table(score: int, expected: float) -> None:
    """memberlist TestAwareness: max 8, ScaleTimeout(1 s) at score 0..7 is 1..8 s."""
    assert scale_by_health(1.0, score) == pytest.approx(expected, **EXACT)


@pytest.mark.parametrize(("interval", "score", "expected"), [(0.5, 0, 0.5), (0.5, 3, 2.0), (0.2, 7, 1.6)])
def test_scale_by_health_scales_any_interval(interval: float, score: int, expected: float) -> None:
    assert scale_by_health(interval, score) == pytest.approx(expected, **EXACT)


# -- push-pull interval ---------------------------------------------------------------------------


def _push_pull_expected(n: int) -> float:
    """memberlist TestPushPullScale, extended: one more interval each time n doubles past 32."""
    if n <= 32:
        return 1.0
    for multiplier, upper in enumerate([64, 128, 256, 512, 1024, 2048, 4096, 8192], start=2):
        if n <= upper:
            return float(multiplier)
    raise AssertionError(n)


@pytest.mark.parametrize("n", [*range(0, 130), 255, 256, 257, 512, 513, 1024, 1025, 4096, 4097, 8192])
def test_push_pull_scale_table(n: int) -> None:
    assert push_pull_scale(1.0, n) == pytest.approx(_push_pull_expected(n), **EXACT)


@pytest.mark.parametrize(("n", "expected"), [(32, 30.0), (33, 60.0), (64, 60.0), (65, 90.0), (1000, 180.0)])
def test_push_pull_scale_lan_interval(n: int, expected: float) -> None:
    """DefaultLANConfig: PushPullInterval 30 s."""
    assert push_pull_scale(30.0, n) == pytest.approx(expected, **EXACT)
