"""Probing on one engine (memberlist state_test.go: Probe, ProbeNode_Suspect, Awareness, Buddy).

The engine is driven by hand through `engine_helpers.Harness`: peers exist because we fed
their encoded Alive; a peer "answers" only when the test feeds its Ack back.
"""

from __future__ import annotations

import pytest
from engine_helpers import SELF, SELF_ADDR, Harness, ack_pings

from swimnet.membership.events import MemberSuspected
from swimnet.wire import Ack, Alive, Dead, IndirectPing, Nack, Ping, State, Suspect

PEERS = ["a", "b", "c", "d"]


def _harness(**overrides: object) -> Harness:
    h = Harness(seed=7, **overrides)
    h.add_peers(PEERS)
    h.events()
    return h


def _raise_health_score(h: Harness) -> None:
    """A suspicion about ourselves costs one health point (and is refuted)."""
    before = h.engine.health_score
    h.feed([Suspect(h.engine.local_member.incarnation, SELF, "a")], src="a")
    assert h.engine.health_score == before + 1


def test_probe_answered_keeps_member_alive_and_lowers_health_score() -> None:
    h = _harness()
    _raise_health_score(h)
    probe = h.probe_to()
    (ping,) = probe.of(Ping)
    target = h.name_at[probe.addr]
    assert ping == Ping(ping.seq, target, SELF)

    h.feed([Ack(ping.seq)], src=probe.addr)
    assert h.engine.health_score == 0

    start = len(h.sent)
    h.advance(probe.time + 5 * h.config.probe_interval, responder=ack_pings())
    later = h.sent_since(start)
    assert not [ip for s in later for ip in s.of(IndirectPing) if ip.seq == ping.seq]
    assert h.state(target) == State.ALIVE
    assert not [e for e in h.events() if isinstance(e, MemberSuspected)]
    assert h.engine.stats["probes_failed"] == 0


def test_probe_without_ack_goes_indirect_at_probe_timeout_then_suspects_at_deadline() -> None:
    h = _harness()
    probe = h.probe_to()
    (ping,) = probe.of(Ping)
    target, t0 = ping.target, probe.time
    cfg = h.config

    before = h.advance(t0 + cfg.probe_timeout - 1e-6)
    assert not [s for s in before if s.of(IndirectPing)], "no indirect probe before probe_timeout"

    at_timeout = h.advance(t0 + cfg.probe_timeout)
    indirect = [(s.addr, ip) for s in at_timeout for ip in s.of(IndirectPing)]
    assert len(indirect) == cfg.indirect_checks == 3
    helpers = {h.name_at[addr] for addr, _ in indirect}
    assert len(helpers) == 3 and target not in helpers and SELF not in helpers
    for _, ip in indirect:
        assert ip == IndirectPing(ping.seq, target, h.addr_of[target], SELF, True)
    # memberlist's TCP fallback: the same probe also goes over a stream
    fallback = [o for o in h.opened if o.time == t0 + cfg.probe_timeout]
    assert [(o.addr, o.request) for o in fallback] == [(h.addr_of[target], ping)]

    h.advance(t0 + cfg.probe_interval - 1e-6)
    assert h.state(target) == State.ALIVE
    h.advance(t0 + cfg.probe_interval)
    assert h.state(target) == State.SUSPECT
    suspected = [(t, e) for t, e in h.events_log if isinstance(e, MemberSuspected)]
    assert [(t, e.member.name) for t, e in suspected] == [(t0 + cfg.probe_interval, target)]
    assert h.engine.stats["probes_failed"] == 1
    # three helpers, no nack: three missed nacks
    assert h.engine.health_score == 3
    assert Suspect(1, target, SELF) in h.broadcasts()


def test_indirect_ack_counts_as_success() -> None:
    h = _harness()
    _raise_health_score(h)
    probe = h.probe_to()
    (ping,) = probe.of(Ping)
    target = ping.target
    at_timeout = h.advance(probe.time + h.config.probe_timeout)
    helper_addr = next(s.addr for s in at_timeout if s.of(IndirectPing))
    h.feed([Ack(ping.seq)], src=helper_addr)  # the helper relays the target's ack
    assert h.engine.health_score == 0

    h.advance(probe.time + 4 * h.config.probe_interval, responder=ack_pings())
    assert h.state(target) == State.ALIVE
    assert h.engine.stats["probes_failed"] == 0
    assert not [e for e in h.events() if isinstance(e, MemberSuspected)]


