"""The suspicion timeout fires at the right virtual time (memberlist's Suspect_Dogpile table).

Lifeguard: the timeout starts at max = suspicion_max_timeout_mult * min and falls towards
min = suspicion_mult * max(1, log10 n) * probe_interval as independent accusers confirm;
with fewer than k + 2 members (k = suspicion_mult - 2) no confirmation is expected and the
timeout is min. Every probe is answered here (acks do not clear a suspicion), so only the
accusations the test feeds count.
"""

from __future__ import annotations

import pytest
from engine_helpers import Harness, ack_pings

from swimnet.membership.events import MemberFailed
from swimnet.wire import State, Suspect


def _failure_time(h: Harness, name: str) -> float:
    times = [t for t, e in h.events_log if isinstance(e, MemberFailed) and e.member.name == name]
    assert len(times) == 1, times
    return times[0]


def _cluster(peers: int, **overrides: object) -> Harness:
    h = Harness(seed=21, **overrides)
    h.add_peers([f"peer{i}" for i in range(peers - 1)])
    h.add_peer("bad")
    return h


@pytest.mark.parametrize(
    ("peers", "confirmations", "expected"),
    [
        (1, 0, 0.500),  # n=2, k=3: max timeout disabled
        (2, 0, 0.500),
        (3, 0, 0.500),
        (4, 0, 1.000),  # n=5: the max timeout takes effect
        (5, 0, 1.000),
        (5, 1, 0.750),  # confirmations lower the timeout ...
        (5, 2, 0.603),  # 1.0 - 0.5 * log(3) / log(4), floored to the millisecond
        (5, 3, 0.500),  # ... down to the minimum
        (5, 4, 0.500),
    ],
)
def test_dogpile_table(peers: int, confirmations: int, expected: float) -> None:
    h = _cluster(
        peers, probe_interval=0.1, probe_timeout=0.05, suspicion_mult=5, suspicion_max_timeout_mult=2
    )
    h.advance(0.37, responder=ack_pings())
    t0 = h.now
    h.feed([Suspect(1, "bad", "accuser")])
    for j in range(confirmations):
        h.feed([Suspect(1, "bad", f"confirmer{j}")])
    h.advance(t0 + expected - 1e-4, responder=ack_pings())
    assert h.state("bad") == State.SUSPECT
    h.advance(t0 + expected + 1e-4, responder=ack_pings())
    assert h.state("bad") == State.DEAD
    assert _failure_time(h, "bad") == pytest.approx(t0 + expected, abs=1e-9)


def test_lan_defaults_max_without_confirmations() -> None:
    h = _cluster(5)  # n = 6: min = 4 * 1 s, max = 6 * min
    t0 = h.now
    h.feed([Suspect(1, "bad", "accuser")])
    h.advance(t0 + 23.9, responder=ack_pings())
    assert h.state("bad") == State.SUSPECT
    h.advance(t0 + 24.1, responder=ack_pings())
    assert _failure_time(h, "bad") == pytest.approx(t0 + 24.0)


def test_lan_defaults_min_with_enough_confirmations() -> None:
    h = _cluster(5)  # k = 2
    t0 = h.now
    h.feed([Suspect(1, "bad", "accuser"), Suspect(1, "bad", "c1"), Suspect(1, "bad", "c2")])
    h.advance(t0 + 3.9, responder=ack_pings())
    assert h.state("bad") == State.SUSPECT
    h.advance(t0 + 4.1, responder=ack_pings())
    assert _failure_time(h, "bad") == pytest.approx(t0 + 4.0)


def test_late_confirmations_shorten_a_running_timer() -> None:
    h = _cluster(5)
    t0 = h.now
    h.feed([Suspect(1, "bad", "accuser")])
    h.advance(t0 + 10.0, responder=ack_pings())
    h.feed([Suspect(1, "bad", "c1")])  # deadline moves to t0 + 24 - 20 * log(2)/log(3)
    h.advance(t0 + 11.3, responder=ack_pings())
    assert h.state("bad") == State.SUSPECT
    h.advance(t0 + 11.5, responder=ack_pings())
    assert _failure_time(h, "bad") == pytest.approx(t0 + 11.381)


def test_confirmation_past_the_new_deadline_fires_at_once() -> None:
    h = _cluster(5)
    t0 = h.now
    h.feed([Suspect(1, "bad", "accuser")])
    h.advance(t0 + 10.5, responder=ack_pings())
    h.feed([Suspect(1, "bad", "c1"), Suspect(1, "bad", "c2")])  # min timeout (4 s) already over
    assert h.engine.next_deadline() is not None and h.engine.next_deadline() <= h.now  # type: ignore[operator]
    h.step(responder=ack_pings())
    assert _failure_time(h, "bad") == pytest.approx(t0 + 10.5)


def test_the_same_accuser_does_not_shorten_the_timer() -> None:
    h = _cluster(5)
    t0 = h.now
    for _ in range(3):
        h.feed([Suspect(1, "bad", "accuser")])
    h.advance(t0 + 30.0, responder=ack_pings())
    assert _failure_time(h, "bad") == pytest.approx(t0 + 24.0)
