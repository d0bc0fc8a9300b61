"""Catch-up push-pulls after a join (see swimnet.membership.swim's rules).

Rules under test: after a join into a running cluster, once a quiet period (CATCH_UP_QUIET
probe intervals times a factor drawn per join in [1, 1 + CATCH_UP_JITTER)) passes after
the last new member learned, the node pulls from one of the CATCH_UP_SPREAD live members
it learned of last, drawn at random; news keeps putting it off; a second catch-up follows
(a quiet period after the last news) only if a new member came within a quiet period of
the first; never more than CATCH_UP_MAX so; then, if members keep turning up (within
BACKSTOP_QUIET probe intervals of the last one's end), backstop catch-ups, each once
BACKSTOP_QUIET probe intervals passed after the last news, while they bring news, at most
BACKSTOP_MAX; a failed one is replaced by one random push-pull; a cluster that forms at
once (the join answer lists its sender alone) and a node that never joined make none.
"""

from __future__ import annotations

from engine_helpers import Harness, Opened, ack_pings

from swimnet.membership.swim import (
    BACKSTOP_MAX,
    BACKSTOP_QUIET,
    CATCH_UP_GAP_MULT,
    CATCH_UP_JITTER,
    CATCH_UP_MAX,
    CATCH_UP_QUIET,
    CATCH_UP_SPREAD,
    PUSH_PULL_JITTER,
)
from swimnet.wire import Address, Alive, MemberState, PushPull, State

SEED_ADDR: Address = ("10.0.1.2", 7946)
X_ADDR: Address = ("10.0.1.3", 7946)
Y_ADDR: Address = ("10.0.1.4", 7946)
LATE1_ADDR: Address = ("10.0.1.5", 7946)
LATE2_ADDR: Address = ("10.0.1.6", 7946)
LATER_ADDR: Address = ("10.0.1.7", 7946)
NEWEST_ADDR: Address = ("10.0.1.8", 7946)
NEWS_AT = 4.0
"""When the late joiners' alives arrive: after every post-join sync (the last is due by 3.6 s)
and within the first quiet period (PROBE_INTERVAL times CATCH_UP_QUIET at least)."""
PROBE_INTERVAL = 5.0


def _ms(name: str, addr: Address) -> MemberState:
    return MemberState(name, addr, b"", 1, State.ALIVE)


def _later(i: int) -> Alive:
    """A member that joins after us (it answers our probes)."""
    return Alive(1, f"later{i}", (f"10.0.3.{i}", 7946))


def _harness(seed: int = 4, push_pull_interval: float = 1e6) -> Harness:
    # push_pull_interval 1e6: out of the way
    h = Harness(seed=seed, push_pull_interval=push_pull_interval, probe_interval=PROBE_INTERVAL)
    for name, addr in [
        ("seed", SEED_ADDR), ("x", X_ADDR), ("y", Y_ADDR), ("late1", LATE1_ADDR), ("late2", LATE2_ADDR),
        ("later", LATER_ADDR), ("newest", NEWEST_ADDR),
        *((_later(i).node, _later(i).addr) for i in range(10)),
    ]:  # fmt: skip
        h.addr_of[name], h.name_at[addr] = addr, name
    return h


def _join(h: Harness, running: bool = True) -> None:
    """Join through the seed (its answer lists x and y too if `running`), answer the post-join
    syncs with what the seed listed, then hear of late1 and late2 by gossip at NEWS_AT."""
    h.engine.join([SEED_ADDR], h.now)
    h.collect()
    known = [("seed", SEED_ADDR), ("x", X_ADDR), ("y", Y_ADDR)] if running else [("seed", SEED_ADDR)]
    listed = PushPull(False, tuple(_ms(n, a) for n, a in known))
    h.stream_reply(listed, SEED_ADDR)
    while (due := h.engine.next_deadline()) is not None and due < NEWS_AT:
        h.step(ack_pings())
        for o in _pulls(h):
            if o.id not in h._answered:
                h.stream_reply(listed, o)
    h.advance(NEWS_AT, responder=ack_pings())
    h.feed([Alive(1, "late1", LATE1_ADDR), Alive(1, "late2", LATE2_ADDR)], src=X_ADDR)


