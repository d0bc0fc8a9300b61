"""NetworkDB's own scenarios (libnetwork networkdb_test.go) on real engines in the simulator.

Every node is a real `Engine` (membership, gossip, sync streams, codec) under the
discrete-event simulator; only the clock is virtual. Checkers read engine state from outside
(the engine's private table state); every assertion message names the seed (`sim.describe()`).

Islands: the simulator has no public "new name at an old address"; `respawn_as` builds one
from its internals (a new slot for the old address, the old slot left crashed), which is what
NetworkDB's test does with real sockets: stop three nodes, start three with new node ids on
the same IP:port, and do not join them anywhere; the survivors' reconnect logic finds them.
"""

from __future__ import annotations

import functools
import os
import random
from collections import Counter
from collections.abc import Callable

import pytest

from swimnet.engine import Engine
from swimnet.sim import Simulation, Uniform
from swimnet.sim.simulation import _Slot
from swimnet.tables import ChangeKind, TableChange, TablesConfig, TableState
from swimnet.wire.messages import State

NET = "net"
TABLE = "t"
SEEDS = [int(s) for s in os.environ.get("SWIMNET_TABLES_SEEDS", "1,2,3").split(",")]
"""Simulator seeds every scenario runs with (set SWIMNET_TABLES_SEEDS=1,2,...,50 for a sweep)."""
seeds = pytest.mark.parametrize("seed", SEEDS)


def why(sim: Simulation, text: str) -> str:
    return f"{text} -- replay with {sim.describe()}"


def make_sim(
    n: int,
    seed: int,
    *,
    tables: TablesConfig | None = None,
    bootstrap: int = 1,
) -> tuple[Simulation, list[str]]:
    """`n` converged nodes; the first `bootstrap` are every later node's join seeds."""
    factory = functools.partial(Engine, tables_config=tables) if tables is not None else None
    sim = Simulation(seed=seed, latency=Uniform(0.0002, 0.002), engine_factory=factory)
    names = sim.add_nodes(n)
    for i, name in enumerate(names[1:], start=1):
        sim.join(name, names[: min(i, bootstrap)])
    assert sim.run_until(sim.converged, timeout=30.0), why(sim, "membership did not converge")
    return sim, names


def state(sim: Simulation, name: str) -> TableState:
    return sim.engine(name)._tables._state  # white-box: the table state itself


def join_all(sim: Simulation, names: list[str], network: str = NET) -> None:
    """Every node joins `network`; waits until every member knows every other member."""
    for name in names:
        sim.node(name).join_network(network)

    def attached() -> bool:
        return all(len(state(sim, n).network_peers(network)) == len(names) - 1 for n in names)

    assert sim.run_until(attached, timeout=30.0), why(sim, f"attachments to {network} did not spread")


def owners(sim: Simulation, name: str, network: str = NET) -> set[str]:
    """Owners of every stored version (tombstones and hidden entries included)."""
    return {e.owner for e in state(sim, name).entries(network)}


SPREAD = 45.0
"""Virtual seconds within which a write reaches every member: gossip, or failing that (a member
missed by every relay) the next anti-entropy round (push_pull_interval 30 s, jittered +-25%)."""


