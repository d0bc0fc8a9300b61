"""Hostile input: Hypothesis bytes and a corpus of mutated valid queries through the resolver's
input path, with the invariants of `swimnet.dns.fuzz.check` (never a crash, bounded replies,
the fast path equal to dnspython's). The `dnsfuzz` benchmark runs the same over 10^6 inputs."""

from __future__ import annotations

import random
from collections import Counter

import dns.message
from dns_fixtures import two_networks
from hypothesis import given
from hypothesis import strategies as st

from swimnet.dns import DnsMetrics, Respond
from swimnet.dns.fuzz import check, inputs, mutate, seed_corpus
from swimnet.dns.metrics import QTYPE_LABELS, RCODE_LABELS

VIEW = two_networks()
CORPUS = seed_corpus()
MUTATED_INPUTS = 6000


def test_the_seed_corpus_is_valid_dns() -> None:
    parsed = 0
    for data in CORPUS:
        try:
            dns.message.from_wire(data)
            parsed += 1
        except Exception:
            pass
    assert parsed >= len(CORPUS) - 2  # the two pointer tricks at the end are refused


@given(st.binary(max_size=600), st.integers(0, 2**32), st.booleans())
def test_arbitrary_bytes(data: bytes, seed: int, tcp: bool) -> None:
    check(data, VIEW, ("front",), seed, tcp=tcp)


@given(st.sampled_from(CORPUS), st.integers(0, 2**32), st.booleans())
def test_hypothesis_mutations_of_valid_queries(data: bytes, seed: int, tcp: bool) -> None:
    mutated = mutate(data, random.Random(seed), CORPUS)
    check(mutated, VIEW, ("front", "back"), seed, tcp=tcp)


def test_a_corpus_of_mutated_queries() -> None:
    """Seeded: a failure names its index, and `inputs(n, Random(2024))` reproduces it."""
    outcomes: Counter[str] = Counter()
    metrics = DnsMetrics()
    for i, data in enumerate(inputs(MUTATED_INPUTS, random.Random(2024), CORPUS)):
        out = check(data, VIEW, ("front",), i, tcp=bool(i & 1))
        outcomes[type(out).__name__] += 1
        if isinstance(out, Respond):
            metrics.queries[(out.qtype, out.rcode)] += 1
            if out.malformed:
                metrics.malformed[out.malformed] += 1
    # every kind of outcome is exercised, answers among them
    assert outcomes["Respond"] > 1000 and outcomes["Relay"] > 50 and outcomes["Ignore"] > 100
    assert metrics.queries[("A", "NOERROR")] > 0 and metrics.queries[("unknown", "FORMERR")] > 0
    # the counters' labels stay within fixed sets, whatever the input
    qtypes = {q for q, _ in metrics.queries}
    rcodes = {r for _, r in metrics.queries}
    assert qtypes <= set(QTYPE_LABELS.values()) | {"other", "unknown"}
    assert rcodes <= set(RCODE_LABELS.values()) | {"other"}
    assert len(metrics.malformed) < 40
