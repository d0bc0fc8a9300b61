"""Keyed one-shot timers: one live deadline per key, lazy deletion, deadline order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swimnet.membership.timers import Timers


def test_setting_a_key_again_replaces_its_deadline_even_with_the_same_time() -> None:
    t = Timers()
    t.set("a", 5.0)
    t.set("a", 5.0)
    t.set("b", 3.0)
    t.set("b", 7.0)
    assert t.next_deadline() == 5.0
    assert t.pop_due(6.0) == ["a"]
    assert t.next_deadline() == 7.0
    assert t.pop_due(10.0) == ["b"]
    assert t.next_deadline() is None


def test_cancelled_keys_never_fire_and_do_not_hold_the_next_deadline() -> None:
    t = Timers()
    t.set("a", 1.0)
    t.set("b", 2.0)
    t.cancel("a")
    t.cancel("missing")
    assert "a" not in t and "b" in t
    assert t.next_deadline() == 2.0
    t.set("a", 1.0)  # set again after a cancel: live again
    assert t.pop_due(2.0) == ["a", "b"]


def test_due_by() -> None:
    t = Timers()
    t.set("a", 4.0)
    assert t.due_by("a", 4.0) and not t.due_by("a", 3.9) and not t.due_by("b", 9.0)
    t.set("a", 2.0)
    assert t.due_by("a", 3.0)
    t.cancel("a")
    assert not t.due_by("a", 9.0)


def test_equal_deadlines_fire_in_the_order_they_were_set() -> None:
    t = Timers()
    for key in ("c", "a", "b"):
        t.set(key, 1.0)
    assert t.pop_due(1.0) == ["c", "a", "b"]


ops = st.lists(
    st.tuples(st.sampled_from(["set", "cancel", "pop"]), st.integers(0, 4), st.integers(0, 20)),
    max_size=60,
)


@given(ops)
def test_matches_a_dict_of_deadlines(steps: list[tuple[str, int, int]]) -> None:
    """Against a model: key -> (deadline, order set); pop takes the due ones by (deadline, order)."""
    t = Timers()
    model: dict[int, tuple[float, int]] = {}
    order = 0
    for op, key, when in steps:
        if op == "set":
            order += 1
            t.set(key, float(when))
            model[key] = (float(when), order)
        elif op == "cancel":
            t.cancel(key)
            model.pop(key, None)
        else:
            due = sorted((v, k) for k, v in model.items() if v[0] <= when)
            assert t.pop_due(float(when)) == [k for _, k in due]
            for _, k in due:
                del model[k]
        expected = min((v[0] for v in model.values()), default=None)
        assert t.next_deadline() == expected
        for k in range(5):
            assert (k in t) == (k in model)
            assert t.due_by(k, 10.0) == (k in model and model[k][0] <= 10.0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["set", "cancel", "pop", "ask"]), st.integers(0, 4), st.integers(0, 20))
    )
)
def test_the_cached_next_deadline_is_the_earliest_live_one_whenever_asked(
    steps: list[tuple[str, int, int]],
) -> None:
    """Asked between any operations (or not at all for a while), the cached earliest deadline
    is what a scan of the live keys gives."""
    t = Timers()
    model: dict[int, float] = {}
    for op, key, when in steps:
        if op == "set":
            t.set(key, float(when))
            model[key] = float(when)
        elif op == "cancel":
            t.cancel(key)
            model.pop(key, None)
        elif op == "pop":
            for k in t.pop_due(float(when)):
                del model[k]
        else:
            assert t.next_deadline() == min(model.values(), default=None)
    assert t.next_deadline() == min(model.values(), default=None)
