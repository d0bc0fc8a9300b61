"""Hostile membership input on one engine (issue 16): forged incarnations, the wire's bound,
forged members pushed at us, and a member that finds itself unheard.

Peers are hostile: every test feeds what an attacker can send in plaintext, and checks that
the engine refuses and counts it, and that everything it sends still decodes.
"""

from __future__ import annotations

import pytest
from engine_helpers import SELF, SELF_ADDR, Harness, ack_pings

from swimnet.config import Config
from swimnet.engine import Engine
from swimnet.errors import LocalProtocolError
from swimnet.membership.admission import MAX_NEW_PER_EXCHANGE, VERIFY_AT_ONCE
from swimnet.membership.incarnation import PEER_WINDOW, SELF_WINDOW
from swimnet.wire import Alive, Dead, MemberState, Ping, PushPull, State, Suspect, encode_packet
from swimnet.wire.limits import MAX_INCARNATION

TOP = 2**32 - 1
SEED = ("10.0.1.200", 7946)


def _decodes_everything(h: Harness) -> None:
    """Every datagram and stream the engine produced decoded (the harness decodes them all);
    and no incarnation it announced is past the wire's bound."""
    for s in h.sent:
        for m in s.messages:
            if type(m) in (Alive, Suspect, Dead):
                assert m.incarnation <= MAX_INCARNATION  # type: ignore[attr-defined]


def _own_alives(h: Harness) -> list[Alive]:
    return [m for s in h.sent for m in s.of(Alive) if m.node == SELF]


# -- incarnations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claim", [Suspect(TOP, SELF, "x"), Dead(TOP, SELF, "x"), Alive(TOP, SELF, SELF_ADDR)]
)
def test_a_claim_about_us_at_the_wire_bound_is_refused_not_refuted(claim: Suspect | Dead | Alive) -> None:
    h = Harness()
    h.add_peer("a")
    h.feed([claim])
    assert h.engine.local_member.incarnation == 1
    assert h.engine.stats["drop_implausible_self_claim"] == 1
    assert h.engine.stats["refutations"] == 0
    assert h.state(SELF) == State.ALIVE
    h.broadcasts()
    _decodes_everything(h)


def test_a_claim_about_us_within_the_window_is_refuted_as_before() -> None:
    h = Harness()
    h.feed([Suspect(1 + SELF_WINDOW, SELF, "x")])
    assert h.engine.local_member.incarnation == 2 + SELF_WINDOW
    assert h.engine.stats["refutations"] == 1
    assert h.engine.stats["drop_implausible_self_claim"] == 0


@pytest.mark.parametrize("kind", [Suspect, Dead])
def test_an_implausible_claim_about_a_known_member_stops_here(kind: type[Suspect] | type[Dead]) -> None:
    h = Harness()
    h.add_peer("a", incarnation=5)
    h.drain_broadcasts()
    h.feed([kind(TOP, "a", "x")])
    assert h.state("a") == State.ALIVE
    assert h.member("a").incarnation == 5  # type: ignore[union-attr]
    assert h.engine.stats["drop_implausible_incarnation"] == 1
    assert h.broadcasts() == []  # not relayed either
    h.feed([kind(5 + PEER_WINDOW, "a", "x")])  # the edge of the window is still news
    assert h.state("a") != State.ALIVE


def test_an_implausible_alive_about_a_known_member_is_refused() -> None:
    h = Harness()
    addr = h.add_peer("a", incarnation=5)
    h.drain_broadcasts()
    h.feed([Alive(TOP, "a", addr, b"forged")])
    assert h.member("a").incarnation == 5 and h.member("a").meta == b""  # type: ignore[union-attr]
    assert h.engine.stats["drop_implausible_incarnation"] == 1


def test_a_member_at_the_end_of_its_numbers_starts_a_new_life_and_rejoins() -> None:
    h = Harness(incarnation=TOP)
    h.engine.join([SEED], h.now)
    h.collect()
    joins = len(h.opened)
    h.add_peer("a")
    h.feed([Suspect(TOP, SELF, "a")])  # plausible, but cannot be refuted within 32 bits
    assert h.engine.local_member.incarnation == 1
    assert h.engine.stats["incarnation_exhausted"] == 1
    assert h.engine.stats["isolation_rejoins"] == 1
    rejoins = [o for o in h.opened[joins:] if type(o.request) is PushPull and o.request.join]
    assert SEED in {o.addr for o in rejoins}
    h.advance(h.now + 5.0, responder=ack_pings())
    _decodes_everything(h)
    assert all(a.incarnation <= MAX_INCARNATION for a in _own_alives(h))


def test_the_encoder_refuses_incarnations_peers_could_not_decode() -> None:
    with pytest.raises(LocalProtocolError):
        encode_packet([Alive(2**32, "a", SELF_ADDR)])
    with pytest.raises(LocalProtocolError):
        encode_packet([Suspect(2**32, "a", "b")])
    with pytest.raises(LocalProtocolError):
        Engine(
            Config.lan(name="x", bind="10.0.0.9:7946"),
            rng=__import__("random").Random(0),
            now=0.0,
            incarnation=2**32,
        )


def test_metadata_changes_stop_at_the_wire_bound() -> None:
    h = Harness(incarnation=TOP)
    with pytest.raises(LocalProtocolError):
        h.engine.set_meta(b"new", h.now)
    assert h.engine.local_member.incarnation == TOP and h.engine.local_member.meta == b""


# -- members pushed at us ---------------------------------------------------------------------


