"""One namespace's reconcile: dump -> pure diff -> apply, shared by both load balancers.

Rules:
- every reconcile starts from `dump()`: what the kernel (or the in-memory table) holds
  now, never what an earlier reconcile meant to do (the Linux dump answers from a state it
  read or committed only while the kernel's ruleset generation attests that nothing has
  changed since), so hand-made changes are undone and a restarted agent removes exactly
  what it no longer wants in the namespaces it reconciles;
- a plan is applied whole, as one transaction, or not at all;
- `keep_existing` (the driver's startup grace) leaves a namespace that already has our
  table as it is (counted as deferred) and only fills namespaces that have none;
- one namespace's failure is its outcome's `error`, never an exception: the others go on;
  a namespace that no longer exists is `gone`, not an error; a Conflict (the ruleset
  changed between dump and commit) is dumped, diffed and applied again, a few times;
- `reconcile_all` visits every namespace of `desired` and every namespace in `known` (those
  this process may have programmed); a known namespace `desired` no longer lists gets an
  empty Ruleset, i.e. our table is removed; a namespace leaves `known` once it is gone or
  holds no table of ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from swimnet.datapath.lb.diff import lb_diff
from swimnet.datapath.lb.model import NetnsRef, Ruleset
from swimnet.datapath.lb.ops import (
    ApplyFailed,
    Command,
    Conflict,
    LbResult,
    NamespaceGone,
    NsOutcome,
    element_count,
)
from swimnet.datapath.lb.table import TableState, table_for

EMPTY = Ruleset()
CONFLICT_ATTEMPTS = 3


def reconcile_one(
    netns: NetnsRef,
    ruleset: Ruleset,
    dump: Callable[[], TableState | None],
    apply: Callable[[Sequence[Command]], str],
    *,
    keep_existing: bool = False,
) -> NsOutcome:
    """Dump, diff, apply for one namespace (see the module rules)."""
    try:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            actual = dump()
            plan = lb_diff(table_for(ruleset), actual)
            if not plan:
                return NsOutcome(netns)
            if keep_existing and actual is not None:
                return NsOutcome(netns, deferred=True)
            try:
                path = apply(plan)
                break
            except Conflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
    except NamespaceGone:
        return NsOutcome(netns, gone=True)
    except Exception as exc:  # one namespace's failure never stops the others
        message = str(exc) if isinstance(exc, ApplyFailed) else f"{type(exc).__name__}: {exc}"
        return NsOutcome(netns, error=message)
    return NsOutcome(netns, len(plan), element_count(plan), path)


def reconcile_all(
    desired: Mapping[NetnsRef, Ruleset],
    known: set[NetnsRef],
    one: Callable[[NetnsRef, Ruleset], NsOutcome],
) -> LbResult:
    """Reconcile every namespace of `desired` and `known`; updates `known` (see the rules)."""
    outcomes: list[NsOutcome] = []
    for ref in sorted(set(desired) | known, key=str):
        ruleset = desired.get(ref, EMPTY)
        outcome = one(ref, ruleset)
        outcomes.append(outcome)
        if outcome.gone or (ruleset.empty and outcome.error is None and not outcome.deferred):
            known.discard(ref)
        else:
            known.add(ref)
    return LbResult(tuple(outcomes))
