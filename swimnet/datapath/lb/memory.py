"""An in-memory load balancer with the Linux one's interface, for unit tests and the simulator.

Rules (nf_tables' own, as far as the diff relies on them):
- a plan is one transaction: it is applied to a copy that replaces the namespace's table
  only when every command succeeded; a failing command fails the whole plan
  (ApplyFailed naming the command and the errno the kernel would give);
- adding what exists with the same declaration (table, set, chain) is a no-op, with
  another declaration EEXIST; deleting or flushing what is missing is ENOENT; a set or
  chain still referenced (by a rule, or by a verdict map element for chains) or a chain
  that still has rules cannot be deleted (EBUSY);
- an element key added twice with another value is EEXIST, with the same value a no-op;
  deleting a missing element is ENOENT; a `goto` needs its chain; a rule needs the sets
  it names;
- `tables` is the state itself (tests edit it to simulate hand-made drift); `gone` holds
  namespaces that do not exist; `fail(predicate, errno)` makes matching plans fail;
  `history` records every plan applied (failed or not) with the path it would take.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping, Sequence

import attrs

from swimnet.datapath.lb.model import NetnsRef, Ruleset
from swimnet.datapath.lb.ops import (
    AddChain,
    AddRule,
    AddSet,
    AddTable,
    ApplyFailed,
    Command,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    DeleteTable,
    FlushChain,
    LbResult,
    NamespaceGone,
    NsOutcome,
    elements_only,
)
from swimnet.datapath.lb.reconcile import reconcile_all, reconcile_one
from swimnet.datapath.lb.table import Chain, Data, Decl, Key, Rule, TableState


@attrs.define
class MemoryTable:
    sets: dict[str, Decl] = attrs.Factory(dict)
    chains: dict[str, Decl] = attrs.Factory(dict)
    rules: dict[str, list[Rule]] = attrs.Factory(dict)
    elements: dict[str, dict[Key, Data]] = attrs.Factory(dict)
    unmanaged: list[str] = attrs.Factory(list)

    def copy(self) -> MemoryTable:
        return MemoryTable(
            dict(self.sets),
            dict(self.chains),
            {k: list(v) for k, v in self.rules.items()},
            {k: dict(v) for k, v in self.elements.items()},
            list(self.unmanaged),
        )

    def state(self) -> TableState:
        return TableState(
            sets=dict(self.sets),
            chains={n: Chain(d, tuple(self.rules.get(n, ()))) for n, d in self.chains.items()},
            elements={n: dict(e) for n, e in self.elements.items()},
            unmanaged=tuple(sorted(self.unmanaged)),
        )


class _Refused(Exception):
    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: {os.strerror(code)}")
        self.code = code


class MemoryLoadBalancer:
    def __init__(self) -> None:
        self.tables: dict[NetnsRef, MemoryTable] = {}
        self.gone: set[NetnsRef] = set()
        self.history: list[tuple[NetnsRef, tuple[Command, ...], str]] = []
        self.known: set[NetnsRef] = set()
        self._failures: list[tuple[Callable[[NetnsRef, Sequence[Command]], bool], int]] = []

    def fail(self, predicate: Callable[[NetnsRef, Sequence[Command]], bool], code: int = errno.EIO) -> None:
        self._failures.append((predicate, code))

    def dump(self, netns: NetnsRef) -> TableState | None:
        if netns in self.gone:
            raise NamespaceGone(str(netns))
        table = self.tables.get(netns)
        return table.state() if table is not None else None

    def apply(self, netns: NetnsRef, plan: Sequence[Command]) -> str:
        if netns in self.gone:
            raise NamespaceGone(str(netns))
        path = "netlink" if elements_only(plan) else "nft"
        self.history.append((netns, tuple(plan), path))
        for predicate, code in self._failures:
            if predicate(netns, plan):
                raise ApplyFailed(f"injected failure: {os.strerror(code)}")
        table = self.tables.get(netns)
        work = table.copy() if table is not None else None
        for command in plan:
            try:
                work = _apply(work, command)
            except _Refused as exc:
                raise ApplyFailed(f"{command!r}: {exc}") from None
        if work is None:
            self.tables.pop(netns, None)
        else:
            self.tables[netns] = work
        return path

    def reconcile(self, desired: Mapping[NetnsRef, Ruleset], *, keep_existing: bool = False) -> LbResult:
        def one(ref: NetnsRef, ruleset: Ruleset) -> NsOutcome:
            return reconcile_one(
                ref,
                ruleset,
                lambda: self.dump(ref),
                lambda plan: self.apply(ref, plan),
                keep_existing=keep_existing,
            )

        return reconcile_all(desired, self.known, one)


def _referenced(table: MemoryTable, needle: str) -> bool:
    return any(needle in rule.listed for rules in table.rules.values() for rule in rules)


def _apply(table: MemoryTable | None, c: Command) -> MemoryTable | None:
    if isinstance(c, AddTable):
        return table if table is not None else MemoryTable()
    if isinstance(c, DeleteTable):
        return None
    if table is None:
        raise _Refused(errno.ENOENT, "table")
    if isinstance(c, AddSet):
        if c.name in table.sets and table.sets[c.name] != c.decl:
            raise _Refused(errno.EEXIST, f"set {c.name}")
        if c.name not in table.sets:
            table.sets[c.name] = c.decl
            table.elements[c.name] = {}
    elif isinstance(c, DeleteSet):
        if c.name not in table.sets:
            raise _Refused(errno.ENOENT, f"set {c.name}")
        if _referenced(table, f'"@{c.name}"'):
            raise _Refused(errno.EBUSY, f"set {c.name}")
        del table.sets[c.name]
        table.elements.pop(c.name, None)
    elif isinstance(c, AddChain):
        if c.name in table.chains and table.chains[c.name] != c.decl:
            raise _Refused(errno.EEXIST, f"chain {c.name}")
        table.chains.setdefault(c.name, c.decl)
    elif isinstance(c, FlushChain):
        if c.name not in table.chains:
            raise _Refused(errno.ENOENT, f"chain {c.name}")
        table.rules[c.name] = []
    elif isinstance(c, DeleteChain):
        _delete_chain(table, c.name)
    elif isinstance(c, AddRule):
        if c.chain not in table.chains:
            raise _Refused(errno.ENOENT, f"chain {c.chain}")
        for name in table_set_names(c.rule):
            if name not in table.sets:
                raise _Refused(errno.ENOENT, f"set {name}")
        table.rules.setdefault(c.chain, []).append(c.rule)
    elif isinstance(c, DeleteElements):
        elements = _elements(table, c.set)
        for key in c.keys:
            if key not in elements:
                raise _Refused(errno.ENOENT, f"element of {c.set}")
            del elements[key]
    else:
        elements = _elements(table, c.set)
        for key, data in c.items:
            if key in elements and elements[key] != data:
                raise _Refused(errno.EEXIST, f"element of {c.set}")
            if isinstance(data, str) and data not in table.chains:
                raise _Refused(errno.ENOENT, f"chain {data}")
            elements[key] = data
    return table


def _delete_chain(table: MemoryTable, name: str) -> None:
    if name not in table.chains:
        raise _Refused(errno.ENOENT, f"chain {name}")
    used = any(data == name for e in table.elements.values() for data in e.values())
    if table.rules.get(name) or used or _referenced(table, f'"target":"{name}"'):
        raise _Refused(errno.EBUSY, f"chain {name}")
    del table.chains[name]
    table.rules.pop(name, None)


def _elements(table: MemoryTable, name: str) -> dict[Key, Data]:
    if name not in table.sets:
        raise _Refused(errno.ENOENT, f"set {name}")
    return table.elements.setdefault(name, {})


def table_set_names(rule: Rule) -> list[str]:
    """The sets a rule's listing names (`"@name"` strings)."""
    names: list[str] = []
    text = rule.listed
    start = text.find('"@')
    while start >= 0:
        end = text.find('"', start + 2)
        names.append(text[start + 2 : end])
        start = text.find('"@', end + 1)
    return names
