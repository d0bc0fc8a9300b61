"""Load balancer commands, their outcome, and the interface both load balancers provide.

Rules:
- a command is a frozen value naming one change to our table in one namespace; `lb_diff`
  produces a plan (a sequence of them), a load balancer applies the whole plan as ONE
  nftables transaction: every command happens or none does, and packets see the table
  before or after it, never in between;
- a plan of element commands only may go through the fast path (raw nfnetlink); any other
  plan goes through libnftables (see swimnet.datapath.lb.linux); both are one transaction;
- a namespace that no longer exists is not an error (`gone`): its container went away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from swimnet.datapath.lb.model import NetnsRef, Ruleset
from swimnet.datapath.lb.table import Data, Decl, Key, Rule, TableState


@attrs.frozen
class AddTable:
    pass


@attrs.frozen
class DeleteTable:
    pass


@attrs.frozen
class AddSet:
    name: str
    decl: Decl
    kind: str
    """"set" or "map"."""


@attrs.frozen
class DeleteSet:
    """Delete a set or a map (nft's `delete set` takes both)."""

    name: str


@attrs.frozen
class AddChain:
    name: str
    decl: Decl


@attrs.frozen
class FlushChain:
    name: str


@attrs.frozen
class DeleteChain:
    name: str


@attrs.frozen
class AddRule:
    chain: str
    rule: Rule


@attrs.frozen
class DeleteElements:
    set: str
    keys: tuple[Key, ...]


@attrs.frozen
class AddElements:
    set: str
    items: tuple[tuple[Key, Data], ...]


Command = (
    AddTable | DeleteTable | AddSet | DeleteSet | AddChain | FlushChain | DeleteChain | AddRule
    | DeleteElements | AddElements
)  # fmt: skip
ELEMENT_COMMANDS = (DeleteElements, AddElements)


def elements_only(plan: Sequence[Command]) -> bool:
    return all(isinstance(c, ELEMENT_COMMANDS) for c in plan)


def element_count(plan: Sequence[Command]) -> int:
    return sum(
        len(c.keys) if isinstance(c, DeleteElements) else len(c.items)
        for c in plan
        if isinstance(c, ELEMENT_COMMANDS)
    )


class NamespaceGone(Exception):
    """The namespace to program does not exist (any more)."""


class ApplyFailed(Exception):
    """The transaction was refused; nothing of it happened."""


class Conflict(ApplyFailed):
    """Someone changed the namespace's ruleset between the dump a plan was made from and
    its commit; nothing of it happened, and dumping again gives a plan that applies."""


@attrs.frozen
class NsOutcome:
    """What one namespace's reconcile did."""

    netns: NetnsRef
    commands: int = 0
    """Commands applied (0: nothing to do, or it failed)."""
    elements: int = 0
    path: str = ""
    """"netlink" or "nft" when something was applied."""
    error: str | None = None
    gone: bool = False
    deferred: bool = False
    """A change was held back (keep_existing)."""


@attrs.frozen
class LbResult:
    outcomes: tuple[NsOutcome, ...] = ()

    @property
    def ok(self) -> bool:
        return not any(o.error for o in self.outcomes)

    @property
    def errors(self) -> tuple[NsOutcome, ...]:
        return tuple(o for o in self.outcomes if o.error)

    @property
    def changed(self) -> int:
        """Namespaces whose table changed."""
        return sum(1 for o in self.outcomes if o.commands)

    @property
    def deferred(self) -> int:
        return sum(1 for o in self.outcomes if o.deferred)


class LoadBalancer(Protocol):
    """What the driver drives: the Linux load balancer and the in-memory one both provide it."""

    def dump(self, netns: NetnsRef) -> TableState | None:
        """Our table in a namespace (None: none); NamespaceGone when the namespace is."""
        ...

    def apply(self, netns: NetnsRef, plan: Sequence[Command]) -> str:
        """Apply a plan as one transaction; returns the path taken; raises ApplyFailed or
        NamespaceGone."""
        ...

    def reconcile(self, desired: Mapping[NetnsRef, Ruleset], *, keep_existing: bool = False) -> LbResult:
        """Make every namespace of `desired` hold its Ruleset, and empty the namespaces this
        object programmed earlier that `desired` no longer lists."""
        ...
