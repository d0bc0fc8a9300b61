"""TopologyDelegate.choose: while no peer can be told from another (estimates untrusted, or a
flat network such as one LAN) choices are uniform and compute no RTT estimate; once estimates
discern near from far, tournaments favour the near peers."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from swimnet.config import Config
from swimnet.layers.topology import TopologyDelegate
from swimnet.topology import Coordinate
from swimnet.topology.book import TRUSTED_UPDATES
from swimnet.topology.codec import encode_ack_payload

NEAR = 0.0003
FAR = 0.040
PEERS = [f"p{i:02d}" for i in range(40)]


def _at(x: float, updates: int = 50) -> tuple[tuple[int, int], Coordinate]:
    return (1, updates), Coordinate((x,) + (0.0,) * 7, 0.2, 0.0, 1e-5)


def _delegate(seed: int, far_share: float) -> tuple[TopologyDelegate, list[str]]:
    """A trusted delegate that knows every peer and probed each once: the first `far_share`
    of them far, the rest near (all near, flat, when far_share is 0). Returns the near."""
    topo = TopologyDelegate(Config.lan(name="me"), random.Random(seed), Counter())
    coords = topo.coordinates
    n_far = int(far_share * len(PEERS))
    for i, name in enumerate(PEERS):
        coords.learn(name, *_at(FAR if i < n_far else 0.0))
    for i in range(max(3 * TRUSTED_UPDATES, len(PEERS))):  # probes go round every member
        far = i % len(PEERS) < n_far
        version, coord = _at(FAR if far else 0.0)
        coords.observe(PEERS[i % len(PEERS)], FAR if far else NEAR, encode_ack_payload(version, coord))
    return topo, PEERS[n_far:]


def _counting_estimates(topo: TopologyDelegate) -> Counter[str]:
    calls: Counter[str] = Counter()
    coords = topo.coordinates
    estimate = coords.client.rtt_estimate

    def counted_estimate(coord: Coordinate | None) -> float | None:
        calls["rtt_estimate"] += 1
        return estimate(coord)

    coords.client.rtt_estimate = counted_estimate  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("trusted", [False, True])
def test_choices_in_a_flat_or_untrusted_network_are_uniform_and_estimate_nothing(trusted: bool) -> None:
    if trusted:
        topo, _ = _delegate(7, far_share=0.0)
        assert topo.coordinates.trusted and topo.coordinates.known_peers() == ()
    else:
        topo = TopologyDelegate(Config.lan(name="me"), random.Random(7), Counter())
        assert not topo.coordinates.trusted
    skip = {"p00", "p01"}
    picks: Counter[str] = Counter()
    calls = _counting_estimates(topo)
    rounds = 3000
    for _ in range(rounds):
        chosen = topo.choose(PEERS, 3, skip)
        assert len(chosen) == 3 == len(set(chosen)) and not skip & set(chosen)
        picks.update(chosen)
    assert calls["rtt_estimate"] == 0  # no peer is ever estimated (the median is measured)
    expected = 3 * rounds / (len(PEERS) - len(skip))
    assert set(picks) == set(PEERS) - skip
    assert all(abs(count - expected) < 0.25 * expected for count in picks.values()), picks


def test_a_discerning_network_still_favours_near_peers() -> None:
    topo, near = _delegate(8, far_share=0.5)
    assert topo.coordinates.known_peers()
    picks: Counter[str] = Counter()
    for _ in range(2000):
        picks.update(topo.choose(PEERS, 3, ()))
    near_share = sum(picks[name] for name in near) / sum(picks.values())
    assert near_share > 0.75, near_share  # uniform would be 0.5
