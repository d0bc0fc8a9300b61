"""Hypothesis drives a small simulated cluster of real engines (5-8 nodes, two networks)
through table writes and deletes, network joins and leaves, partitions, heals, loss up to 20%,
crashes, restarts and graceful cluster leaves, in any order.

The model (outside the system under test):
- every node writes only its own keys (`<node>-k<i>`), so each key's final value is exactly its
  owner's last operation; plus one `shared` key that anybody writes or deletes (Lamport order
  decides: only agreement and provenance are checked for it);
- leaving a network voids the node's writes there; a restarted node is a new process with
  empty state: it has left every network and its previous life's writes are void (it may
  join again later, as a new member); a node that leaves the cluster is then stopped, and its
  writes are void too;
- a crashed node's writes are invisible (hidden) once the others have detected the crash.

Checked after every step: a node never sees a CREATED/UPDATED change of a network it has not
joined, and stores nothing of it; a running node's joined networks are the model's; a running
node reads its own writes back. Checked at the end, once the network is healed, loss-free and
quiet: membership converges; for every network, every running member holds exactly the
model's visible entries (so `sim.tables_converged(network)`, and no deleted or voided entry is
resurrected), the `shared` key agrees everywhere and was written by its owner in its current
membership; nodes that learned of a graceful leave store nothing of the leaver; and it all
stays so through two more anti-entropy periods. Every message names the simulator seed.
"""

from __future__ import annotations

import os
from functools import partial

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from swimnet.engine import Engine
from swimnet.membership.events import MemberEvent, MemberJoined, MemberLeft
from swimnet.sim import Simulation, Uniform
from swimnet.tables import ChangeKind, TableChange, TablesConfig

NETS = ("blue", "red")
TABLE = "t"
KEYS = 3
SHARED = "shared"
MIN_RUNNING = 3
QUIET = 180.0
"""Virtual seconds after the final heal for membership, then for the tables, to settle."""
STABLE = 75.0
"""More quiet seconds after the tables settled: two anti-entropy periods bring nothing back."""
EXAMPLES = int(os.environ.get("SWIMNET_TABLES_EXAMPLES", "60"))

node_index = st.integers(0, 7)
net_choice = st.sampled_from(NETS)
gaps = st.sampled_from([0.0, 0.0, 0.2, 1.0, 3.0, 10.0])
"""Virtual time to let pass after an operation: none (operations at one instant race), or
a round trip, some gossip rounds, a failure detection."""


