"""PeerCoordinates: when estimates are trusted, what is published, and that coordinates heard
from others serve estimates only (our own coordinate learns from direct probes alone)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from swimnet.topology import Coordinate
from swimnet.topology.book import TRUSTED_UPDATES
from swimnet.topology.codec import encode_ack_payload
from swimnet.topology.tracker import MIN_KNOWN, RTT_WINDOW, PeerCoordinates

NEAR = 0.0003
FAR = 0.040


def _at(x: float, updates: int = 50) -> tuple[tuple[int, int], Coordinate]:
    return (1, updates), Coordinate((x,) + (0.0,) * 7, 0.2, 0.0, 1e-5)


def _probe(t: PeerCoordinates, peer: str, x: float, rtt: float, updates: int = 50) -> None:
    version, coord = _at(x, updates)
    t.observe(peer, rtt, encode_ack_payload(version, coord))


def _settled(rng: random.Random) -> PeerCoordinates:
    """A node at x ~ 0 that probed near peers (x = 0) and far ones (x = FAR) for a while."""
    t = PeerCoordinates(rng)
    for i in range(60):
        if i % 3:
            _probe(t, f"far{i % 9}", FAR, FAR)
        else:
            _probe(t, f"near{i % 9}", 0.0, NEAR)
    return t


def test_bias_stays_off_until_own_coordinate_and_enough_peers_are_trusted() -> None:
    t = PeerCoordinates(random.Random(1))
    for i in range(MIN_KNOWN + 2):  # everyone's coordinate known, from gossip
        version, coord = _at(FAR if i % 2 else 0.0)
        assert t.learn(f"p{i}", version, coord)
    assert not t.trusted
    assert t.remoteness("p0") is None  # we have not placed ourselves yet
    assert t.known_peers() == ()  # tournaments drawn among the known: only once trusted
    for i in range(TRUSTED_UPDATES):
        _probe(t, f"p{i % 4}", FAR if i % 2 else 0.0, FAR if i % 2 else NEAR)
    assert t.trusted
    assert t.remoteness("p0") is not None  # a few probes, not one round over every member
    assert sorted(t.known_peers()) == sorted(f"p{i}" for i in range(MIN_KNOWN + 2))


def test_too_few_known_peers_means_unknown() -> None:
    t = PeerCoordinates(random.Random(2))
    for i in range(TRUSTED_UPDATES):
        _probe(t, f"p{i % 3}", 0.0, NEAR)
    assert t.trusted and t.book.trusted < MIN_KNOWN
    assert t.remoteness("p0") is None
    assert t.known_peers() == ()


def test_untrusted_peer_coordinates_are_unknown() -> None:
    t = _settled(random.Random(3))
    version, coord = _at(0.0, updates=TRUSTED_UPDATES - 1)
    t.learn("fresh", version, coord)
    assert t.remoteness("fresh") is None
    assert t.rtt_estimate("fresh") is None


def test_near_and_far_from_heard_coordinates() -> None:
    t = _settled(random.Random(4))
    me = t.coordinate.vec[0]
    t.learn("heard-near", *_at(me))
    t.learn("heard-far", *_at(me + FAR))
    assert t.remoteness("heard-near") == 0.0
    assert t.remoteness("heard-far") == 1.0


def test_heard_coordinates_never_move_ours() -> None:
    t = _settled(random.Random(5))
    before, updates = t.coordinate, t.client.updates
    for i in range(50):
        t.learn(f"x{i}", *_at(500.0, updates=100 + i))
    assert t.coordinate == before and t.client.updates == updates


def test_a_direct_ack_refreshes_the_peer_only_with_a_newer_version() -> None:
    t = _settled(random.Random(6))
    t.learn("p", *_at(0.001, updates=80))
    _probe(t, "p", 0.002, NEAR, updates=70)  # an older version, though direct
    entry = t.book.get("p")
    assert entry is not None and entry[0] == (1, 80)
    _probe(t, "p", 0.002, NEAR, updates=90)
    entry = t.book.get("p")
    assert entry is not None and entry[0] == (1, 90) and abs(entry[1].vec[0] - 0.002) < 1e-9


def test_publication_when_trusted_then_on_material_moves_only() -> None:
    t = PeerCoordinates(random.Random(7))
    for i in range(TRUSTED_UPDATES - 1):
        _probe(t, f"p{i % 3}", 0.0, NEAR)
    assert t.take_publication() is None
    _probe(t, "p0", 0.0, NEAR)
    published = t.take_publication()
    assert published is not None and published[0] == t.version
    assert t.take_publication() is None  # taken: not due again until it moves
    t = _settled(random.Random(8))
    t.take_publication()
    for _ in range(5):
        _probe(t, "near0", 0.0, NEAR)  # a settled node hardly moves
    assert t.take_publication() is None
    for i in range(40):  # the far peers now look much further: we move
        _probe(t, f"far{i % 9}", 0.3, 0.3)
    assert t.take_publication() is not None
    assert t.stats["coordinate_published"] == 2


def test_bad_payloads_are_counted_and_change_nothing() -> None:
    t = _settled(random.Random(9))
    before = t.coordinate
    t.observe("p", 0.01, b"")
    t.observe("p", 0.01, b"\x93\x01\x02\x03")
    version, coord = _at(0.0)
    t.observe("p", 20.0, encode_ack_payload(version, coord))  # an absurd RTT
    assert t.coordinate == before
    assert t.stats["coordinate_missing"] == 1
    assert t.stats["coordinate_undecodable"] == 1
    assert t.stats["coordinate_rejected_rtt_out_of_range"] == 1
    assert "p" not in t.book


def test_remoteness_follows_every_change_of_either_coordinate() -> None:
    """Scores are kept between choices, never past a change: the peer's newer coordinate, or
    ours moving after a probe, gives the score a fresh computation would."""
    t = _settled(random.Random(9))
    me = t.coordinate.vec[0]
    t.learn("mover", *_at(me))
    assert t.remoteness("mover") == 0.0
    assert t.remoteness("mover") == 0.0  # asked again: the same
    t.learn("mover", *_at(me + FAR, updates=51))
    assert t.remoteness("mover") == 1.0
    t.learn("still", *_at(me + FAR))
    assert t.remoteness("still") == 1.0
    for i in range(40):  # we move to where "still" is (far peers prove near, near ones far)
        if i % 2:
            _probe(t, "far0", FAR, NEAR)
        else:
            _probe(t, "near0", 0.0, FAR)
    median = t._median_rtt()
    estimate = t.client.rtt_estimate(t.book.coordinate("still"))
    assert estimate is not None and median > t.rtt_floor and estimate <= 0.5 * median
    assert t.remoteness("still") == 0.0


_SAMPLES = st.sampled_from([-1.0, 0.0, 0.0002, 0.0005, 0.001, 0.003, 0.02, float("nan"), 1e9])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0.0, 0.2), _SAMPLES), min_size=RTT_WINDOW + 1, max_size=4 * RTT_WINDOW))
def test_median_rtt_is_the_median_of_the_last_window_of_usable_samples(rtts: list[float]) -> None:
    """The median kept in step with the window (an insertion and a removal per sample, in
    a ring of doubles) is the one a sort of the window gives, through evictions, repeated
    values and refused samples."""
    t = PeerCoordinates(random.Random(1))
    usable: list[float] = []
    for rtt in rtts:
        t.observe("peer", rtt, b"")
        if t.client.config.accepts_rtt(rtt):
            usable.append(rtt)
        window = sorted(usable[-RTT_WINDOW:])
        assert t._median_rtt() == (window[len(window) // 2] if window else 0.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(1e-6, 0.5), st.sampled_from([0.0, -1.0, 20.0, 0.001, 0.002])),
        max_size=3 * RTT_WINDOW,
    )
)
def test_the_median_rtt_is_the_median_of_the_last_window_of_accepted_samples(rtts: list[float]) -> None:
    """The window (sorted half and arrival ring in one array) gives, after every sample, the
    median of the last RTT_WINDOW accepted ones: repeated values and rejected RTTs included."""
    t = PeerCoordinates(random.Random(1))
    accepted: list[float] = []
    for rtt in rtts:
        t.observe("p", rtt, b"")
        if 0.0 < rtt <= t.vivaldi.max_rtt:
            accepted.append(rtt)
        window = sorted(accepted[-RTT_WINDOW:])
        assert t._median_rtt() == (window[len(window) // 2] if window else 0.0)
        assert t.flat() == (t._trustworthy() and t._median_rtt() <= t.rtt_floor)


def test_acks_without_a_coordinate_are_counted_in_the_shared_counters_when_read() -> None:
    """The count waits in the tracker (an ack does not touch the node's counters) and is in
    the Counter it was given, as if counted per ack, whenever `stats` is read."""
    shared: Counter[str] = Counter()
    t = PeerCoordinates(random.Random(3), stats=shared)
    for _ in range(3):
        t.observe("p", 0.01, b"")
    assert t.stats["coordinate_missing"] == 3
    t.observe("p", 0.01, b"")
    assert t.stats is shared and shared["coordinate_missing"] == 4
    assert t.stats["coordinate_missing"] == 4  # moved once, not twice
