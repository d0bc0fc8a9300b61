"""Hypothesis state machines over the pure cluster harness.

`Converges`: random puts, deletes, joins, leaves, failures, lossy gossip and partial syncs;
after a final settle (gossip until quiet, then pairwise push-pull + sync until nothing
changes) every member of a network holds the same versions, nobody outside holds any, and
every visible value was written by its owner since it last joined (a leave voids earlier
writes, even where the leave was missed).

`MatchesModel`: the same operations, each followed by a settle, must match a plain dict
model: last write wins, a member leaving takes its entries with it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from tables_harness import Cluster

from swimnet.errors import LocalProtocolError
from swimnet.tables import TablesConfig

NODES = ["a", "b", "c"]
NETS = ["n1", "n2"]
KEYS = ["k0", "k1", "k2", "k3", "k4"]
VALUES = [b"x", b"y", b"z"]

nodes = st.sampled_from(NODES)
nets = st.sampled_from(NETS)
keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES)


def check_converged(c: Cluster, written: set[tuple[str, str, bytes, str]]) -> None:
    """`written`: (network, key, value, owner) put by owner since it last joined the network."""
    views = {
        name: sorted((net, node, a.order()) for net, node, a in n.attachments.items())
        for name, n in c.nodes.items()
    }
    assert len({repr(v) for v in views.values()}) == 1, views
    for net in NETS:
        members = [n for n in c.nodes.values() if n.is_joined(net)]
        versions = [
            sorted((e.table, e.key, e.value, e.owner, e.ltime, e.deleted) for e in n.entries(net))
            for n in members
        ]
        assert all(v == versions[0] for v in versions), (net, versions)
        assert len({n.digest_hash(net) for n in members}) <= 1
        for n in members:
            for e in n.entries(net):
                assert n.attachments.active(net, e.owner)
            for key, value in n.items(net, "t").items():
                owner = next(e.owner for e in n.entries(net) if e.key == key)
                assert (net, key, value, owner) in written
        for n in c.nodes.values():
            if not n.is_joined(net):
                assert n.entries(net) == []


def settle(c: Cluster) -> None:
    c.gossip_until_quiet()
    c.full_sync()


class Converges(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # tiny regions and frames, so digest descent and multi-round transfers are exercised
        self.c = Cluster(NODES, TablesConfig(summary_max=1, sync_chunk_bytes=3000), seed=7)
        self.written: set[tuple[str, str, bytes, str]] = set()
        """Writes of each owner's current membership of each network: a leave voids them."""

    @initialize(seed=st.integers(0, 2**16))
    def seed(self, seed: int) -> None:
        self.c.rng.seed(seed)

    @rule(node=nodes, net=nets, sync=st.booleans())
    def join(self, node: str, net: str, sync: bool) -> None:
        self.c.join(node, net, sync=sync and node not in self.c.down)

    @rule(node=nodes, net=nets)
    def leave(self, node: str, net: str) -> None:
        self.c.leave(node, net)
        self.written = {w for w in self.written if w[0] != net or w[3] != node}

    @rule(node=nodes, net=nets)
    def bounce(self, node: str, net: str) -> None:
        """Leave and rejoin at once: peers may never see the leave (moby#47728)."""
        self.leave(node, net)
        self.join(node, net, sync=False)

    @rule(node=nodes, net=nets, key=keys, value=values)
    def put(self, node: str, net: str, key: str, value: bytes) -> None:
        if not self.c[node].is_joined(net):
            try:
                self.c.put(node, net, key, value)
            except LocalProtocolError:
                return
            raise AssertionError("write to a network not joined")
        self.c.put(node, net, key, value)
        self.written.add((net, key, value, node))

    @rule(node=nodes, net=nets, key=keys)
    def delete(self, node: str, net: str, key: str) -> None:
        if self.c[node].is_joined(net):
            self.c.delete(node, net, key)

    @rule(loss=st.sampled_from([0.0, 0.3, 0.8]))
    def gossip(self, loss: float) -> None:
        self.c.gossip_round(loss=loss)

    @rule(a=nodes, b=nodes)
    def sync(self, a: str, b: str) -> None:
        if a != b and not {a, b} & self.c.down:
            self.c.sync(a, b)

    @rule(a=nodes, b=nodes)
    def push_pull(self, a: str, b: str) -> None:
        if a != b and not {a, b} & self.c.down:
            self.c.push_pull(a, b)

    @rule(node=nodes)
    def fail(self, node: str) -> None:
        if node not in self.c.down and len(self.c.down) < 2:
            self.c.down.add(node)
            self.c.everyone("member_failed", node)

    @rule(node=nodes)
    def recover(self, node: str) -> None:
        if node in self.c.down:
            self.c.down.discard(node)
            self.c.everyone("member_alive", node)

    @invariant()
    def hidden_entries_are_invisible(self) -> None:
        for name, n in self.c.nodes.items():
            for net in NETS:
                for key in n.items(net, "t"):
                    owner = next(e.owner for e in n.entries(net) if e.key == key)
                    assert owner == name or owner not in self.c.down

    def teardown(self) -> None:
        for node in sorted(self.c.down):
            self.recover(node)
        settle(self.c)
        check_converged(self.c, self.written)


class MatchesModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c = Cluster(NODES[:3], seed=3)
        self.model: dict[str, dict[str, tuple[bytes, str]]] = {net: {} for net in NETS}

    @rule(node=st.sampled_from(NODES[:3]), net=nets)
    def join(self, node: str, net: str) -> None:
        self.c.join(node, net)

    @rule(node=st.sampled_from(NODES[:3]), net=nets)
    def leave(self, node: str, net: str) -> None:
        self.c.leave(node, net)
        self.model[net] = {k: v for k, v in self.model[net].items() if v[1] != node}

    @rule(node=st.sampled_from(NODES[:3]), net=nets, key=keys, value=values)
    def put(self, node: str, net: str, key: str, value: bytes) -> None:
        if self.c[node].is_joined(net):
            self.c.put(node, net, key, value)
            self.model[net][key] = (value, node)

    @rule(node=st.sampled_from(NODES[:3]), net=nets, key=keys)
    def delete(self, node: str, net: str, key: str) -> None:
        if self.c[node].is_joined(net):
            self.c.delete(node, net, key)
            self.model[net].pop(key, None)

    @invariant()
    def matches(self) -> None:
        settle(self.c)
        for net in NETS:
            expected = {k: v for k, (v, _) in self.model[net].items()}
            for n in self.c.nodes.values():
                assert n.items(net, "t") == (expected if n.is_joined(net) else {}), (n.name, net)


Converges.TestCase.settings = settings(
    max_examples=400, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
MatchesModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_converges = Converges.TestCase
test_matches_model = MatchesModel.TestCase