def _ghosts(count: int, prefix: str = "ghost") -> tuple[MemberState, ...]:
    return tuple(
        MemberState(
            f"{prefix}{i}", (f"10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256}", 7946), b"", 1, State.ALIVE
        )
        for i in range(count)
    )


def test_one_push_pull_introduces_a_bounded_number_of_members() -> None:
    h = Harness()
    h.add_peers(["a", "b"])
    h.push_pull(PushPull(False, _ghosts(5000)))
    ghosts = [m for m in h.engine.members() if m.name.startswith("ghost")]
    assert len(ghosts) == MAX_NEW_PER_EXCHANGE
    assert h.engine.stats["drop_push_pull_new_member"] == 5000 - MAX_NEW_PER_EXCHANGE


def test_beyond_the_bound_the_members_introduced_are_drawn_at_random() -> None:
    """Joiners pulling one long list admit different members (so they can vouch for them to
    one another), not the same first MAX_NEW_PER_EXCHANGE of the sender's order."""
    pushed = _ghosts(2 * MAX_NEW_PER_EXCHANGE)

    def admitted(seed: int) -> set[str]:
        h = Harness(seed=seed)
        h.add_peers(["a", "b"])
        h.push_pull(PushPull(False, pushed))
        assert h.engine.stats["drop_push_pull_new_member"] == MAX_NEW_PER_EXCHANGE
        return {m.name for m in h.engine.members() if m.name.startswith("ghost")}

    first, second = admitted(1), admitted(2)
    assert len(first) == len(second) == MAX_NEW_PER_EXCHANGE
    assert first != second
    assert first != {f"ghost{i}" for i in range(MAX_NEW_PER_EXCHANGE)}
    assert admitted(1) == first  # a seed's choice, like every other


def test_members_pushed_at_us_are_not_vouched_for_nor_probed_in_the_regular_round() -> None:
    h = Harness()
    h.add_peers(["a", "b", "c"])
    reply = h.push_pull(PushPull(False, _ghosts(500)))
    assert not any(s.name.startswith("ghost") for s in reply.members)  # we never spread them
    # a few probe ticks: a, b and c are probed every round; a ghost at most once per tick,
    # besides the first new member of the exchange (probed at once)
    start = len(h.sent)
    h.advance(h.now + 9 * h.config.probe_interval, responder=ack_pings())
    pings = [p for s in h.sent[start:] for p in s.of(Ping) if p.source == SELF]
    real = [p for p in pings if not p.target.startswith("ghost")]
    fake = [p for p in pings if p.target.startswith("ghost")]
    assert {p.target for p in real} == {"a", "b", "c"} and len(real) >= 8
    assert len(fake) <= 10 + VERIFY_AT_ONCE
    assert h.engine.health_score == 0  # failed verification probes say nothing about us


def test_a_member_heard_from_directly_is_verified() -> None:
    h = Harness()
    h.add_peer("a")
    h.push_pull(PushPull(False, _ghosts(1, "real")))
    addr = ("10.100.0.0", 7946)
    h.name_at[addr], h.addr_of["real0"] = "real0", addr
    reply = h.push_pull(PushPull(False, ()))
    assert "real0" not in {s.name for s in reply.members}
    h.feed([Ping(77, SELF, "real0")], src=addr)  # it probes us: we heard from it
    reply = h.push_pull(PushPull(False, ()))
    assert "real0" in {s.name for s in reply.members}


def test_unverified_members_beyond_the_cap_are_dropped_oldest_first() -> None:
    from swimnet.membership.admission import MAX_UNVERIFIED

    h = Harness()
    h.add_peer("a")
    exchanges = MAX_UNVERIFIED // MAX_NEW_PER_EXCHANGE + 1
    for i in range(exchanges):
        h.push_pull(PushPull(False, _ghosts(MAX_NEW_PER_EXCHANGE, f"g{i}-")))
    names = {m.name for m in h.engine.members()}
    assert sum(1 for n in names if n.startswith("g")) == MAX_UNVERIFIED
    assert not any(n.startswith("g0-") for n in names)  # the oldest went first
    assert all(f"g{exchanges - 1}-{j}" in names for j in range(MAX_NEW_PER_EXCHANGE))
    assert h.engine.stats["unverified_evicted"] == MAX_NEW_PER_EXCHANGE
    assert "a" in names


# -- isolation ---------------------------------------------------------------------------------


def test_a_member_whose_probes_all_fail_rejoins_through_its_seeds() -> None:
    h = Harness(push_pull_interval=1000.0, rejoin_interval=1000.0)
    h.engine.join([SEED], h.now)
    h.collect()
    for name in ("a", "b", "c", "d"):
        h.add_peer(name)
    before = len(h.opened)
    h.advance(h.now + 60 * h.config.probe_interval)  # nobody answers anything (health slows it)
    assert h.engine.stats["isolation_rejoins"] == 1
    rejoins = [o for o in h.opened[before:] if type(o.request) is PushPull and o.request.join]
    assert SEED in {o.addr for o in rejoins}


def test_probes_that_mostly_succeed_do_not_count_as_isolation() -> None:
    h = Harness(push_pull_interval=1000.0, rejoin_interval=1000.0)
    h.engine.join([SEED], h.now)
    h.collect()
    h.add_peers(["a", "b", "c", "d"])
    h.advance(h.now + 30 * h.config.probe_interval, responder=ack_pings(["a", "b", "c"]))
    assert h.engine.stats["isolation_rejoins"] == 0
