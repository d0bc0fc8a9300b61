"""Shared pieces of the simulator tests: cluster builders and checkers outside the system.

Every assertion message carries `sim.describe()` (it names the seed), so a failure can be
replayed exactly: `Simulation(seed=...)` plus the same script gives the same run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs

from swimnet.config import Config
from swimnet.membership.events import MemberEvent, MemberFailed, MemberLeft, MemberSuspected
from swimnet.sim import Simulation, Uniform


def why(sim: Simulation, text: str) -> str:
    return f"{text} -- replay with {sim.describe()}"


@attrs.frozen
class Record:
    time: float
    observer: str
    kind: str
    subject: str
    incarnation: int
    subject_running: bool
    """Whether the subject was running (not crashed; stalled counts as running) right then."""


class EventLog:
    """Records membership events through `sim.on_event` (chaining any previous hook)."""

    KINDS = (MemberFailed, MemberLeft, MemberSuspected)

    def __init__(self, sim: Simulation, kinds: tuple[type, ...] | None = None) -> None:
        self.sim = sim
        self.kinds = self.KINDS if kinds is None else kinds
        self.records: list[Record] = []
        self._previous = sim.on_event
        sim.on_event = self._hook

    def _hook(self, now: float, observer: str, event: MemberEvent) -> None:
        if self._previous is not None:
            self._previous(now, observer, event)
        if isinstance(event, self.kinds):
            subject = event.member.name
            running = subject in self.sim.names and subject in self.sim.running()
            self.records.append(
                Record(now, observer, type(event).__name__, subject, event.member.incarnation, running)
            )

    def of(self, kind: str, subject: str | None = None) -> list[Record]:
        return [r for r in self.records if r.kind == kind and (subject is None or r.subject == subject)]

    def false_deaths(self) -> list[Record]:
        """MemberFailed about a node that was running when it was declared dead."""
        return [r for r in self.of("MemberFailed") if r.subject_running]


def cluster(
    seed: int,
    n: int,
    config: Config | None = None,
    *,
    timeout: float = 60.0,
    **sim_kwargs: Any,
) -> tuple[Simulation, EventLog]:
    """n nodes joined through n0 and converged."""
    sim = Simulation(seed=seed, config=config, **sim_kwargs)
    events = EventLog(sim)
    sim.add_nodes(n)
    sim.join_all("n0")
    assert sim.run_until(sim.converged, timeout), why(sim, f"{n} nodes did not converge in {timeout}s")
    return sim, events


def states_of(sim: Simulation, subject: str) -> dict[str, str | None]:
    """How every running node sees `subject` (None: not in its view, e.g. reaped)."""
    return {name: sim.view(name).get(subject) for name in sim.running() if name != subject}


def everyone_sees(sim: Simulation, subject: str, allowed: set[str | None]) -> Callable[[], bool]:
    return lambda: all(state in allowed for state in states_of(sim, subject).values())


def leave_and_stop(sim: Simulation, name: str, timeout: float = 30.0) -> None:
    """Graceful shutdown: leave, wait until the leave was transmitted, then stop the node."""
    sim.leave(name)
    done = sim.run_until(lambda: sim.node(name).leave_done, timeout)
    assert done, why(sim, f"{name}'s leave never completed")
    sim.crash(name)


# -- a scripted run for the reproducibility tests ---------------------------------------------


def scripted_run(seed: int) -> dict[str, Any]:
    """A run with every kind of fault; returns everything observable about it."""
    sim = Simulation(seed=seed, latency=Uniform(0.0002, 0.004), loss=0.05)
    events: list[tuple[float, str, str]] = []
    sim.on_event = lambda now, obs, ev: events.append((now, obs, repr(ev)))
    names = sim.add_nodes(12)
    sim.join_all("n0")
    sim.run_for(15.0)
    sim.crash("n3")
    sim.run_for(20.0)
    sim.partition([names[:5], names[5:]])
    sim.run_for(25.0)
    sim.heal()
    sim.stall("n7", 4.0)
    sim.leave("n5")
    sim.run_for(20.0)
    sim.restart("n3")
    sim.set_loss(0.15)
    sim.run_for(30.0)
    return {
        "now": sim.now,
        "delivered": sim.delivered,
        "dropped": sim.dropped,
        "stats": {name: dict(counter) for name, counter in sim.stats.items()},
        "engine_stats": {name: dict(sim.node(name).stats) for name in sim.names},
        "views": {name: sim.view(name) for name in sim.names},
        "members": {name: [repr(m) for m in sim.node(name).members()] for name in sim.names},
        "health": {name: sim.node(name).health_score for name in sim.names},
        "events": events,
    }


def digest(run: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(run.items())).encode()).hexdigest()


def unverified_are_tracked(sim: Simulation) -> None:
    """Membership's invariants that let it skip verification work when nobody is unverified:
    every member record a node holds unverified is in its admission table, and every record
    its address index holds is a member."""
    for name in sim.running():
        swim = sim.engine(name)._swim
        tracked = swim._admission.unverified
        for m in swim.members.values():
            assert m.verified or tracked.get(m.name) is m, why(sim, f"{name}: {m.name} unverified, untracked")
        for addr, m in swim._by_addr.items():
            assert swim.members.get(m.name) is m, why(sim, f"{name}: {addr} indexes a non-member {m.name}")
