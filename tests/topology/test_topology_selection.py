"""Peer selection: uniform at bias 0, biased toward low RTT otherwise, never the target."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import ConfigError
from swimnet.topology import choose_helpers, choose_peers
from swimnet.topology.selection import DEFAULT_MAX_TOURNAMENT, PILOT_SIZE, random_round

NAMES = [f"n{i}" for i in range(50)]


def no_rtt(_: str) -> float | None:
    return None


def chi_square(counts: Counter[str], names: list[str], total: int) -> float:
    expected = total / len(names)
    return sum((counts[n] - expected) ** 2 / expected for n in names)


# chi-square critical value for 49 degrees of freedom at p = 0.001 (df 48 when one is excluded)
CHI2_49_P001 = 85.35


def test_bias_zero_is_rng_sample() -> None:
    a, b = random.Random(9), random.Random(9)
    for k in (0, 1, 3, 50, 80):
        assert choose_peers(NAMES, k, a, no_rtt, 0.0) == b.sample(NAMES, min(k, len(NAMES)))


def test_bias_zero_is_uniform() -> None:
    rng = random.Random(1)
    counts: Counter[str] = Counter()
    for _ in range(10_000):
        counts.update(choose_peers(NAMES, 3, rng, no_rtt, 0.0))
    assert chi_square(counts, NAMES, 30_000) < CHI2_49_P001


def test_helpers_at_bias_zero_are_uniform_over_the_others() -> None:
    rng = random.Random(2)
    counts: Counter[str] = Counter()
    for _ in range(10_000):
        picks = choose_helpers(NAMES, 3, rng, no_rtt, 0.0, target="n7")
        assert len(picks) == 3 and len(set(picks)) == 3
        counts.update(picks)
    assert counts["n7"] == 0
    others = [n for n in NAMES if n != "n7"]
    assert chi_square(counts, others, 30_000) < CHI2_49_P001


def test_unknown_rtts_everywhere_leave_the_biased_picks_uniform() -> None:
    rng = random.Random(3)
    counts: Counter[str] = Counter()
    for _ in range(10_000):
        counts.update(choose_peers(NAMES, 3, rng, no_rtt, 1.0))
    assert chi_square(counts, NAMES, 30_000) < CHI2_49_P001


def rtts_uniform(n: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    return {f"n{i}": rng.uniform(0.001, 0.100) for i in range(n)}


def test_bias_reduces_mean_rtt_of_picks() -> None:
    rtt = rtts_uniform(2000, 4)
    names = list(rtt)
    rng = random.Random(5)
    means = {}
    for bias in (0.0, 0.25, 0.5, 1.0):
        picked = [rtt[p] for _ in range(2000) for p in choose_peers(names, 3, rng, rtt.get, bias)]
        means[bias] = statistics.fmean(picked)
    assert means[0.0] > means[0.25] > means[0.5] > means[1.0], means
    # bias 1: a third uniform (mean ~50.5 ms), two thirds nearest of 32 (mean ~4 ms)
    assert means[1.0] < 0.5 * means[0.0], means


def two_zones(n: int) -> dict[str, float]:
    """Half the candidates 1 ms away, half 50 ms away."""
    return {f"n{i}": 0.001 if i % 2 == 0 else 0.050 for i in range(n)}


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_uniform_share_still_reaches_far_peers(k: int) -> None:
    rtt = two_zones(400)
    names = list(rtt)
    rng = random.Random(6)
    calls = 12_000 // k
    far = sum(rtt[p] > 0.01 for _ in range(calls) for p in choose_peers(names, k, rng, rtt.get, 1.0))
    # biased picks essentially never go far (2^-32); uniform ones do half the time
    share = far / (calls * k)
    assert share == pytest.approx(0.5 / 3, abs=0.015), share


def test_no_uniform_share_means_near_only() -> None:
    rtt = two_zones(400)
    names = list(rtt)
    rng = random.Random(7)
    picks = [p for _ in range(1000) for p in choose_peers(names, 3, rng, rtt.get, 1.0, 0.0)]
    assert all(rtt[p] < 0.01 for p in picks)
    assert len(set(picks)) > 100  # ...but spread over the near zone, not stuck on a few


def test_full_uniform_share_ignores_rtt() -> None:
    rtt = two_zones(400)
    names = list(rtt)
    rng = random.Random(8)
    picks = [p for _ in range(4000) for p in choose_peers(names, 3, rng, rtt.get, 1.0, 1.0)]
    assert statistics.fmean(rtt[p] > 0.01 for p in picks) == pytest.approx(0.5, abs=0.02)


def test_unknown_rtt_counts_as_the_median() -> None:
    """Near (1 ms), unknown and far (100 ms) thirds: unknown peers land in between."""
    names = [f"n{i}" for i in range(300)]
    rtt = {n: (0.001, None, 0.100)[i % 3] for i, n in enumerate(names)}
    rng = random.Random(9)
    kinds: Counter[float | None] = Counter()
    for _ in range(3000):
        kinds.update(rtt[p] for p in choose_peers(names, 1, rng, rtt.get, 0.3, 0.0))
    assert kinds[0.001] > kinds[None] > kinds[0.100], kinds


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_unusable_rtts_are_unknown(value: float) -> None:
    rng = random.Random(10)
    picks = choose_peers(NAMES, 5, rng, lambda _: value, 1.0)
    assert len(set(picks)) == 5


def test_rtt_lookups_do_not_grow_with_the_candidates() -> None:
    names = [f"n{i}" for i in range(20_000)]
    rng = random.Random(11)
    calls = 0

    def counting(name: str) -> float | None:
        nonlocal calls
        calls += 1
        return None if name.endswith("7") else float(len(name))

    for _ in range(50):
        calls = 0
        picks = choose_peers(names, 3, rng, counting, 1.0)
        assert len(picks) == 3
        assert calls <= 3 * DEFAULT_MAX_TOURNAMENT + PILOT_SIZE


def test_asking_for_everything_returns_a_permutation() -> None:
    rtt = rtts_uniform(20, 12)
    names = list(rtt)
    rng = random.Random(13)
    for bias in (0.0, 0.5, 1.0):
        picks = choose_peers(names, 25, rng, rtt.get, bias)
        assert sorted(picks) == sorted(names)
        helpers = choose_helpers(names, 25, rng, rtt.get, bias, target="n3")
        assert sorted(helpers) == sorted(n for n in names if n != "n3")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": -1},
        {"bias": -0.1},
        {"bias": 1.5},
        {"bias": float("nan")},
        {"uniform_share": 1.1},
        {"max_tournament": 0},
    ],
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    args: dict[str, object] = {"k": 3, "bias": 0.5, "uniform_share": 1 / 3, "max_tournament": 8}
    args.update(kwargs)
    with pytest.raises(ConfigError):
        choose_peers(NAMES, rng=random.Random(0), rtt_of=no_rtt, **args)  # type: ignore[arg-type]


def test_random_round_is_exact_in_mean() -> None:
    rng = random.Random(14)
    assert random_round(3 * (1 / 3), rng) == 1
    assert random_round(2.0, rng) == 2
    draws = [random_round(1 / 3, rng) for _ in range(30_000)]
    assert set(draws) == {0, 1}
    assert statistics.fmean(draws) == pytest.approx(1 / 3, abs=0.01)


names_lists = st.lists(st.text(min_size=1, max_size=3), max_size=30, unique=True)


@given(
    names=names_lists,
    target=st.text(min_size=1, max_size=3),
    k=st.integers(0, 35),
    bias=st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
    known=st.floats(0.0, 1.0),
)
def test_helpers_never_include_the_target(
    names: list[str], target: str, k: int, bias: float, share: float, seed: int, known: float
) -> None:
    names = [*names, target] if seed % 2 and target not in names else names
    rtt = {n: (None if random.Random(n).random() > known else random.Random(n).random()) for n in names}
    picks = choose_helpers(names, k, random.Random(seed), rtt.get, bias, target, share)
    assert target not in picks
    assert len(set(picks)) == len(picks)
    assert set(picks) <= set(names)
    assert len(picks) == min(k, len([n for n in names if n != target]))


@given(
    names=names_lists,
    k=st.integers(0, 35),
    bias=st.floats(0.0, 1.0),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_peers_are_distinct_candidates_and_reproducible(
    names: list[str], k: int, bias: float, share: float, seed: int
) -> None:
    def rtt_of(name: str) -> float:
        return float(len(name))

    picks = choose_peers(names, k, random.Random(seed), rtt_of, bias, share)
    assert len(picks) == min(k, len(names)) == len(set(picks))
    assert set(picks) <= set(names)
    assert picks == choose_peers(names, k, random.Random(seed), rtt_of, bias, share)


def test_a_liar_nearest_to_everyone_cannot_take_the_uniform_share() -> None:
    """A far node claiming to be near everyone wins the tournaments it enters, no more: the
    uniform share still reaches far zones at its full rate (what keeps a zone from starving)."""
    near = {f"a{i}": 0.001 for i in range(10)}
    far = {f"c{i}": 0.040 for i in range(20)}
    rtt = {"liar": 0.0} | near | far
    names = list(rtt)
    rng = random.Random(8)
    calls, k, share = 6_000, 3, 0.25
    picks = [p for _ in range(calls) for p in choose_peers(names, k, rng, rtt.get, 0.7, share)]
    far_share = sum(p in far for p in picks) / len(picks)
    assert far_share >= 0.9 * share * len(far) / len(names), far_share
    assert sum(p == "liar" for p in picks) <= calls  # at most once a call, as anyone