def wait(sim: Simulation, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    assert sim.run_until(predicate, timeout=timeout, step=0.05), why(sim, what)


class Changes:
    """Table changes per observer, through `sim.on_event`."""

    def __init__(self, sim: Simulation) -> None:
        self.log: list[tuple[float, str, TableChange]] = []
        sim.on_event = self._hook

    def _hook(self, now: float, observer: str, event: object) -> None:
        if isinstance(event, TableChange):
            self.log.append((now, observer, event))

    def of(self, observer: str, key: str | None = None) -> list[TableChange]:
        return [c for _, o, c in self.log if o == observer and (key is None or c.key == key)]


# -- bulk sync ---------------------------------------------------------------------------------


@seeds
def test_1000_entries_written_before_a_join_all_arrive(seed: int) -> None:
    sim, (a, b) = make_sim(2, seed)
    sim.node(a).join_network(NET)
    table = sim.node(a).table(NET, TABLE)
    for i in range(1000):
        table.put(f"key{i:04d}", b"value%d" % i)
    sim.run_for(5.0)  # b learns a's attachment; a has no peer in the network to gossip to
    assert state(sim, b).attachments.active(NET, a), why(sim, "attachment not known")
    assert state(sim, b).entries(NET) == [], why(sim, "a non-member stored entries")
    changes = Changes(sim)
    start = sim.now
    sim.node(b).join_network(NET)
    wait(sim, lambda: len(sim.node(b).table(NET, TABLE).items()) == 1000, 10.0, "bulk sync incomplete")
    # the first join sync (at once) carries everything: done in a few round trips, not gossip rounds
    assert sim.now - start < 0.5, why(sim, f"took {sim.now - start:.3f} s virtual")
    assert sim.node(b).table(NET, TABLE).items() == table.items(), why(sim, "copies differ")
    created = changes.of(b)
    assert len(created) == 1000, why(sim, f"{len(created)} changes")
    assert all(c.kind is ChangeKind.CREATED and c.owner == a for c in created), why(sim, "unexpected change")
    sim.run_for(40.0)  # gossip of the queued writes and anti-entropy change nothing
    assert len(changes.of(b)) == 1000, why(sim, "entries changed again after the sync")
    assert sim.tables_converged(NET), why(sim, "not converged")


# -- CRUD ----------------------------------------------------------------------------------------


@seeds
def test_crud_on_five_nodes(seed: int) -> None:
    sim, names = make_sim(5, seed)
    join_all(sim, names)
    changes = Changes(sim)

    def everywhere(expected: dict[str, bytes]) -> Callable[[], bool]:
        return lambda: all(sim.node(n).table(NET, TABLE).items() == expected for n in names)

    for n in names:
        sim.node(n).table(NET, TABLE).put(f"{n}-key", b"v1")
    wait(sim, everywhere({f"{n}-key": b"v1" for n in names}), SPREAD, "creates not seen everywhere")
    for n in names:
        sim.node(n).table(NET, TABLE).put(f"{n}-key", b"v2")
    wait(sim, everywhere({f"{n}-key": b"v2" for n in names}), SPREAD, "updates not seen everywhere")
    for n in names:
        sim.node(n).table(NET, TABLE).delete(f"{n}-key")
    wait(sim, everywhere({}), SPREAD, "deletes not seen everywhere")
    sim.run_for(70.0)  # two anti-entropy periods: nothing comes back
    for n in names:
        table = sim.node(n).table(NET, TABLE)
        assert table.items() == {}, why(sim, f"{n} resurrected entries")
        assert all(table.get(f"{m}-key") is None for m in names), why(sim, f"{n}: deleted read not None")
        stored = state(sim, n).entries(NET)
        assert len(stored) == 5 and all(e.deleted for e in stored), why(sim, f"{n}: tombstones {stored}")
        kinds = Counter(c.kind for c in changes.of(n))
        assert kinds == {ChangeKind.CREATED: 5, ChangeKind.UPDATED: 5, ChangeKind.DELETED: 5}, why(
            sim, f"{n} saw {kinds}"
        )


# -- garbage collection --------------------------------------------------------------------------


@seeds
def test_tombstones_are_garbage_collected_after_the_reap_interval(seed: int) -> None:
    reap = 60.0
    sim, names = make_sim(5, seed, tables=TablesConfig(reap_interval=reap))
    join_all(sim, names)
    for i in range(10):
        sim.node(names[i % 5]).table(NET, TABLE).put(f"k{i}", b"v")
    wait(sim, lambda: all(len(state(sim, n).entries(NET)) == 10 for n in names), SPREAD, "puts not seen")
    for i in range(10):
        sim.node(names[i % 5]).table(NET, TABLE).delete(f"k{i}")
    deleted_at = sim.now
    wait(
        sim,
        lambda: all(all(e.deleted for e in state(sim, n).entries(NET)) for n in names),
        SPREAD,
        "deletes not seen",
    )
    for n in names:
        assert len(state(sim, n).entries(NET)) == 10, why(sim, f"{n}: tombstones reaped too early")
    assert sim.now < deleted_at + reap - 1.0, why(sim, "deletes took too long to spread")
    sim.run_for(deleted_at + reap - 1.0 - sim.now)
    for n in names:
        assert len(state(sim, n).entries(NET)) == 10, why(sim, f"{n}: tombstones reaped too early")
    sim.run_for(2.0)  # past the reap interval on every node (relays never extend the residual)
    for n in names:
        assert state(sim, n).entries(NET) == [], why(sim, f"{n} still holds {state(sim, n).entries(NET)}")
        assert sim.engine(n).stats["reaped_tombstones"] == 10, why(sim, f"{n}: {sim.engine(n).stats}")
    sim.run_for(70.0)  # anti-entropy does not bring tombstones (or values) back
    for n in names:
        assert state(sim, n).entries(NET) == [], why(sim, f"{n}: tombstones came back")
    assert sim.tables_converged(NET), why(sim, "not converged")


# -- islands -------------------------------------------------------------------------------------


def respawn_as(sim: Simulation, old: str, new: str) -> str:
    """Start a node named `new` (fresh engine, incarnation 1) at crashed `old`'s address, as a
    process with a new node id on the same IP:port. Simulator internals: the address now maps
    to the new slot; the old slot stays crashed (and out of `running()`). It joins nobody."""
    slot = sim._slots[old]
    assert not slot.running, f"{old} must be stopped first"
    cfg = slot.engine.config.evolve(name=new)
    stats: Counter[str] = Counter()
    fresh = _Slot(new, slot.addr, sim._new_engine(cfg, 1), stats)
    sim._slots[new] = fresh
    sim._by_addr[slot.addr] = fresh
    sim.stats[new] = stats
    sim._after(fresh)
    return new


@seeds
@pytest.mark.parametrize("how", ["crash", "leave"])
def test_islands_three_of_five_come_back_under_new_names(how: str, seed: int) -> None:
    reap = 60.0
    # as NetworkDB's test: the first three are everybody's bootstrap nodes
    sim, names = make_sim(5, seed, tables=TablesConfig(reap_interval=reap), bootstrap=3)
    join_all(sim, names)
    for n in names:
        sim.node(n).table(NET, TABLE).put(f"{n}-ep", n.encode())
    wait(sim, lambda: sim.tables_converged(NET) and len(state(sim, "n4").entries(NET)) == 5, SPREAD, "puts")
    gone, survivors = names[:3], names[3:]
    if how == "leave":  # NetworkDB's version: the three leave cleanly, then stop
        for n in gone:
            sim.leave(n)
        wait(sim, lambda: all(sim.engine(n).leave_done for n in gone), 10.0, "leave did not finish")
    for n in gone:
        sim.crash(n)
    expected_state = State.LEFT if how == "leave" else State.DEAD
    wait(
        sim,
        lambda: all(sim.engine(s).view().get(n) in (expected_state, None) for s in survivors for n in gone),
        60.0,
        f"survivors did not see the three {how}",
    )
    for s in survivors:
        items = sim.node(s).table(NET, TABLE).items()
        assert items == {f"{n}-ep": n.encode() for n in survivors}, why(sim, f"{s}: {items}")
    if how == "leave":  # a member that left loses its entries after a short grace (forged leaves)
        grace = TablesConfig().left_grace_interval
        wait(sim, lambda: all(owners(sim, s) == set(survivors) for s in survivors), grace + 1.0, "kept")

    newcomers = [respawn_as(sim, old, f"new{i}") for i, old in enumerate(gone)]
    # nobody tells the newcomers anything: the survivors' reconnect logic must find them
    wait(sim, sim.converged, 240.0, "the islands did not re-merge")
    everyone = survivors + newcomers
    for n in everyone:
        alive = sorted(m for m, st in sim.engine(n).view().items() if st == State.ALIVE)
        assert alive == sorted(everyone), why(sim, f"{n} sees {alive}")

    for n in newcomers:
        sim.node(n).join_network(NET)
        sim.node(n).table(NET, TABLE).put(f"{n}-ep", n.encode())
    expected = {f"{n}-ep": n.encode() for n in everyone}
    wait(
        sim,
        lambda: all(sim.node(n).table(NET, TABLE).items() == expected for n in everyone),
        SPREAD,
        "tables did not re-merge",
    )
    sim.run_for(reap + 5.0)  # past every hidden entry's reap time
    for n in everyone:
        assert sim.node(n).table(NET, TABLE).items() == expected, why(sim, f"{n}: wrong entries")
        assert owners(sim, n) == set(everyone), why(sim, f"{n} still stores {owners(sim, n) - set(everyone)}")
    assert sim.tables_converged(NET), why(sim, "not converged")
    # (not checked here: after a crash the newcomers also count the old names as network peers,
    # see test_a_late_joiner_never_adopts_a_crashed_members_attachment)


# -- conflicts -----------------------------------------------------------------------------------


@seeds
def test_twenty_nodes_create_the_same_key_at_once(seed: int) -> None:
    sim, names = make_sim(20, seed)
    join_all(sim, names)
    writes = []
    for n in names:  # all at the same virtual instant: nobody has seen anyone else's write
        sim.node(n).table(NET, TABLE).put("contested", n.encode())
        (own,) = state(sim, n).entries(NET)
        writes.append((own.ltime, own.owner))
    winner = max(writes)[1]

    def agreed() -> bool:
        return all(
            state(sim, n).live_entries(NET) == {(TABLE, "contested"): (winner.encode(), winner)}
            for n in names
        )

    wait(sim, agreed, SPREAD, f"no agreement on {winner}")
    sim.run_for(40.0)  # anti-entropy: the losers' versions never come back
    assert agreed(), why(sim, "agreement lost")
    assert sim.tables_converged(NET), why(sim, "not converged")
    # the winner deletes: nobody resurrects its own overwritten write
    sim.node(winner).table(NET, TABLE).delete("contested")
    wait(
        sim, lambda: all(sim.node(n).table(NET, TABLE).get("contested") is None for n in names), SPREAD, "del"
    )
    sim.run_for(70.0)
    for n in names:
        assert sim.node(n).table(NET, TABLE).get("contested") is None, why(sim, f"{n} resurrected")
        stored = state(sim, n).entries(NET)
        assert [(e.owner, e.deleted) for e in stored] == [(winner, True)], why(sim, f"{n}: {stored}")


# -- failures ------------------------------------------------------------------------------------


@seeds
def test_failed_node_entries_are_hidden_then_come_back(seed: int) -> None:
    sim, names = make_sim(5, seed)
    join_all(sim, names)
    victim, others = names[4], names[:4]
    for i in range(3):
        sim.node(victim).table(NET, TABLE).put(f"ep{i}", b"old")
    sim.node(others[0]).table(NET, TABLE).put("mine", b"x")
    wait(
        sim,
        lambda: sim.tables_converged(NET) and len(state(sim, others[1]).entries(NET)) == 4,
        SPREAD,
        "puts",
    )
    changes = Changes(sim)

    sim.partition([[victim], others])
    wait(
        sim,
        lambda: all(sim.engine(o).view()[victim] == State.DEAD for o in others),
        60.0,
        "victim not declared dead",
    )
    for o in others:
        table = sim.node(o).table(NET, TABLE)
        assert table.items() == {"mine": b"x"}, why(sim, f"{o} still shows {table.items()}")
        assert table.get("ep0") is None, why(sim, f"{o}: hidden entry readable")
        assert owners(sim, o) == {victim, others[0]}, why(sim, f"{o} dropped hidden entries")
        assert state(sim, o).is_failed(victim), why(sim, o)
        assert victim not in state(sim, o).network_peers(NET), why(sim, o)
    # the victim writes while cut off; the others write too
    sim.node(victim).table(NET, TABLE).put("ep0", b"new")
    sim.node(others[1]).table(NET, TABLE).put("during", b"y")
    sim.run_for(5.0)

    sim.heal()
    expected = {"ep0": b"new", "ep1": b"old", "ep2": b"old", "mine": b"x", "during": b"y"}
    wait(
        sim,
        lambda: sim.converged() and all(sim.node(n).table(NET, TABLE).items() == expected for n in names),
        120.0,
        "entries did not come back",
    )
    for o in others:
        seen = [(c.kind, c.value) for c in changes.of(o, "ep1")]
        assert seen == [(ChangeKind.DELETED, b"old"), (ChangeKind.CREATED, b"old")], why(sim, f"{o}: {seen}")
    sim.run_for(40.0)
    assert sim.tables_converged(NET), why(sim, "not converged")


@seeds
def test_a_node_back_after_the_reap_interval_resyncs_both_ways(seed: int) -> None:
    """Past reap_interval the two sides forget each other's entries (and attachments); when
    the partition heals, membership and anti-entropy bring everything back from the owners."""
    reap = 60.0
    sim, names = make_sim(5, seed, tables=TablesConfig(reap_interval=reap))
    join_all(sim, names)
    victim, others = names[4], names[:4]
    for n in names:
        sim.node(n).table(NET, TABLE).put(f"{n}-ep", b"x")
    wait(sim, lambda: all(len(state(sim, n).entries(NET)) == 5 for n in names), SPREAD, "puts not seen")
    sim.partition([[victim], others])
    sim.run_for(reap + 60.0)
    for o in others:
        assert victim not in owners(sim, o), why(sim, f"{o} still stores the victim's entries")
    assert owners(sim, victim) == {victim}, why(sim, f"victim stores {owners(sim, victim)}")
    sim.heal()
    expected = {f"{n}-ep": b"x" for n in names}
    wait(
        sim,
        lambda: sim.converged() and all(sim.node(n).table(NET, TABLE).items() == expected for n in names),
        180.0,
        "entries did not come back after the heal",
    )
    for n in names:
        assert sorted(state(sim, n).network_peers(NET)) == sorted(set(names) - {n}), why(sim, n)


@seeds
def test_entries_of_a_node_that_leaves_the_cluster_are_gone(seed: int) -> None:
    sim, names = make_sim(5, seed)
    join_all(sim, names)
    leaver, others = names[2], [n for n in names if n != names[2]]
    for n in names:
        sim.node(n).table(NET, TABLE).put(f"{n}-ep", b"x")
    sim.node(leaver).table(NET, TABLE).put("shared", b"from-leaver")
    wait(sim, lambda: all(len(state(sim, n).entries(NET)) == 6 for n in names), SPREAD, "puts not seen")
    changes = Changes(sim)
    sim.leave(leaver)
    wait(sim, lambda: all(sim.engine(o).view()[leaver] == State.LEFT for o in others), 10.0, "leave unseen")
    for o in others:  # invisible at once
        assert sim.node(o).table(NET, TABLE).get("shared") is None, why(sim, o)
        gone = {c.key for c in changes.of(o) if c.kind is ChangeKind.DELETED}
        assert gone == {f"{leaver}-ep", "shared"}, why(sim, f"{o}: {gone}")
    sim.run_for(TablesConfig().left_grace_interval)  # and dropped after a grace (forged leaves)
    for o in others:
        assert owners(sim, o) == set(others), why(sim, f"{o} stores {owners(sim, o)}")
        assert state(sim, o).attachments.networks_of(leaver) == [], why(sim, f"{o}: attachment kept")
    wait(sim, lambda: sim.engine(leaver).leave_done, 10.0, "leave did not finish")
    sim.crash(leaver)
    sim.run_for(70.0)  # anti-entropy among the rest brings nothing back
    for o in others:
        assert owners(sim, o) == set(others), why(sim, f"{o} stores {owners(sim, o)}")
    assert sim.tables_converged(NET), why(sim, "not converged")


def _superseded_then_gone(sim: Simulation, names: list[str], last_write: str) -> None:
    """a writes `shared`; cut off from d, b deletes it or overwrites it and only a and c see
    that: they hold b's version, d holds a's older one (the start of both tests below)."""
    a, b, c, d = names
    sim.node(a).table(NET, TABLE).put("shared", b"from-a")
    wait(sim, lambda: all(sim.node(n).table(NET, TABLE).get("shared") for n in names), SPREAD, "put")
    sim.partition([[a, b, c], [d]])
    table = sim.node(b).table(NET, TABLE)
    if last_write == "delete":
        table.delete("shared")
    else:
        table.put("shared", b"from-b")

    def held_by_b(n: str) -> bool:
        return [e.owner for e in state(sim, n).entries(NET)] == [b]

    wait(sim, lambda: held_by_b(a) and held_by_b(c), 5.0, "b's write did not reach a and c")
    assert not held_by_b(d), why(sim, "b's write crossed the partition")


def _shared_is_gone_everywhere(sim: Simulation, names: list[str]) -> None:
    sim.heal()
    wait(sim, sim.converged, 60.0, "membership did not converge after the heal")
    wait(sim, lambda: sim.tables_converged(NET), SPREAD, "tables did not converge")
    sim.run_for(70.0)  # two anti-entropy periods bring nothing back
    for n in names:
        got = sim.node(n).table(NET, TABLE).get("shared")
        assert got is None, why(sim, f"{n} shows shared={got!r}")
    assert sim.tables_converged(NET), why(sim, "not converged")


@seeds
@pytest.mark.parametrize("last_write", ["delete", "put"])
def test_a_failed_members_last_write_still_retires_what_it_superseded(last_write: str, seed: int) -> None:
    """A failed member's versions are hidden and out of the digest until reap_interval; one
    that superseded another owner's value must still reach a member that holds that value
    (here d, cut off when b wrote), or d shows it and the others nothing for 30 minutes."""
    sim, names = make_sim(4, seed)
    join_all(sim, names)
    a, b, c, d = names
    _superseded_then_gone(sim, names, last_write)
    sim.crash(b)
    wait(sim, lambda: all(sim.engine(n).view()[b] == State.DEAD for n in (a, c, d)), 60.0, "b not dead")
    assert all(state(sim, n).is_failed(b) for n in (a, c, d)), why(sim, "b not failed everywhere")
    assert owners(sim, d) == {a}, why(sim, f"d holds {state(sim, d).entries(NET)}")  # hidden: a is cut off
    changes = Changes(sim)
    _shared_is_gone_everywhere(sim, [a, c, d])
    shown = [(o, ch) for _, o, ch in changes.log if ch.owner == b and ch.kind is not ChangeKind.DELETED]
    assert shown == [], why(sim, f"failed b's version shown: {shown}")
    for n in (a, c, d):  # hidden, not reaped: b's version is what every member holds
        held = [(e.owner, e.deleted) for e in state(sim, n).entries(NET)]
        assert held == [(b, last_write == "delete")], why(sim, f"{n} holds {held}")


@seeds
@pytest.mark.parametrize("last_write", ["delete", "put"])
def test_a_departed_members_last_write_still_retires_what_it_superseded(last_write: str, seed: int) -> None:
    """As above, but b leaves the cluster where only d sees it leave (a and c see it fail):
    d, past the leave grace, refuses b's versions, yet the version a and c hold hidden
    retires d's copy of a's value."""
    sim, names = make_sim(4, seed)
    join_all(sim, names)
    a, b, c, d = names
    _superseded_then_gone(sim, names, last_write)
    sim.run_for(8.0)  # b's gossip of its write is over before b and d meet
    sim.partition([[a, c], [b, d]])
    sim.leave(b)
    wait(sim, lambda: sim.engine(b).leave_done, 10.0, "leave did not finish")
    sim.crash(b)
    wait(sim, lambda: all(sim.engine(n).view()[b] == State.DEAD for n in (a, c)), 60.0, "b not dead")
    assert sim.engine(d).view()[b] == State.LEFT, why(sim, "d did not see b leave")
    sim.run_for(TablesConfig().left_grace_interval)
    assert owners(sim, d) == {a}, why(sim, f"d holds {state(sim, d).entries(NET)}")
    assert state(sim, a).is_failed(b) and state(sim, c).is_failed(b), why(sim, "b not failed on a and c")
    _shared_is_gone_everywhere(sim, [a, c, d])
    assert state(sim, d).entries(NET) == [], why(sim, f"d holds {state(sim, d).entries(NET)}")


@seeds
def test_a_node_leaving_a_network_takes_its_entries_and_keeps_none(seed: int) -> None:
    sim, names = make_sim(4, seed)
    join_all(sim, names)
    leaver, rest = names[1], [n for n in names if n != names[1]]
    for n in names:
        for i in range(3):
            sim.node(n).table(NET, TABLE).put(f"{n}-{i}", b"v")
    wait(sim, lambda: all(len(state(sim, n).entries(NET)) == 12 for n in names), SPREAD, "puts not seen")
    sim.node(leaver).leave_network(NET)
    leaver_state = state(sim, leaver)
    assert not leaver_state.is_joined(NET) and leaver_state.entries(NET) == [], why(
        sim, "leaver kept entries"
    )
    wait(sim, lambda: all(owners(sim, n) == set(rest) for n in rest), SPREAD, "leaver's entries not dropped")
    # the others keep writing; anti-entropy runs twice: the leaver stays empty
    for n in rest:
        sim.node(n).table(NET, TABLE).put(f"{n}-0", b"v2")
        sim.node(n).table(NET, TABLE).put(f"{n}-late", b"v")
        sim.node(n).table(NET, TABLE).delete(f"{n}-2")
    for _ in range(70):
        sim.run_for(1.0)
        assert leaver_state.entries(NET) == [], why(sim, "the leaver stores entries of a network it left")
    expected = {f"{n}-{k}": v for n in rest for k, v in (("0", b"v2"), ("1", b"v"), ("late", b"v"))}
    for n in rest:
        assert sim.node(n).table(NET, TABLE).items() == expected, why(sim, n)
        assert leaver not in state(sim, n).network_peers(NET), why(sim, n)
    assert sim.tables_converged(NET), why(sim, "not converged")
    # joining again brings the others' entries, never its own old ones
    sim.node(leaver).join_network(NET)
    wait(sim, lambda: sim.node(leaver).table(NET, TABLE).items() == expected, SPREAD, "rejoin sync")
    sim.run_for(40.0)
    assert all(sim.node(n).table(NET, TABLE).items() == expected for n in names), why(sim, "old entries back")


@seeds
def test_non_members_never_store_a_networks_entries(seed: int) -> None:
    sim, names = make_sim(6, seed)
    blue, red = names[:4], names[3:]  # n3 is in both
    for n in blue:
        sim.node(n).join_network("blue")
    for n in red:
        sim.node(n).join_network("red")
    violations: list[str] = []

    def hook(now: float, observer: str, event: object) -> None:
        if not isinstance(event, TableChange) or event.kind is ChangeKind.DELETED:
            return
        if not state(sim, observer).is_joined(event.network):
            violations.append(f"{observer} got {event} at {now:.3f}")

    sim.on_event = hook
    members = {"blue": set(blue), "red": set(red)}

    def check() -> None:
        for n in names:
            s = state(sim, n)
            for net, group in members.items():
                if n not in group:
                    assert not s.is_joined(net) and s.entries(net) == [], why(sim, f"{n} holds {net} entries")
        assert not violations, why(sim, "; ".join(violations[:5]))

    rng = random.Random(sim.seed)
    for step in range(120):
        for net, group in members.items():
            writer = sorted(group)[step % len(group)]
            key = f"{writer}-{step % 7}"
            if step % 5 == 4:
                sim.node(writer).table(net, TABLE).delete(key)
            else:
                sim.node(writer).table(net, TABLE).put(key, b"%d" % rng.randrange(100))
        if step == 60:  # n2 leaves blue: from now on it is a non-member too
            sim.node("n2").leave_network("blue")
            members["blue"].discard("n2")
        sim.run_for(0.5)
        check()
    sim.run_for(1.0)
    for _ in range(70):  # anti-entropy periods
        sim.run_for(1.0)
        check()
    for net in members:
        assert sim.tables_converged(net), why(sim, f"{net} not converged")
    # scoped at the sender: a node that never joined a network is never even sent its entries
    for n in ("n0", "n1", "n4", "n5"):
        stats = sim.engine(n).stats
        assert stats["table_not_joined"] == 0 and stats["sync_not_joined"] == 0, why(sim, f"{n}: {stats}")


@seeds
def test_a_restarted_node_retracts_its_previous_lifes_entries(seed: int) -> None:
    """A restart is a new process with empty state and a Lamport clock back at zero: its old
    entries go everywhere, and its new writes win over its old, higher-timed versions."""
    sim, names = make_sim(4, seed)
    join_all(sim, names)
    node, others = names[2], [n for n in names if n != names[2]]
    for i in range(20):  # drive its table clock well past what a fresh process starts from
        sim.node(node).table(NET, TABLE).put("kept", b"old-%d" % i)
    sim.node(node).table(NET, TABLE).put("stale", b"old")
    sim.node(others[0]).table(NET, TABLE).put("theirs", b"x")
    wait(sim, lambda: all(len(state(sim, n).entries(NET)) == 3 for n in names), SPREAD, "puts not seen")
    sim.crash(node)
    sim.run_for(2.0)  # back before anyone declares it dead
    sim.restart(node, join_via=others[0])
    wait(sim, sim.converged, 30.0, "restarted node not back")
    # not a member of the network in its new life: its old entries go everywhere
    wait(sim, lambda: all(owners(sim, n) == {others[0]} for n in others), SPREAD, "old entries stayed")
    sim.node(node).join_network(NET)
    sim.node(node).table(NET, TABLE).put("kept", b"new")
    expected = {"kept": b"new", "theirs": b"x"}
    wait(
        sim,
        lambda: all(sim.node(n).table(NET, TABLE).items() == expected for n in names),
        SPREAD,
        "new life's entries did not win",
    )
    sim.run_for(70.0)
    assert all(sim.node(n).table(NET, TABLE).items() == expected for n in names), why(sim, "old entries back")
    assert sim.tables_converged(NET), why(sim, "not converged")


@seeds
@pytest.mark.parametrize("loss", [0.1, 0.2])
def test_crud_under_loss_converges(seed: int, loss: float) -> None:
    sim, names = make_sim(6, seed)
    join_all(sim, names)
    sim.set_loss(loss)
    expected: dict[str, bytes] = {}
    for step in range(30):
        n = names[step % len(names)]
        key = f"{n}-{step % 4}"
        table = sim.node(n).table(NET, TABLE)
        if step % 3 == 2 and table.get(key) is not None:
            table.delete(key)
            expected.pop(key, None)
        else:
            table.put(key, b"%d" % step)
            expected[key] = b"%d" % step
        sim.run_for(0.3)
    wait(
        sim,
        lambda: all(sim.node(n).table(NET, TABLE).items() == expected for n in names),
        2 * SPREAD,
        f"no convergence under {loss:.0%} loss",
    )
    assert sim.tables_converged(NET), why(sim, "not converged")


# -- known bugs ----------------------------------------------------------------------------------


@seeds
def test_a_late_joiner_never_shows_a_crashed_members_entries(seed: int) -> None:
    sim, names = make_sim(4, seed, tables=TablesConfig(reap_interval=120.0, node_reap_interval=300.0))
    join_all(sim, names)
    crashed, alive = names[3], names[:3]
    sim.node(crashed).table(NET, TABLE).put("dead-ep", b"10.0.0.3")
    wait(sim, lambda: all(sim.node(n).table(NET, TABLE).get("dead-ep") for n in alive), SPREAD, "put")
    sim.crash(crashed)
    wait(sim, lambda: sim.engine(alive[0]).view()[crashed] == State.SUSPECT, 30.0, "crash not suspected")
    late = sim.add_node("late")
    sim.join(late, alive[0])  # while the crashed member is suspected, not yet declared dead
    sim.node(late).join_network(NET)
    wait(sim, lambda: all(sim.engine(n).view()[crashed] == State.DEAD for n in alive), 60.0, "not dead")
    sim.run_for(60.0)
    assert sim.converged(), why(sim, "membership did not converge")
    for n in [*alive, late]:
        got = sim.node(n).table(NET, TABLE).get("dead-ep")
        assert got is None, why(sim, f"{n} shows the crashed member's entry: {got!r}")
    sim.run_for(500.0)  # past reap_interval and node_reap_interval on the old members
    for n in [*alive, late]:
        got = sim.node(n).table(NET, TABLE).get("dead-ep")
        assert got is None, why(sim, f"{n} shows the crashed member's entry: {got!r}")


@seeds
def test_a_late_joiner_never_adopts_a_crashed_members_attachment(seed: int) -> None:
    reap = 60.0
    sim, names = make_sim(4, seed, tables=TablesConfig(reap_interval=reap, node_reap_interval=200.0))
    join_all(sim, names)
    crashed, alive = names[3], names[:3]
    sim.crash(crashed)
    wait(sim, lambda: all(sim.engine(o).view().get(crashed) != State.ALIVE for o in alive), 60.0, "crash")
    late = sim.add_node("late")
    sim.join(late, alive[0])
    sim.node(late).join_network(NET)
    sim.run_for(reap + 10.0)  # past the reap of the crashed member's hidden entries everywhere
    everyone = [*alive, late]
    for n in everyone:
        peers = state(sim, n).network_peers(NET)
        assert crashed not in peers, why(sim, f"{n} counts crashed {crashed} as a peer: {peers}")
    sim.run_for(300.0)  # the old members' node_reap_interval for the crashed member ends
    for n in everyone:
        peers = state(sim, n).network_peers(NET)
        assert crashed not in peers, why(sim, f"{n} re-adopted crashed {crashed}: {peers}")
