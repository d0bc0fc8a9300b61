"""The pure diff: the plan that turns the table a namespace holds into the one it should hold.

    plan = lb_diff(table_for(ruleset), actual)     # () when nothing is to be done

Rules:
- nothing desired: the table is deleted if it exists (and only ours: `table ip swimnet`;
  other tables of the namespace are never named);
- no table yet: it is created whole;
- a table that cannot be repaired in place is replaced whole (delete + add in the same
  transaction): it holds objects of kinds we never create, or one of our sets or chains
  has another declaration (type, hook, priority...: the kernel cannot change those);
- otherwise the plan is incremental, in this order (each step needs the previous ones):
  1. missing sets and chains are added;
  2. a chain of ours whose rules are not exactly ours is flushed and refilled;
  3. chains we do not want are flushed (they may reference sets and chains below);
  4. per set, elements that are extra or carry another value are deleted, then missing
     or changed ones added (a changed value is delete + add of the same key);
  5. sets we do not want are deleted, then chains we do not want;
- within each step the order is by name and key, so equal inputs give equal plans.
A plan of step-4 commands only is the common case (backends come and go) and takes the
fast path (see swimnet.datapath.lb.linux).
"""

from __future__ import annotations

from collections.abc import Mapping

from swimnet.datapath.lb.ops import (
    AddChain,
    AddElements,
    AddRule,
    AddSet,
    AddTable,
    Command,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    DeleteTable,
    FlushChain,
)
from swimnet.datapath.lb.table import Data, Elements, Key, TableState, set_kind

_MISSING = object()


def lb_diff(desired: TableState | None, actual: TableState | None) -> tuple[Command, ...]:
    """The plan (see the module rules)."""
    if desired is None:
        return (DeleteTable(),) if actual is not None else ()
    if actual is None:
        return (AddTable(), *_whole(desired))
    if _needs_rebuild(desired, actual):
        return (DeleteTable(), AddTable(), *_whole(desired))
    plan: list[Command] = []
    for name in sorted(desired.sets):
        if name not in actual.sets:
            plan.append(AddSet(name, desired.sets[name], set_kind(name)))
    for name in sorted(desired.chains):
        if name not in actual.chains:
            plan.append(AddChain(name, desired.chains[name].decl))
    for name, chain in sorted(desired.chains.items()):
        have = actual.chains.get(name)
        have_rules = have.rules if have is not None else ()
        if have_rules != chain.rules:
            if have_rules:
                plan.append(FlushChain(name))
            plan.extend(AddRule(name, rule) for rule in chain.rules)
    extra_chains = sorted(set(actual.chains) - set(desired.chains))
    plan.extend(FlushChain(name) for name in extra_chains if actual.chains[name].rules)
    for name in sorted(desired.sets):
        have_elements = actual.elements.get(name, {}) if name in actual.sets else {}
        plan.extend(_elements(name, desired.elements.get(name, {}), have_elements))
    for name in sorted(set(actual.sets) - set(desired.sets)):
        plan.append(DeleteSet(name))
    plan.extend(DeleteChain(name) for name in extra_chains)
    return tuple(plan)


def _needs_rebuild(desired: TableState, actual: TableState) -> bool:
    if actual.unmanaged:
        return True
    for name, decl in desired.sets.items():
        if name in actual.sets and actual.sets[name] != decl:
            return True
    for name, chain in desired.chains.items():
        have = actual.chains.get(name)
        if have is not None and have.decl != chain.decl:
            return True
    return False


def _whole(desired: TableState) -> list[Command]:
    plan: list[Command] = [AddSet(n, d, set_kind(n)) for n, d in sorted(desired.sets.items())]
    plan += [AddChain(name, chain.decl) for name, chain in sorted(desired.chains.items())]
    for name, chain in sorted(desired.chains.items()):
        plan.extend(AddRule(name, rule) for rule in chain.rules)
    for name in sorted(desired.sets):
        plan.extend(_elements(name, desired.elements.get(name, {}), {}))
    return plan


def _elements(name: str, want: Elements, have: Mapping[Key, Data]) -> list[Command]:
    out: list[Command] = []
    gone = sorted(key for key, data in have.items() if want.get(key, _MISSING) != data)
    if gone:
        out.append(DeleteElements(name, tuple(gone)))
    new = sorted((key, data) for key, data in want.items() if have.get(key, _MISSING) != data)
    if new:
        out.append(AddElements(name, tuple(new)))
    return out
