"""Hostile membership input against a whole simulated cluster (issue 16).

Each test plays an attacker who can send plaintext datagrams and open streams to any node,
and checks the cluster-level outcome: no live member is ejected, a member whose incarnation
numbers run out comes back, and thousands of forged members do not delay the detection of
real crashes. Every message names the seed.
"""

from __future__ import annotations

import random
from typing import Any

from sim_helpers import cluster, everyone_sees, states_of, unverified_are_tracked, why

from swimnet.config import Config
from swimnet.engine import Engine
from swimnet.sim import Simulation
from swimnet.wire import MemberState, PushPull, State, Suspect, decode_stream, encode_packet, encode_stream

TOP = 2**32 - 1
ATTACKER = ("10.66.6.6", 4000)
CRASH_BOUND = 60.0
"""The detection bound the other simulator tests hold a crash to (test_sim_cluster)."""


def _total(sim: Simulation, stat: str) -> int:
    return sum(sim.node(n).stats[stat] for n in sim.running())


def test_a_forged_suspect_at_the_wire_bound_ejects_nobody() -> None:
    """One 21-byte datagram `Suspect(2**32 - 1, n3)` to n1 used to eject n3 for good."""
    sim, _ = cluster(seed=61, n=8)
    sim.inject("n1", encode_packet([Suspect(TOP, "n3", "n1")]), ATTACKER)
    sim.run_for(90.0)
    assert states_of(sim, "n3") == {n: "alive" for n in sim.running() if n != "n3"}, why(
        sim, f"n3 is no longer alive everywhere: {states_of(sim, 'n3')}"
    )
    assert sim.node("n3").local_member.incarnation < 10, why(sim, "n3's incarnation jumped")
    assert _total(sim, "drop_decode") == 0, why(sim, "some node could not decode another")
    assert sim.node("n1").stats["drop_implausible_incarnation"] >= 1, why(sim, "not counted")


def test_the_same_forgery_sent_to_the_member_itself_changes_nothing() -> None:
    sim, _ = cluster(seed=62, n=8)
    sim.inject("n3", encode_packet([Suspect(TOP, "n3", "n1")]), ATTACKER)
    sim.run_for(60.0)
    assert sim.converged(), why(sim, f"not converged: {states_of(sim, 'n3')}")
    assert sim.node("n3").local_member.incarnation == 1, why(sim, "n3 refuted a forgery")
    assert sim.node("n3").stats["drop_implausible_self_claim"] == 1, why(sim, "not counted")


def test_a_member_whose_numbers_run_out_comes_back() -> None:
    """n3 starts at the last incarnation uint32 holds; it is then suspected at it (it stalls)
    and cannot refute. It used to refute at 2**32, which nobody could decode: dead for good,
    and unaware of it. Now it starts a new life and rejoins once its old one is reaped."""

    def factory(cfg: Config, *, rng: random.Random, now: float, incarnation: int) -> Engine:
        return Engine(cfg, rng=rng, now=now, incarnation=TOP if cfg.name == "n3" else incarnation)

    sim, _ = cluster(seed=63, n=8, engine_factory=factory)
    assert sim.node("n3").local_member.incarnation == TOP
    sim.stall("n3", 8.0)
    assert sim.run_until(lambda: sim.node("n3").local_member.incarnation < TOP, 60.0), why(
        sim, "n3 was never suspected at its last incarnation"
    )
    back = sim.run_until(everyone_sees(sim, "n3", {"alive"}), 180.0)
    assert back, why(sim, f"n3 never came back: {states_of(sim, 'n3')}")
    assert sim.node("n3").stats["incarnation_exhausted"] >= 1, why(sim, "not counted")
    assert _total(sim, "drop_decode") == 0, why(sim, "some node could not decode another")
    sim.run_for(60.0)  # and it stays
    assert sim.converged(), why(sim, f"not converged: {states_of(sim, 'n3')}")


def _forged_members(count: int) -> tuple[MemberState, ...]:
    return tuple(
        MemberState(
            f"ghost{i}", (f"10.{200 + i // 65536}.{(i // 256) % 256}.{i % 256}", 7946), b"", 1, State.ALIVE
        )
        for i in range(count)
    )


def _push(sim: Simulation, target: str, message: PushPull) -> None:
    reply: list[Any] = []
    sim.call(target, lambda e: reply.append(e.handle_stream(encode_stream(message), ATTACKER, sim.now)))
    assert reply[0] is not None


def test_twenty_thousand_forged_members_do_not_delay_crash_detection() -> None:
    """One push-pull listing 20,000 alive members that do not exist, then two real crashes:
    both are detected within the usual bound, and the forged members stay bounded."""
    sim, _ = cluster(seed=64, n=8)
    _push(sim, "n1", PushPull(True, _forged_members(20_000)))
    n1 = sim.node("n1")
    assert n1.stats["drop_push_pull_new_member"] > 0, why(sim, "the exchange cap did not bite")
    unverified_are_tracked(sim)
    sim.run_for(2.0)
    unverified_are_tracked(sim)
    sim.crash("n5")
    sim.crash("n6")
    crashed_at = sim.now
    for name in ("n5", "n6"):
        detected = sim.run_until(everyone_sees(sim, name, {"dead", None}), crashed_at + CRASH_BOUND - sim.now)
        assert detected, why(
            sim, f"{name} crashed at {crashed_at:.1f}s, not dead everywhere: {states_of(sim, name)}"
        )
    ghosts = {n: sum(1 for m in sim.node(n).members() if m.name.startswith("ghost")) for n in sim.running()}
    assert max(ghosts.values()) <= 1024, why(sim, f"forged members held: {ghosts}")
    # the forged members are probed, suspected and declared dead in turn, never re-admitted
    # by the real members' push-pulls, and forgotten
    for _ in range(10):
        sim.run_for(30.0)
        unverified_are_tracked(sim)
    alive_ghosts = {
        n: sum(1 for m in sim.node(n).members() if m.name.startswith("ghost") and m.state == State.ALIVE)
        for n in sim.running()
    }
    assert sum(alive_ghosts.values()) < sum(ghosts.values()) / 4, why(sim, f"still alive: {alive_ghosts}")


def test_forged_members_never_spread_by_push_pull() -> None:
    sim, _ = cluster(seed=65, n=6)
    _push(sim, "n1", PushPull(False, _forged_members(500)))
    sim.run_for(1.0)
    unverified_are_tracked(sim)
    for name in sim.running():
        # what it sends in a push-pull: its answer to an empty request from an outsider
        reply = sim.engine(name).handle_stream(encode_stream(PushPull(False, ())), ("192.0.2.1", 1), sim.now)
        assert reply is not None
        listed = decode_stream(reply)
        assert type(listed) is PushPull
        assert not any(s.name.startswith("ghost") and s.state == State.ALIVE for s in listed.members), why(
            sim, f"{name} vouches for forged members"
        )