def _pulls(h: Harness, after: float = 0.0) -> list[Opened]:
    """The non-join push-pulls opened after `after`."""
    return [o for o in h.opened if type(o.request) is PushPull and not o.request.join and o.time > after]


LEARNED_LAST = {LATE2_ADDR, LATE1_ADDR, Y_ADDR, X_ADDR}
"""The CATCH_UP_SPREAD live members `_join` makes us learn last, newest first (the seed first)."""


def _first_catch_up(h: Harness) -> Opened:
    quiet = CATCH_UP_QUIET * h.config.probe_interval
    assert quiet > NEWS_AT, "precondition: the news comes within the first quiet period"
    h.advance(NEWS_AT + quiet - 0.01, responder=ack_pings())
    assert _pulls(h, NEWS_AT) == [], "not before a whole quiet period after the last news"
    h.advance(NEWS_AT + (1 + CATCH_UP_JITTER) * quiet + 0.01, responder=ack_pings())
    (catch_up,) = _pulls(h, NEWS_AT)
    return catch_up


def test_news_puts_the_catch_up_off_until_a_quiet_period_after_the_last_of_it() -> None:
    h = _harness()
    _join(h)
    quiet = CATCH_UP_QUIET * h.config.probe_interval
    last_news = NEWS_AT
    for i in range(6):  # a long burst: a later joiner every half quiet period
        last_news = NEWS_AT + (i + 1) * quiet / 2
        h.advance(last_news, responder=ack_pings())
        h.feed([Alive(1, f"more{i}", (f"10.0.2.{i}", 7946))], src=X_ADDR)
    assert _pulls(h, NEWS_AT) == [], "no catch-up while members keep turning up"
    h.advance(last_news + quiet - 0.01, responder=ack_pings())
    assert _pulls(h, NEWS_AT) == []
    h.advance(last_news + (1 + CATCH_UP_JITTER) * quiet + 0.01, responder=ack_pings())
    assert len(_pulls(h, NEWS_AT)) == 1, "one within a (jittered) quiet period of the last news"
    assert h.engine.stats["catch_up_push_pulls"] == 1


def test_in_a_slow_burst_a_silence_shorter_than_its_longest_gaps_is_only_a_gap() -> None:
    quiet = CATCH_UP_QUIET * PROBE_INTERVAL
    gap = 0.98 * quiet  # each gap shorter than any quiet period drawn, their multiple longer
    # than nearly all of them: of 8 joins, some draw one shorter than twice a gap
    assert CATCH_UP_GAP_MULT * gap > quiet * (1 + CATCH_UP_JITTER) * 0.9
    for seed in range(8):
        h = _harness(seed)
        _join(h)
        last_news = NEWS_AT
        for i in range(4):
            last_news += gap
            h.advance(last_news, responder=ack_pings())
            h.feed([_later(i)], src=X_ADDR)
        assert _pulls(h, NEWS_AT) == [], f"seed {seed}: no catch-up in a gap"
        silence = CATCH_UP_GAP_MULT * gap
        h.advance(last_news + silence - 0.01, responder=ack_pings())
        assert _pulls(h, NEWS_AT) == [], f"seed {seed}: not before twice the longest gap"
        h.advance(last_news + max(silence, (1 + CATCH_UP_JITTER) * quiet) + 0.01, responder=ack_pings())
        assert len(_pulls(h, NEWS_AT)) == 1, f"seed {seed}: then one"


