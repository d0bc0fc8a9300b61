"""The coordinate book: an older coordinate never replaces a newer one, whatever order the
copies arrive in; trust and capacity are exact."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from swimnet.topology import Coordinate
from swimnet.topology.book import TRUSTED_UPDATES, CoordinateBook, is_trusted


def _coord(x: float) -> Coordinate:
    return Coordinate((x, 0.0), 0.5, 0.0, 1e-5)


versions = st.tuples(st.integers(0, 3), st.integers(0, 40))


@given(st.lists(st.tuples(st.sampled_from("abc"), versions), max_size=40), st.randoms(use_true_random=False))
def test_the_newest_version_wins_in_any_order(
    offers: list[tuple[str, tuple[int, int]]], rnd: random.Random
) -> None:
    book = CoordinateBook()
    for name, version in offers:
        book.offer(name, version, _coord(version[0] * 100 + version[1]))
    shuffled = CoordinateBook()
    order = offers[:]
    rnd.shuffle(order)
    for name, version in order:
        shuffled.offer(name, version, _coord(version[0] * 100 + version[1]))
    for name in "abc":
        mine = [v for n, v in offers if n == name]
        expected = max(mine) if mine else None
        assert book.version(name) == shuffled.version(name) == expected
        if expected is not None:
            entry = book.get(name)
            assert entry is not None and entry[1] == _coord(expected[0] * 100 + expected[1])
    assert book.trusted == sum(1 for name in book if is_trusted(book.version(name) or (0, 0)))


def test_an_older_or_equal_version_is_refused() -> None:
    book = CoordinateBook()
    assert book.offer("a", (1, 20), _coord(1.0))
    assert not book.offer("a", (1, 20), _coord(2.0))
    assert not book.offer("a", (1, 19), _coord(2.0))
    assert not book.offer("a", (0, 99), _coord(2.0))
    assert book.coordinate("a") == _coord(1.0)
    assert book.offer("a", (2, 0), _coord(3.0))  # a new life (higher epoch) wins
    assert book.coordinate("a") is None  # ... but is not trusted yet
    assert book.trusted == 0


def test_untrusted_coordinates_are_held_but_not_given_out() -> None:
    book = CoordinateBook()
    book.offer("a", (1, TRUSTED_UPDATES - 1), _coord(1.0))
    assert book.coordinate("a") is None and book.trusted == 0
    book.offer("a", (1, TRUSTED_UPDATES), _coord(2.0))
    assert book.coordinate("a") == _coord(2.0) and book.trusted == 1
    book.forget("a")
    assert book.trusted == 0 and "a" not in book


def test_capacity_bounds_new_names_only() -> None:
    book = CoordinateBook(capacity=2)
    assert book.offer("a", (1, 10), _coord(1.0))
    assert book.offer("b", (1, 10), _coord(1.0))
    assert not book.offer("c", (1, 10), _coord(1.0))
    assert book.offer("a", (1, 11), _coord(2.0))  # known names still update
    assert len(book) == 2
