"""The Linux load balancer: `table ip swimnet` in each container namespace, via nftables.

Programming path, chosen by measurement (benchmarks/bench_services.py, 2 vCPUs,
nftables 1.0.6; 1,000 services x 3 backends = 5,000 elements):

    full load, one transaction     libnftables text 0.05-0.09 s   `nft -f` 0.09 s
                                   JSON (`nft -j -f`, libnftables): refused / SIGSEGV
    one backend change             raw nfnetlink 0.02 ms   libnftables 4 ms   `nft -f` 12-18 ms
    dump of the table              raw nfnetlink elements + terse listing 0.01-0.03 s
                                   `nft -j list table` 0.18-0.20 s (+0.05 s json.loads)

so: the table's structure (sets, chains, rules: few, rarely changing) is listed and
written by libnftables in-process (text in, terse JSON out), and set elements (all the
volume, and every backend change) are dumped and committed over raw nfnetlink. A plan of
element changes only, the common case, is one nfnetlink batch; any other plan (a new or
repaired table, a chain or rule to fix) is one libnftables script carrying the element
changes too. Either way ONE transaction per namespace and change: the table is never
flushed and refilled in separate steps, so a VIP never misses a connection attempt while
it is updated, and established connections keep their backend (conntrack).

Rules:
- each namespace is reconciled on its own short-lived thread inside it (nsthread): the
  libnftables context and the netlink socket are made there, used, and closed, so no
  handle keeps a dead container's namespace alive;
- state comes from the kernel on every reconcile, never from memory; only our table is
  listed, changed or deleted, other tables of the namespace are never named;
- `known` holds the namespaces this object programmed: when `desired` stops listing one
  that still exists, its table is removed; a restarted agent only knows the namespaces it
  is told about (an agent is told about every container it attached);
- synchronous, not thread-safe: one call at a time (the driver's worker thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import attrs

from swimnet.datapath import netns as ns
from swimnet.datapath.lb.libnft import Nft, NftError
from swimnet.datapath.lb.model import NetnsRef, Ruleset
from swimnet.datapath.lb.nfnetlink import MAX_BATCH, NfError, NfSocket
from swimnet.datapath.lb.ops import (
    AddElements,
    ApplyFailed,
    Command,
    DeleteElements,
    LbResult,
    NamespaceGone,
    NsOutcome,
    elements_only,
)
from swimnet.datapath.lb.reconcile import reconcile_all, reconcile_one
from swimnet.datapath.lb.table import TABLE, TableState, set_decl, table_from_listing
from swimnet.datapath.lb.text import render
from swimnet.datapath.nsthread import run_in

T = TypeVar("T")


class _Session:
    """The handles of one visit to a namespace (made on first use, closed at the end)."""

    def __init__(self) -> None:
        self._nft: Nft | None = None
        self._nf: NfSocket | None = None

    @property
    def nft(self) -> Nft:
        if self._nft is None:
            self._nft = Nft()
        return self._nft

    @property
    def nf(self) -> NfSocket:
        if self._nf is None:
            self._nf = NfSocket()
        return self._nf

    def close(self) -> None:
        if self._nf is not None:
            self._nf.close()
        if self._nft is not None:
            self._nft.close()

    def dump(self) -> TableState | None:
        state = table_from_listing(self.nft.listing())
        if state is None:
            return None
        ours = [name for name, decl in state.sets.items() if decl == set_decl(name)]
        return attrs.evolve(state, elements={name: self.nf.elements(TABLE, name) for name in ours})

    def apply(self, plan: Sequence[Command]) -> str:
        try:
            if elements_only(plan):
                messages = self.nf.batch(
                    TABLE, [c for c in plan if isinstance(c, (DeleteElements, AddElements))]
                )
                if sum(len(m) for m in messages) <= MAX_BATCH:
                    self.nf.send_batch(messages)
                    return "netlink"
            self.nft.run(render(plan))
        except (NftError, NfError) as exc:
            raise ApplyFailed(str(exc)) from exc
        return "nft"


class LinuxLoadBalancer:
    """Load balancing in container namespaces (see the module rules)."""

    def __init__(self) -> None:
        self.known: set[NetnsRef] = set()

    def _visit(self, netns: NetnsRef, fn: Callable[[_Session], T]) -> T:
        path = ns.path_of(netns)
        if not os.path.exists(path):
            raise NamespaceGone(path)

        def inside() -> T:
            session = _Session()
            try:
                return fn(session)
            finally:
                session.close()

        try:
            return run_in(path, inside, name="swimnet-lb")
        except FileNotFoundError as exc:
            raise NamespaceGone(path) from exc

    def dump(self, netns: NetnsRef) -> TableState | None:
        return self._visit(netns, lambda s: s.dump())

    def apply(self, netns: NetnsRef, plan: Sequence[Command]) -> str:
        return self._visit(netns, lambda s: s.apply(plan))

    def reconcile(self, desired: Mapping[NetnsRef, Ruleset], *, keep_existing: bool = False) -> LbResult:
        def one(ref: NetnsRef, ruleset: Ruleset) -> NsOutcome:
            def inside(session: _Session) -> NsOutcome:
                return reconcile_one(ref, ruleset, session.dump, session.apply, keep_existing=keep_existing)

            try:
                return self._visit(ref, inside)
            except NamespaceGone:
                return NsOutcome(ref, gone=True)
            except Exception as exc:  # entering the namespace failed: that namespace's outcome
                return NsOutcome(ref, error=f"{type(exc).__name__}: {exc}")

        return reconcile_all(desired, self.known, one)