def test_a_quiet_period_after_a_join_brings_one_catch_up_with_a_member_learned_last() -> None:
    assert len(LEARNED_LAST) == CATCH_UP_SPREAD
    targets = set()
    for seed in range(12):
        h = _harness(seed)
        _join(h)
        targets.add(_first_catch_up(h).addr)
    assert targets <= LEARNED_LAST, "never a member learned before the last CATCH_UP_SPREAD (the seed)"
    assert len(targets) > 1, "spread over them: a burst's joiners do not all pull from one node"
    h = _harness()
    _join(h)
    catch_up = _first_catch_up(h)
    # it lists nothing we lack: we are done, whatever the time
    h.stream_reply(PushPull(False, (_ms("late2", LATE2_ADDR), _ms("x", X_ADDR))), catch_up)
    h.advance(h.now + 20 * CATCH_UP_QUIET * h.config.probe_interval, responder=ack_pings())
    assert _pulls(h, NEWS_AT) == [catch_up]
    assert h.engine.stats["catch_up_push_pulls"] == 1


def test_catch_ups_that_bring_news_go_on_a_backstop_period_apart_and_stop_at_the_bound() -> None:
    h = _harness()
    _join(h)
    quiet = CATCH_UP_QUIET * h.config.probe_interval
    backstop = BACKSTOP_QUIET * h.config.probe_interval
    first = _first_catch_up(h)
    h.stream_reply(PushPull(False, (_ms("late2", LATE2_ADDR), _ms("later", LATER_ADDR))), first)
    assert h.state("later") == State.ALIVE, "late2 vouched for it"
    h.advance(h.now + (1 + CATCH_UP_JITTER) * quiet + 0.01, responder=ack_pings())
    second = _pulls(h, first.time)
    assert len(second) == 1 and second[0].addr in {LATER_ADDR, LATE2_ADDR, LATE1_ADDR, Y_ADDR}, (
        "a second one, with a member learned last"
    )
    h.stream_reply(PushPull(False, (_ms("later", LATER_ADDR), _ms("newest", NEWEST_ADDR))), second[0])
    assert h.state("newest") == State.ALIVE
    # the fast ones are spent and every catch-up brings news: a burst that goes on
    for i in range(1, 4):
        last = _pulls(h, NEWS_AT)[-1]
        h.stream_reply(PushPull(False, (_ms("later", LATER_ADDR), _ms(f"later{i}", _later(i).addr))), last)
        news_at = h.now
        h.advance(news_at + backstop - 0.01, responder=ack_pings())
        assert _pulls(h, last.time) == [], "no sooner than a backstop period after the last news"
        h.advance(news_at + backstop + 0.01, responder=ack_pings())
        if i <= BACKSTOP_MAX:
            assert len(_pulls(h, last.time)) == 1, f"backstop {i}"
    assert len(_pulls(h, NEWS_AT)) == CATCH_UP_MAX + BACKSTOP_MAX == 4, "never more per join"
    h.feed([_later(9)], src=X_ADDR)
    h.advance(h.now + 20 * backstop, responder=ack_pings())
    assert h.engine.stats["catch_up_push_pulls"] == CATCH_UP_MAX + BACKSTOP_MAX


def _answer_nothing_new(h: Harness, catch_up: Opened) -> None:
    h.stream_reply(PushPull(False, (_ms("late2", LATE2_ADDR),)), catch_up)


def _first_catch_up_finding_nothing(h: Harness) -> Opened:
    """Join, let the first catch-up come, answer it with nothing we lack."""
    _join(h)
    first = _first_catch_up(h)
    _answer_nothing_new(h, first)
    return first


