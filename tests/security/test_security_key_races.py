"""Concurrent key operations from two members (issue 16), encryption on, in the simulator.

Two operators act at the same virtual instant on different members, each from the same
keyring version: every member must end with one and the same keyring, and the cluster must
stay whole (everybody can open everybody's packets). Every message names the seed.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from swimnet.config import Config
from swimnet.engine import Engine, EngineEvent
from swimnet.layers.events import KeyOpFinished
from swimnet.security import Keyring
from swimnet.security.keyops import KeyOpResult
from swimnet.sim import Simulation


def _keys(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def _cluster(n: int, seed: int, keys: list[bytes]) -> Simulation:
    def factory(cfg: Config, **kw: Any) -> Engine:
        return Engine(cfg.evolve(keyring=Keyring(keys), label="prod"), **kw)

    sim = Simulation(seed=seed, config=Config.lan(), engine_factory=factory)
    sim.on_event = _record_key_ops
    names = sim.add_nodes(n)
    sim.join_all(via=names[0])
    assert sim.run_until(sim.converged, timeout=60), sim.describe()
    return sim


FINISHED: dict[tuple[str, int], KeyOpResult] = {}
"""(origin, op id) -> its KeyOpFinished result, as the simulated nodes announced them."""


def _record_key_ops(now: float, name: str, event: EngineEvent) -> None:
    if isinstance(event, KeyOpFinished):
        FINISHED[(name, event.op_id)] = event.result


def _rings(sim: Simulation) -> dict[str, tuple[bytes, ...]]:
    rings = {}
    for n in sim.running():
        ring = sim.node(n).keyring
        assert ring is not None
        rings[n] = ring.keys()
    return rings


def _one_keyring(sim: Simulation) -> bool:
    return len(set(_rings(sim).values())) == 1


def _race(sim: Simulation, ops: list[tuple[str, str, bytes | str]]) -> list[tuple[str, int]]:
    """Start every operation at the same virtual instant (none has seen another)."""
    started: list[tuple[str, int]] = []
    for operator, action, arg in ops:
        sim.call(operator, lambda e, a=action, k=arg: started.append((e.name, e.key_op(a, k, sim.now))))
    return started


@pytest.mark.parametrize(("user", "remover"), [("n1", "n4"), ("n4", "n1")])
def test_use_and_remove_of_the_same_key_at_once_converge_to_one_keyring(user: str, remover: str) -> None:
    old, new = _keys(21, 2)
    sim = _cluster(6, 21, [old, new])  # both installed everywhere, `old` primary
    started = _race(sim, [(user, "use", Keyring.id_of(new)), (remover, "remove", Keyring.id_of(new))])
    assert sim.run_until(lambda: _one_keyring(sim), 60.0), (_rings(sim), sim.describe())
    # removing wins over making it primary: a member that removed the key could never open
    # what the others would seal with it
    assert set(_rings(sim).values()) == {(old,)}, sim.describe()
    sim.run_for(60.0)
    assert _one_keyring(sim) and sim.converged(), (_rings(sim), sim.describe())
    for origin, op_id in started:
        assert sim.run_until(lambda o=origin, i=op_id: (o, i) in FINISHED, 30.0)
    results = {origin: FINISHED.pop((origin, op_id)) for origin, op_id in started}
    assert results[remover] is not None and results[remover].ok, (results, sim.describe())
    assert results[user] is not None and not results[user].ok, (results, sim.describe())
    assert user in results[user].failed, results  # the operator learns it did not hold


@pytest.mark.parametrize("seed", [31, 32])
def test_two_installs_at_once_converge_to_one_keyring(seed: int) -> None:
    base, a, b = _keys(seed, 3)
    sim = _cluster(6, seed, [base])
    _race(sim, [("n2", "install", a), ("n5", "install", b)])
    assert sim.run_until(lambda: _one_keyring(sim), 60.0), (_rings(sim), sim.describe())
    sim.run_for(60.0)
    assert _one_keyring(sim) and sim.converged(), (_rings(sim), sim.describe())
    (ring,) = set(_rings(sim).values())
    assert ring[0] == base, sim.describe()


def test_three_operations_at_once_from_three_members() -> None:
    old, new, other = _keys(41, 3)
    sim = _cluster(8, 41, [old, new])
    _race(
        sim,
        [
            ("n1", "use", Keyring.id_of(new)),
            ("n3", "install", other),
            ("n6", "remove", Keyring.id_of(new)),
        ],
    )
    assert sim.run_until(lambda: _one_keyring(sim), 60.0), (_rings(sim), sim.describe())
    sim.run_for(60.0)
    assert _one_keyring(sim) and sim.converged(), (_rings(sim), sim.describe())


def test_operations_converge_whatever_order_they_arrive_in() -> None:
    """The pure rule under the simulator tests: members adopt the greatest (version, rank,
    origin), so any arrival order of concurrent operations gives one keyring."""
    from itertools import permutations

    from swimnet.security.keyops import KeyManager

    k = _keys(51, 4)

    def manager(name: str) -> KeyManager:
        return KeyManager(Keyring([k[0], k[1], k[2]]), name)

    a, b, c = manager("a"), manager("b"), manager("c")
    ops = [
        a.start("use", Keyring.id_of(k[1]), set(), 0.0, 1.0)[1],
        b.start("remove", Keyring.id_of(k[1]), set(), 0.0, 1.0)[1],
        c.start("install", k[3], set(), 0.0, 1.0)[1],
    ]
    outcomes = set()
    for order in permutations(ops):
        observer = manager("z")
        for op in order:
            observer.apply(op)
        assert observer.keyring is not None
        outcomes.add(observer.keyring.keys())
    for origin in (a, b, c):
        for op in ops:
            origin.apply(op)
        assert origin.keyring is not None
        outcomes.add(origin.keyring.keys())
    assert outcomes == {(k[0], k[2])}  # b's removal wins: same version, highest rank
