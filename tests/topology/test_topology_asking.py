"""Who asks for a coordinate and when: a prober marks its ping by the parity of its sequence
number, the acker attaches its coordinate to the acks of even ones only; in a flat network a
prober asks rarely, a bare ack teaches its coordinate nothing (only its RTT counts), and moves
are published only once the network is uneven; flat is told by the RTTs measured."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from swimnet.config import Config
from swimnet.layers.topology import TopologyDelegate
from swimnet.topology import Coordinate
from swimnet.topology.book import TRUSTED_UPDATES
from swimnet.topology.codec import encode_ack_payload
from swimnet.topology.tracker import FLAT_ASK_SPACING, MIN_KNOWN, RTT_WINDOW, PeerCoordinates, moved

NEAR = 0.0003
FAR = 0.040
PEERS = [f"p{i}" for i in range(MIN_KNOWN + 4)]


def _at(x: float, updates: int = 50) -> tuple[tuple[int, int], Coordinate]:
    return (1, updates), Coordinate((x,) + (0.0,) * 7, 0.2, 0.0, 1e-5)


def _probe(t: PeerCoordinates, peer: str, x: float, rtt: float) -> None:
    version, coord = _at(x)
    t.observe(peer, rtt, encode_ack_payload(version, coord))


def _placed(seed: int, *, flat: bool) -> PeerCoordinates:
    """Trusted, holding every peer's coordinate: all near (a LAN), or two thirds of them far."""
    t = PeerCoordinates(random.Random(seed))
    n_far = 0 if flat else 2 * len(PEERS) // 3
    for i in range(3 * TRUSTED_UPDATES):
        peer = i % len(PEERS)
        far = peer < n_far
        _probe(t, PEERS[peer], FAR if far else 0.0, FAR if far else NEAR)
    assert t.trusted and t.flat() == flat
    return t


def _asks(t: PeerCoordinates, peer: str, probes: int) -> int:
    return sum(t.ask_for_coordinate(peer) for _ in range(probes))


def test_an_unplaced_node_asks_on_every_probe() -> None:
    t = PeerCoordinates(random.Random(1))
    assert _asks(t, "p0", 20) == 20


def test_a_placed_node_asks_every_other_probe_and_for_every_peer_it_lacks() -> None:
    t = _placed(2, flat=False)
    assert _asks(t, "p0", 40) == 20
    assert _asks(t, "stranger", 10) == 10  # no coordinate held: ask


def test_in_a_flat_network_a_node_asks_rarely_even_for_peers_it_lacks() -> None:
    t = _placed(3, flat=True)
    spacing = t.ask_every * FLAT_ASK_SPACING
    assert _asks(t, "p1", 4 * spacing) == 4
    assert _asks(t, "stranger", 4 * spacing) == 4


@pytest.mark.parametrize("flat", [True, False])
def test_a_bare_ack_teaches_our_coordinate_nothing_but_its_rtt_counts(flat: bool) -> None:
    t = _placed(4, flat=flat)
    before, updates = t.coordinate, t.client.updates
    t.observe("p1", NEAR, b"")  # a coordinate of p1 is held: still nothing learned from it
    assert (t.coordinate, t.client.updates) == (before, updates)
    assert t.stats["coordinate_missing"] == 1
    rtt = FAR if flat else NEAR
    for _ in range(RTT_WINDOW):
        t.observe("p1", rtt, b"")
    assert t.flat() != flat  # the median RTT is the one measured on the last probes
    assert (t.coordinate, t.client.updates) == (before, updates)


def _move_by(t: PeerCoordinates, distance: float) -> None:
    """Probe a peer at the origin (where every peer of `_placed` sits) that answers slower
    than estimated, until our coordinate `moved` by `distance` (see the tracker)."""
    start = t.coordinate
    for _ in range(1000):
        _probe(t, "p0", 0.0, 1.5 * distance)
        if moved(start, t.coordinate) >= distance:
            return
    raise AssertionError(f"the coordinate did not move by {distance}")


def _pull_by(t: PeerCoordinates, distance: float) -> None:
    """Probe a peer whose coordinate sits FAR away but that answers in NEAR (the network stays
    flat), until our coordinate `moved` by `distance` towards it."""
    start = t.coordinate
    for _ in range(1000):
        _probe(t, "mover", FAR, NEAR)
        if moved(start, t.coordinate) >= distance:
            return
    raise AssertionError(f"the coordinate did not move by {distance}")


def test_in_a_flat_network_a_move_is_published_only_once_the_network_is_uneven() -> None:
    t = _placed(6, flat=True)
    assert t.take_publication() is not None  # the first, when trusted
    _pull_by(t, 4 * t.rtt_floor)
    assert t.flat()
    assert t.take_publication() is None
    for _ in range(RTT_WINDOW):  # the probes now take FAR: uneven
        t.observe("p1", FAR, b"")
    assert not t.flat() and t.take_publication() is None
    _probe(t, "p1", 0.0, FAR)  # the next sample finds the move since the last publication
    assert t.take_publication() is not None


def test_elsewhere_a_fifth_of_the_median_is_published() -> None:
    t = _placed(8, flat=False)
    assert t.take_publication() is not None
    median = t._median_rtt()
    assert median > t.rtt_floor
    _move_by(t, 0.25 * median)
    assert t.take_publication() is not None


def _delegate(coordinate_every: int = 2) -> TopologyDelegate:
    config = Config.lan(name="me", coordinate_every=coordinate_every)
    return TopologyDelegate(config, random.Random(9), Counter())


def test_the_ping_s_parity_asks_and_the_ack_answers() -> None:
    topo = _delegate()
    # unplaced: every probe asks, by an even sequence number, skipping one at most
    for seq in range(101, 111):
        picked = topo.ping_seq("p0", seq)
        assert picked % 2 == 0 and 0 <= picked - seq <= 1
    assert topo.ping_seq("p0", 0xFFFFFFFF) == 0  # wraps like the sequence numbers
    payload = topo.ack_payload(10, "p0")
    assert payload and not topo.ack_payload(11, "p0")
    assert topo.coordinates.stats["coordinate_ack_bytes"] == len(payload)


def test_a_placed_prober_in_a_flat_network_sends_odd_sequence_numbers_mostly() -> None:
    topo = _delegate()
    t = topo.coordinates
    for i in range(3 * TRUSTED_UPDATES):
        _probe(t, PEERS[i % len(PEERS)], 0.0, NEAR)
    assert t.flat()
    seqs = [topo.ping_seq("p1", 1000 + 2 * i) for i in range(64)]
    assert sum(1 for s in seqs if s % 2 == 0) == 64 // (2 * FLAT_ASK_SPACING)


def test_coordinate_every_zero_neither_asks_nor_answers() -> None:
    topo = _delegate(coordinate_every=0)
    assert all(topo.ping_seq("p0", seq) % 2 == 1 for seq in range(100, 120))
    assert topo.ack_payload(10, "p0") == b""


def test_one_slow_probe_does_not_make_a_flat_network_look_uneven() -> None:
    """A stall (GC, a busy host) makes one RTT sample 50 ms and throws our coordinate off by
    milliseconds; the network stays flat, since what tells flat is the RTTs measured."""
    t = _placed(4, flat=True)
    before = t.coordinate
    _probe(t, "newcomer", 0.0, 0.050)  # its first sample: no per-peer median filters it
    assert moved(before, t.coordinate) > t.rtt_floor  # misplaced for now
    for _ in range(300):  # however often asked (a cached estimate would be re-taken)
        assert t.flat()
    assert t.known_peers() == ()
    assert t.remoteness(PEERS[1]) == 1.0  # every peer alike