class TablesMachine(RuleBasedStateMachine):
    sim: Simulation
    tables_config: TablesConfig | None = None
    """None: NetworkDB's timers (nothing is reaped within a run)."""

    def __init__(self) -> None:
        super().__init__()
        self.joined: dict[str, set[str]] = {}
        """Networks each node has joined in its current life (model)."""
        self.owned: dict[tuple[str, str], dict[str, bytes | None]] = {}
        """(node, network) -> own key -> last value (None: deleted), since the node last joined."""
        self.shared: dict[tuple[str, str], set[bytes]] = {}
        """(node, network) -> values it wrote to the shared key since it last joined."""
        self.left: set[str] = set()
        """Nodes that left the cluster gracefully (and are stopped) and were not restarted."""
        self.last_seen: dict[tuple[str, str], type] = {}
        """(observer, subject) -> the observer's latest MemberJoined/MemberLeft about it."""
        self.violations: list[str] = []
        self.counter = 0

    def why(self, text: str) -> str:
        return f"{text} -- replay with {self.sim.describe()}"

    @initialize(n=st.integers(5, 8), seed=st.integers(0, 2**32 - 1))
    def build(self, n: int, seed: int) -> None:
        factory = None if self.tables_config is None else partial(Engine, tables_config=self.tables_config)
        self.sim = Simulation(seed=seed, latency=Uniform(0.0002, 0.002), engine_factory=factory)
        names = self.sim.add_nodes(n)
        self.sim.join_all(names[0])
        assert self.sim.run_until(self.sim.converged, 30.0), self.why("no initial convergence")
        self.sim.on_event = self._hook
        for name in names:
            self.joined[name] = set()
        for i, name in enumerate(names):  # a starting layout: most nodes in one or both networks
            for j, net in enumerate(NETS):
                if (i + j) % 3 != 2:
                    self._join(name, net)
                    for key in range(2):
                        value = self._value(name)
                        self.sim.node(name).table(net, TABLE).put(f"{name}-k{key}", value)
                        self.owned.setdefault((name, net), {})[f"{name}-k{key}"] = value
        self.sim.run_for(2.0)

    def _hook(self, now: float, observer: str, event: MemberEvent | TableChange) -> None:
        if isinstance(event, TableChange):
            if event.kind is not ChangeKind.DELETED and event.network not in self.joined[observer]:
                self.violations.append(f"{observer} saw {event} at {now:.3f} outside {event.network}")
        elif isinstance(event, MemberJoined | MemberLeft):
            self.last_seen[(observer, event.member.name)] = type(event)

    # -- helpers -------------------------------------------------------------------------------

    def _running(self) -> list[str]:
        return self.sim.running()

    def _pick(self, candidates: list[str], index: int) -> str:
        return sorted(candidates)[index % len(candidates)]

    def _members(self, net: str) -> list[str]:
        return [n for n in self._running() if net in self.joined[n]]

    def _void(self, name: str, net: str) -> None:
        self.owned.pop((name, net), None)
        self.shared.pop((name, net), None)

    def _join(self, name: str, net: str) -> None:
        self.sim.node(name).join_network(net)
        self.joined[name].add(net)

    def _forget_life(self, name: str) -> None:
        for net in NETS:
            self._void(name, net)
        self.joined[name] = set()
        for key in [k for k in self.last_seen if k[0] == name]:
            del self.last_seen[key]  # a new process remembers nothing

    def _value(self, name: str) -> bytes:
        self.counter += 1
        return f"{name}:{self.counter}".encode()

    # -- table operations ------------------------------------------------------------------------

    @precondition(lambda self: bool(self._running()))
    @rule(index=node_index, net=net_choice, gap=gaps)
    def join_network(self, index: int, net: str, gap: float) -> None:
        self._join(self._pick(self._running(), index), net)
        self.sim.run_for(gap)

    @rule(index=node_index, net=net_choice, gap=gaps)
    def leave_network(self, index: int, net: str, gap: float) -> None:
        members = self._members(net)
        if members:
            name = self._pick(members, index)
            self.sim.node(name).leave_network(net)
            self.joined[name].discard(net)
            self._void(name, net)
        self.sim.run_for(gap)

    @rule(index=node_index, net=net_choice, key=st.integers(0, KEYS - 1), repeat=st.integers(1, 3), gap=gaps)
    def put(self, index: int, net: str, key: int, repeat: int, gap: float) -> None:
        members = self._members(net)
        if members:
            name = self._pick(members, index)
            for _ in range(repeat):
                value = self._value(name)
                self.sim.node(name).table(net, TABLE).put(f"{name}-k{key}", value)
                self.owned.setdefault((name, net), {})[f"{name}-k{key}"] = value
        self.sim.run_for(gap)

    @rule(index=node_index, net=net_choice, key=st.integers(0, KEYS - 1), gap=gaps)
    def delete(self, index: int, net: str, key: int, gap: float) -> None:
        members = self._members(net)
        if members:
            name = self._pick(members, index)
            self.sim.node(name).table(net, TABLE).delete(f"{name}-k{key}")
            own = self.owned.get((name, net), {})
            if f"{name}-k{key}" in own:
                own[f"{name}-k{key}"] = None
        self.sim.run_for(gap)

    @rule(index=node_index, net=net_choice, delete=st.booleans(), gap=gaps)
    def write_shared(self, index: int, net: str, delete: bool, gap: float) -> None:
        members = self._members(net)
        if members:
            name = self._pick(members, index)
            table = self.sim.node(name).table(net, TABLE)
            if delete:
                table.delete(SHARED)
            else:
                value = self._value(name)
                table.put(SHARED, value)
                self.shared.setdefault((name, net), set()).add(value)
        self.sim.run_for(gap)

    # -- faults --------------------------------------------------------------------------------

    @rule(p=st.floats(0.0, 0.2))
    def loss(self, p: float) -> None:
        self.sim.set_loss(p)

    @rule(groups=st.integers(2, 3), assignment=st.lists(st.integers(0, 2), min_size=8, max_size=8), gap=gaps)
    def partition(self, groups: int, assignment: list[int], gap: float) -> None:
        split: list[list[str]] = [[] for _ in range(groups)]
        for i, name in enumerate(self.sim.names):
            split[assignment[i] % groups].append(name)
        self.sim.partition([g for g in split if g])
        self.sim.run_for(gap)

    @rule(gap=gaps)
    def heal(self, gap: float) -> None:
        self.sim.heal()
        self.sim.run_for(gap)

    @precondition(lambda self: len(self._running()) > MIN_RUNNING)
    @rule(index=node_index, gap=gaps)
    def crash(self, index: int, gap: float) -> None:
        self.sim.crash(self._pick(self._running(), index))
        self.sim.run_for(gap)

    @precondition(lambda self: len(self._running()) < len(self.sim.names))
    @rule(index=node_index, gap=gaps)
    def restart(self, index: int, gap: float) -> None:
        crashed = [n for n in self.sim.names if n not in self._running()]
        name = self._pick(crashed, index)
        self._forget_life(name)
        self.left.discard(name)
        # a new process (empty state) whose seeds are the running nodes: it finds the cluster
        # even if the node it first contacts is cut off (once the partition heals)
        self.sim.restart(name)
        self.sim.join(name, [n for n in self._running() if n != name])
        self.sim.run_for(gap)

    @precondition(lambda self: len(self._running()) > MIN_RUNNING)
    @rule(index=node_index, gap=gaps)
    def leave_cluster(self, index: int, gap: float) -> None:
        name = self._pick(self._running(), index)
        self.sim.leave(name)
        self.sim.run_until(lambda: self.sim.engine(name).leave_done, 10.0)
        self.sim.crash(name)  # then the process stops
        self._forget_life(name)
        self.left.add(name)
        self.sim.run_for(gap)

    @rule(seconds=st.floats(0.5, 30.0))
    def run(self, seconds: float) -> None:
        self.sim.run_for(seconds)

    # -- checks --------------------------------------------------------------------------------

    @invariant()
    def scoped_and_read_your_writes(self) -> None:
        if not hasattr(self, "sim"):
            return
        assert not self.violations, self.why("; ".join(self.violations[:3]))
        for name in self._running():
            state = self.sim.engine(name)._tables._state  # white-box
            assert set(state.joined_networks()) == self.joined[name], self.why(f"{name} networks")
            for net in NETS:
                if net not in self.joined[name]:
                    stored = state.entries(net)
                    assert stored == [], self.why(f"non-member {name} stores {net}: {stored[:3]}")
            for (owner, net), own in self.owned.items():
                if owner == name:
                    for key, value in own.items():
                        got = state.get(net, TABLE, key)
                        assert got == value, self.why(f"{name} reads {key}={got!r}, wrote {value!r}")

    def expected(self, net: str) -> dict[tuple[str, str], tuple[bytes, str]]:
        members = set(self._members(net))
        return {
            (TABLE, key): (value, owner)
            for (owner, n), own in self.owned.items()
            if n == net and owner in members
            for key, value in own.items()
            if value is not None
        }

    def problems(self) -> list[str]:
        """What differs from the model (empty: all good)."""
        found = []
        for net in NETS:
            want = self.expected(net)
            members = self._members(net)
            views = []
            for name in members:
                live = self.sim.engine(name).tables.live_entries(net)
                views.append(dict(live))
                shared = live.pop((TABLE, SHARED), None)
                if live != want:
                    extra = {k: v for k, v in live.items() if want.get(k) != v}
                    missing = {k: v for k, v in want.items() if live.get(k) != v}
                    found.append(f"{name}/{net}: unexpected {extra}, missing {missing}")
                if shared is not None:
                    value, owner = shared
                    if owner not in members or value not in self.shared.get((owner, net), set()):
                        found.append(f"{name}/{net}: shared={shared} not written by a current member")
            if members and not self.sim.tables_converged(net):
                found.append(f"{net}: not tables_converged")
        for observer in self._running():
            state = self.sim.engine(observer)._tables._state  # white-box
            for gone in self.left:
                if self.last_seen.get((observer, gone)) is MemberLeft:
                    for net in NETS:
                        kept = [e for e in state.entries(net) if e.owner == gone]
                        if kept:
                            found.append(f"{observer} saw {gone} leave yet stores {kept[:2]}")
        return found

    def teardown(self) -> None:
        if not hasattr(self, "sim"):
            return
        sim = self.sim
        sim.heal()
        sim.set_loss(0.0)
        converged = sim.run_until(sim.converged, QUIET)
        views = {n: sim.view(n) for n in sim.running()}
        assert converged, self.why(f"membership not converged {QUIET}s after heal: {views}")
        sim.run_until(lambda: not self.problems(), QUIET, step=1.0)
        assert not self.problems(), self.why(f"tables {QUIET}s after heal: {self.problems()[:6]}")
        sim.run_for(STABLE)
        assert not self.problems(), self.why(f"tables changed while quiet: {self.problems()[:6]}")
        assert not self.violations, self.why("; ".join(self.violations[:3]))


class ShortReapMachine(TablesMachine):
    """The same with reap timers shorter than a run: tombstones, failed members' hidden entries,
    leaving attachments and departed marks all expire while the faults go on."""

    tables_config = TablesConfig(reap_interval=40.0, network_reap_interval=45.0, node_reap_interval=120.0)


def _settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def test_tables_state_machine() -> None:
    run = TablesMachine.TestCase
    run.settings = _settings()
    run().runTest()


def test_tables_state_machine_short_reap() -> None:
    run = ShortReapMachine.TestCase
    run.settings = _settings()
    run().runTest()