def test_stream_fallback_ack_counts_as_success() -> None:
    h = _harness()
    probe = h.probe_to()
    (ping,) = probe.of(Ping)
    h.advance(probe.time + h.config.probe_timeout)
    (opened,) = [o for o in h.opened if o.request == ping]
    h.stream_reply(Ack(ping.seq), opened.addr)
    h.advance(probe.time + 3 * h.config.probe_interval, responder=ack_pings())
    assert h.state(ping.target) == State.ALIVE
    assert h.engine.stats["probes_failed"] == 0


def test_stream_fallback_can_be_disabled() -> None:
    h = _harness(tcp_fallback_probe=False)
    probe = h.probe_to()
    h.advance(probe.time + h.config.probe_interval)
    assert not [o for o in h.opened if type(o.request) is Ping]
    assert h.state(probe.of(Ping)[0].target) == State.SUSPECT


def test_helper_relays_ack_to_the_origin() -> None:
    h = _harness()
    origin, target_addr = h.addr_of["a"], h.addr_of["b"]
    out = h.feed([IndirectPing(77, "b", target_addr, "a", True)], src=origin)
    (relay,) = [s for s in out if s.addr == target_addr]
    (ping,) = relay.of(Ping)
    assert ping.target == "b" and ping.source == SELF

    out = h.feed([Ack(ping.seq)], src=target_addr)
    acks = [(s.addr, m) for s in out for m in s.of(Ack)]
    assert acks == [(origin, Ack(77))]
    later = h.advance(h.now + 2 * h.config.probe_timeout)
    assert not [s for s in later if s.addr == origin and s.of(Nack)]


@pytest.mark.parametrize("want_nack", [True, False])
def test_helper_answers_nack_when_its_own_probe_times_out(want_nack: bool) -> None:
    h = _harness()
    origin = h.addr_of["a"]
    t0 = h.now
    h.feed([IndirectPing(77, "ghost", ("10.7.7.7", 7946), "a", want_nack)], src=origin)
    early = h.advance(t0 + h.config.probe_timeout - 1e-6)
    assert not [s for s in early if s.of(Nack)]
    at_timeout = h.advance(t0 + h.config.probe_timeout)
    nacks = [(s.addr, m) for s in at_timeout for m in s.of(Nack)]
    assert nacks == ([(origin, Nack(77))] if want_nack else [])
    # the helper does not judge the target: nothing about "ghost" is learned
    assert h.state("ghost") is None


@pytest.mark.parametrize("nacks", [0, 1, 2, 3])
def test_missed_nacks_raise_the_health_score(nacks: int) -> None:
    h = _harness(tcp_fallback_probe=False)
    probe = h.probe_to()
    (ping,) = probe.of(Ping)
    at_timeout = h.advance(probe.time + h.config.probe_timeout)
    helper_addrs = [s.addr for s in at_timeout if s.of(IndirectPing)]
    assert len(helper_addrs) == 3
    for addr in helper_addrs[:nacks]:
        h.feed([Nack(ping.seq)], src=addr)
    h.advance(probe.time + h.config.probe_interval)
    assert h.state(ping.target) == State.SUSPECT
    assert h.engine.health_score == 3 - nacks


def test_failed_probe_without_helpers_costs_one_point() -> None:
    h = Harness(seed=3, tcp_fallback_probe=False)
    h.add_peer("a")
    probe = h.probe_to("a")
    out = h.advance(probe.time + h.config.probe_interval)
    assert not [s for s in out if s.of(IndirectPing)]
    assert h.state("a") == State.SUSPECT
    assert h.engine.health_score == 1


def test_health_score_is_clamped_and_stretches_the_probe_interval() -> None:
    h = _harness(tcp_fallback_probe=False)
    for _ in range(12):
        h.feed([Suspect(h.engine.local_member.incarnation, SELF, "a")], src="a")
    assert h.engine.health_score == h.config.awareness_max_multiplier - 1 == 7
    first = h.probe_to(responder=ack_pings())
    second = h.probe_to(responder=ack_pings())
    # the tick after `first` was armed while the score was 7: eight intervals later
    assert second.time - first.time == pytest.approx(8 * h.config.probe_interval)


