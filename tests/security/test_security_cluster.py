"""Encryption end to end in the simulator: key rotation under loss, a wrong key, the
four-step plaintext -> encrypted rolling upgrade, and replayed traffic changing nothing."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from swimnet.config import Config
from swimnet.engine import Engine, EngineEvent
from swimnet.layers.events import KeyOpFinished
from swimnet.membership.events import MemberEvent, MemberFailed
from swimnet.security import Keyring
from swimnet.security.keyops import KeyOpResult
from swimnet.sim import Simulation
from swimnet.wire.messages import Address, State


def _keys(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def _cluster(n: int, seed: int, ring_for: Any, loss: float = 0.0, label: str = "prod") -> Simulation:
    def factory(cfg: Config, **kw: Any) -> Engine:
        return Engine(cfg.evolve(keyring=ring_for(cfg.name), label=label), **kw)

    sim = Simulation(seed=seed, config=Config.lan(), engine_factory=factory, loss=loss)
    names = sim.add_nodes(n)
    sim.join_all(via=names[0])
    assert sim.run_until(sim.converged, timeout=60), sim.describe()
    return sim


def _total(sim: Simulation) -> Counter[str]:
    total: Counter[str] = Counter()
    for name in sim.names:
        total.update(sim.node(name).stats)
    return total


def _record_failures(sim: Simulation) -> list[tuple[float, str, str]]:
    failed: list[tuple[float, str, str]] = []

    def record(now: float, observer: str, event: MemberEvent) -> None:
        if isinstance(event, MemberFailed):
            failed.append((now, observer, event.member.name))

    sim.on_event = record
    return failed


def _key_op(sim: Simulation, operator: str, action: str, arg: bytes | str) -> KeyOpResult:
    """Start a key operation and run until its KeyOpFinished event comes out."""
    op: list[int] = []
    finished: dict[int, KeyOpResult] = {}
    previous = sim.on_event

    def record(now: float, name: str, event: EngineEvent) -> None:
        if name == operator and isinstance(event, KeyOpFinished):
            finished[event.op_id] = event.result
        if previous is not None:
            previous(now, name, event)

    sim.on_event = record
    try:
        sim.call(operator, lambda e: op.append(e.key_op(action, arg, sim.now)))
        assert sim.run_until(lambda: op[0] in finished, 30), sim.describe()
    finally:
        sim.on_event = previous
    return finished[op[0]]


def test_rotating_keys_three_times_under_loss_rejects_nothing() -> None:
    keys = _keys(1, 4)
    rings = {}

    def ring_for(name: str) -> Keyring:
        rings[name] = Keyring([keys[0]])
        return rings[name]

    sim = _cluster(100, seed=5, ring_for=ring_for, loss=0.05)
    failed = _record_failures(sim)
    operator = "n17"
    for i in range(3):
        new, old = keys[i + 1], keys[i]
        for action, arg in (("install", new), ("use", Keyring.id_of(new)), ("remove", Keyring.id_of(old))):
            result = _key_op(sim, operator, action, arg)
            assert result.ok, (action, result, sim.describe())
            assert len(result.acked) == 99, sim.describe()
    sim.run_for(30)
    stats = _total(sim)
    rejected = {k: v for k, v in stats.items() if k.startswith("drop_auth")}
    assert rejected == {}, (rejected, sim.describe())
    assert failed == [], sim.describe()
    assert {tuple(r.keys()) for r in rings.values()} == {(keys[3],)}, sim.describe()
    assert sim.converged(), sim.describe()


def test_a_node_with_the_wrong_key_cannot_join_and_the_seed_says_why() -> None:
    good, bad = _keys(2, 2)

    def factory(cfg: Config, **kw: Any) -> Engine:
        key = bad if cfg.name == "n5" else good
        return Engine(cfg.evolve(keyring=Keyring([key]), label="prod"), **kw)

    sim = Simulation(seed=3, config=Config.lan(), engine_factory=factory)
    names = sim.add_nodes(6)
    for name in names[1:5]:
        sim.join(name, names[0])
    sim.run_for(5)
    sim.join("n5", names[0])
    sim.run_for(30)
    assert "n5" not in sim.view(names[0]), sim.describe()
    assert set(sim.view("n5")) == {"n5"}, sim.describe()
    seed_stats = sim.node(names[0]).stats
    assert seed_stats["drop_auth_unknown_key"] >= 1, (dict(seed_stats), sim.describe())
    assert sim.node("n5").stats["push_pull_failed"] >= 1, sim.describe()


def test_a_different_label_is_a_different_cluster() -> None:
    key = _keys(3, 1)[0]

    def factory(cfg: Config, **kw: Any) -> Engine:
        label = "staging" if cfg.name == "n3" else "prod"
        return Engine(cfg.evolve(keyring=Keyring([key]), label=label), **kw)

    sim = Simulation(seed=4, config=Config.lan(), engine_factory=factory)
    names = sim.add_nodes(4)
    sim.join_all(via=names[0])
    sim.run_for(20)
    assert "n3" not in sim.view(names[0]), sim.describe()
    assert sim.node(names[0]).stats["drop_auth_auth_failed"] >= 1, sim.describe()


def test_four_step_rolling_upgrade_from_plaintext_to_encrypted() -> None:
    key = _keys(4, 1)[0]
    sim = Simulation(seed=8, config=Config.lan())
    names = sim.add_nodes(8)
    sim.join_all(via=names[0])
    assert sim.run_until(sim.converged, timeout=30), sim.describe()
    failed = _record_failures(sim)
    rings = {name: Keyring([key]) for name in names}
    steps = [
        lambda e: e.set_security(False, False, keyring=rings[e.name]),  # keys, still plaintext
        lambda e: e.set_security(False, True),  # send sealed, accept both
        lambda e: e.set_security(True, True),  # refuse plaintext
    ]
    for step in steps:
        for name in names:  # one node at a time, the cluster keeps running
            sim.call(name, step)
            sim.run_for(3)
        sim.run_for(10)
        assert sim.converged(), sim.describe()
    before = _total(sim)
    sim.run_for(30)
    after = _total(sim)
    assert after["drop_auth_plaintext_refused"] == before["drop_auth_plaintext_refused"], sim.describe()
    assert failed == [], sim.describe()
    # a plaintext stranger is now refused
    stranger = sim.add_node("stranger")
    sim.join(stranger, names[0])
    sim.run_for(20)
    assert "stranger" not in sim.view(names[0]), sim.describe()
    assert sim.node(names[0]).stats["drop_auth_plaintext_refused"] > after["drop_auth_plaintext_refused"]


def test_replaying_captured_traffic_changes_nothing() -> None:
    """Record every datagram, let the cluster move on (refutations, a leave, a restart, a key
    rotation), replay all of it at once: no member state or incarnation regresses."""
    keys = _keys(5, 2)
    rings: dict[str, Keyring] = {}

    def ring_for(name: str) -> Keyring:
        rings.setdefault(name, Keyring([keys[0]]))
        return rings[name]

    sim = _cluster(12, seed=13, ring_for=ring_for)
    captured: list[tuple[str, Address, bytes]] = []
    sim.tap = lambda now, receiver, src, data: captured.append((receiver, src, data))
    names = sim.names
    sim.stall("n4", 12.0)  # suspected, then refutes with a higher incarnation
    sim.run_for(40)
    sim.leave("n6")
    sim.run_for(10)
    sim.crash("n6")
    sim.crash("n8")
    sim.run_for(40)
    sim.restart("n8")
    sim.run_for(20)
    op: list[int] = []
    sim.call("n1", lambda e: op.append(e.key_op("install", keys[1], sim.now)))
    sim.run_for(10)
    sim.tap = None
    assert len(captured) > 1000

    def snapshot() -> dict[str, dict[str, tuple[State, int]]]:
        return {
            n: {m.name: (m.state, m.incarnation) for m in sim.node(n).members()}
            for n in names
            if n in sim.running()
        }

    before = snapshot()
    versions = {n: sim.node(n).key_version for n in sim.running()}
    events: list[MemberEvent] = []
    sim.on_event = lambda now, observer, event: events.append(event)
    for receiver, src, data in captured:
        if receiver in sim.running():
            sim.inject(receiver, data, src)
    assert snapshot() == before, sim.describe()
    assert events == [], (events[:5], sim.describe())
    assert {n: sim.node(n).key_version for n in sim.running()} == versions, sim.describe()


def test_the_engine_seals_a_datagram_as_seal_does_with_a_stamped_nonce() -> None:
    """The engine's sealed output is `seal(ring, label, plaintext, source)` whose nonce is
    the sender's clock (4 bytes) then nonce_source(15), and it opens sealed input with any
    installed key: the bytes a reproducible run (nonces from its rng) sends are fixed."""
    from swimnet.security import open_sealed, seal
    from swimnet.wire.codec import decode_packet, encode_packet
    from swimnet.wire.messages import Ack, Ping

    ring_a, ring_b = Keyring(_keys(3, 2)), Keyring(_keys(3, 2)[::-1])  # b seals with a's second key
    cfg = Config.lan(name="a", bind="127.0.0.1:7001", keyring=ring_a, label="prod")
    wall = 1_700_000_123.75
    engine = Engine(
        cfg, rng=random.Random(1), now=5.0, nonce_source=random.Random(9).randbytes, wall_clock=lambda: wall
    )
    twin = random.Random(9)
    ping = seal(
        ring_b,
        "prod",
        encode_packet([Ping(7, "a", "b")]),
        lambda n: int(wall).to_bytes(4, "big") + twin.randbytes(n - 4),
    )
    engine.receive_datagram(ping, ("127.0.0.1", 7002), 5.0)
    out = engine.datagrams_to_send()
    assert [addr for addr, _ in out] == [("127.0.0.1", 7002)]
    ack = out[0][1]
    plain = open_sealed(ring_b, "prod", ack)
    assert [type(m) for m in decode_packet(plain)] == [Ack]
    again = random.Random(9)
    assert ack == seal(ring_a, "prod", plain, lambda n: int(wall).to_bytes(4, "big") + again.randbytes(n - 4))