def test_members_turning_up_after_a_catch_up_found_nothing_bring_a_backstop_one() -> None:
    """A slow burst: a catch-up in a gap found nothing new, then the joins went on."""
    h = _harness()
    backstop = BACKSTOP_QUIET * h.config.probe_interval
    first = _first_catch_up_finding_nothing(h)
    last_news = h.now + backstop / 2  # within a backstop period of the fast ones' end
    h.advance(last_news, responder=ack_pings())
    h.feed([_later(1)], src=X_ADDR)
    h.advance(last_news + backstop - 0.01, responder=ack_pings())
    assert _pulls(h, first.time) == [], "not before a backstop period after the last news"
    h.advance(last_news + backstop + 0.01, responder=ack_pings())
    (backstop_one,) = _pulls(h, first.time)
    _answer_nothing_new(h, backstop_one)
    h.advance(backstop_one.time + 1.5 * backstop, responder=ack_pings())
    h.feed([_later(2)], src=X_ADDR)  # after a backstop period without news
    h.advance(h.now + 20 * backstop, responder=ack_pings())
    assert _pulls(h, first.time) == [backstop_one], "one without news within a backstop period ends them"


def test_no_backstop_catch_up_once_a_backstop_period_passed_without_news() -> None:
    h = _harness()
    backstop = BACKSTOP_QUIET * h.config.probe_interval
    first = _first_catch_up_finding_nothing(h)
    fast_end = h.now + (1 + CATCH_UP_JITTER) * CATCH_UP_QUIET * h.config.probe_interval
    h.advance(fast_end + backstop + 0.01, responder=ack_pings())
    h.feed([_later(1)], src=X_ADDR)  # a join long after ours: its own joiner catches up
    h.advance(h.now + 20 * backstop, responder=ack_pings())
    assert _pulls(h, NEWS_AT) == [first]
    assert h.engine.stats["catch_up_push_pulls"] == 1


def test_a_catch_up_stands_for_the_periodic_push_pull() -> None:
    interval = 100.0  # at 8 members, push_pull_scale leaves it as it is
    earliest, latest = interval * (1 - PUSH_PULL_JITTER), interval * (1 + PUSH_PULL_JITTER)
    for seed in range(8):  # the periodic one was first due at random in 0-100 s
        h = _harness(seed, push_pull_interval=interval)
        _join(h)
        quiet = CATCH_UP_QUIET * h.config.probe_interval
        h.advance(NEWS_AT + (1 + CATCH_UP_JITTER) * quiet + 0.01, responder=ack_pings())
        catch_up = _pulls(h, NEWS_AT)[-1]
        h.stream_reply(PushPull(False, (_ms("late2", LATE2_ADDR),)), catch_up)
        h.advance(catch_up.time + earliest - 0.01, responder=ack_pings())
        assert _pulls(h, catch_up.time) == [], f"seed {seed}: no periodic push-pull this soon after it"
        h.advance(catch_up.time + latest + 0.01, responder=ack_pings())
        periodic = _pulls(h, catch_up.time)
        assert periodic, f"seed {seed}: the periodic one, a jittered interval on"
        assert earliest <= periodic[0].time - catch_up.time <= latest, f"seed {seed}"


def test_a_failed_catch_up_is_replaced_by_one_random_push_pull() -> None:
    h = _harness()
    _join(h)
    catch_up = _first_catch_up(h)
    h.stream_failed(catch_up)
    (retry,) = _pulls(h, catch_up.time - 1e-9)[1:]
    assert retry.addr != catch_up.addr, "another member instead"
    h.stream_failed(retry)
    assert len(_pulls(h, NEWS_AT)) == 2, "one replacement, no chain of them"


def test_no_catch_up_in_a_cluster_that_forms_at_once() -> None:
    h = _harness()
    _join(h, running=False)
    h.advance(NEWS_AT + 20 * CATCH_UP_QUIET * h.config.probe_interval, responder=ack_pings())
    assert _pulls(h, NEWS_AT) == []
    assert h.engine.stats["catch_up_push_pulls"] == 0


def test_no_catch_up_without_a_join() -> None:
    h = _harness()
    h.feed([Alive(1, "seed", SEED_ADDR), Alive(1, "x", X_ADDR)], src=SEED_ADDR)
    h.advance(20 * CATCH_UP_QUIET * h.config.probe_interval, responder=ack_pings())
    assert _pulls(h) == []