def test_probing_a_suspect_sends_ping_and_suspect_together() -> None:
    """Lifeguard's buddy system: the suspect learns it is suspected from the probe itself."""
    h = Harness(seed=11)
    h.add_peer("a")
    h.feed([Suspect(1, "a", "z")], src="a")
    assert h.state("a") == State.SUSPECT
    probe = h.probe_to("a")
    ping, buddy = probe.messages[:2]
    assert type(ping) is Ping and ping.target == "a"
    assert buddy == Suspect(1, "a", SELF)


def test_probing_an_alive_member_sends_no_suspect() -> None:
    h = _harness()
    probe = h.probe_to()
    assert not probe.of(Suspect)


def test_suspect_piggybacked_on_a_ping_is_refuted() -> None:
    h = _harness()
    out = h.feed([Ping(5, SELF, "a"), Suspect(1, SELF, "a")], src="a")
    assert next(m for s in out for m in s.of(Ack) if s.addr == h.addr_of["a"]).seq == 5
    assert h.engine.local_member.incarnation == 2
    assert h.engine.health_score == 1
    assert h.engine.stats["refutations"] == 1
    assert h.state(SELF) == State.ALIVE
    assert h.events() == []
    assert Alive(2, SELF, SELF_ADDR, b"") in h.broadcasts()


def test_refutation_jumps_past_the_accused_incarnation() -> None:
    h = _harness()
    h.feed([Suspect(1, SELF, "a")], src="a")
    assert h.engine.local_member.incarnation == 2
    h.feed([Suspect(9, SELF, "b")], src="b")
    assert h.engine.local_member.incarnation == 10


def test_stale_accusation_after_a_lost_refutation_is_answered_again() -> None:
    h = _harness(tcp_fallback_probe=False)
    h.feed([Suspect(1, SELF, "a")], src="a")
    assert h.engine.local_member.incarnation == 2
    h.drain_broadcasts()  # every copy of the refutation went out ... and was lost
    # "a" still suspects us at incarnation 1 and probes us with the buddy suspect
    out = h.feed([Ping(9, SELF, "a"), Suspect(1, SELF, "a")], src="a")
    told = [m for s in out for m in s.of(Alive) if m.node == SELF]
    told += [m for m in h.broadcasts() if type(m) is Alive and m.node == SELF]
    assert told and told[0].incarnation == 2


def test_helpers_are_alive_members_other_than_the_target() -> None:
    h = Harness(seed=19, tcp_fallback_probe=False)
    h.add_peers(["a", "b", "c", "s", "d", "l"])
    h.feed([Suspect(1, "s", "x"), Dead(1, "d", "x"), Dead(1, "l", "l")])
    probe = h.probe_to(responder=ack_pings(["b", "c", "s"]), limit=30.0)
    while probe.of(Ping)[0].target != "a":  # everyone but "a" answers
        probe = h.probe_to(responder=ack_pings(["b", "c", "s"]), limit=30.0)
    (ping,) = probe.of(Ping)
    out = h.advance(probe.time + h.config.probe_timeout)
    helpers = {h.name_at[s.addr] for s in out if [ip for ip in s.of(IndirectPing) if ip.seq == ping.seq]}
    assert helpers == {"b", "c"}
    for addr in (h.addr_of["b"], h.addr_of["c"]):
        h.feed([Nack(ping.seq)], src=addr)
    score = h.engine.health_score
    h.advance(probe.time + h.awareness_interval())
    assert h.engine.health_score == score, "two helpers, two nacks: no missed nack"


def test_probes_go_round_robin() -> None:
    """SWIM's bounded detection: every member is probed once per round."""
    h = Harness(seed=23)
    peers = [f"p{i}" for i in range(5)]
    h.add_peers(peers)
    targets = []
    while len(targets) < 15:
        probe = h.probe_to(responder=ack_pings())
        targets.append(probe.of(Ping)[0].target)
    rounds = [targets[i : i + 5] for i in range(0, 15, 5)]
    for r in rounds:
        assert sorted(r) == peers, rounds
    assert len({tuple(r) for r in rounds}) > 1, "the order is reshuffled between rounds"
