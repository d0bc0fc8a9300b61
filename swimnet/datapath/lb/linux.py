"""The Linux load balancer: `table ip swimnet` in each container namespace, via nftables.

Programming path, chosen by measurement (benchmarks/bench_services.py; 2 shared vCPUs,
kernel 6.18, nftables 1.0.6; 1,000 services x 3 backends = 5,000 elements; min of runs):

    full load, one transaction    libnftables text 59-75 ms   `nft -f -` 46-91 ms
                                  JSON (`nft -j -f -`): refused, "Invalid map type
                                  'ipv4_addr . inet_service'" (and SIGSEGV with the
                                  earlier typeof layout: never in-process)
    one backend change            raw nfnetlink 0.02 ms   libnftables 0.17 ms (context
                                  kept)   `nft -f -` 8-16 ms (process + cache load)
    reading the table back        terse listing + raw nfnetlink elements 8-13 ms
                                  `nft -j list table` 180-217 ms, libnftables JSON
                                  187-216 ms (nft decodes every element: ~40 us each)

so the table's structure (sets, chains, rules: few, rarely changing) is listed and
written by libnftables in-process (text in, terse JSON out), and set elements (all the
volume, and every backend change) are read and committed over raw nfnetlink. A plan of
element changes only, the common case, is one nfnetlink batch; any other plan (a new or
repaired table, a chain or rule to fix) is one libnftables script carrying the element
changes too. Either way ONE transaction per namespace and change: the table is never
flushed and refilled in separate steps, so a VIP never misses a connection attempt while
it is updated, and established connections keep their backend (conntrack).

Rules:
- each namespace is visited on a short-lived thread inside it (nsthread); its libnftables
  context and nfnetlink socket are made there on the first visit and kept for the next
  ones: closing an nf_tables socket right after a commit in its namespace waits for the
  kernel's transaction cleanup (an RCU grace period, 4-20 ms measured), which made one
  backend change in 100 namespaces cost 1-2 s;
- kept handles pin their namespace, so they are closed as soon as the namespace is gone
  (its name or /proc/<pid> vanished: checked on every visit), replaced (another namespace
  now at that path: compared by inode), or no longer wanted (it left `known`), and by
  `close()`; the driver's periodic reconcile bounds how long a dead container's namespace
  stays pinned; two descriptors per namespace;
- state comes from the kernel, never from what this object did: every visit asks the
  namespace's ruleset generation (which any commit there, by anyone, advances); the table
  is read again unless the generation is the one at which we last read it or committed to
  it (then the kernel attests it is unchanged, and the dump costs one round trip); a read
  during which the generation moved is repeated; element batches are committed against
  the generation they were planned from, so a hand edit in between makes the kernel
  refuse the batch (Conflict) and the plan is made again from a new dump;
- only our table is listed, changed or deleted, other tables of the namespace are never
  named; `known` holds the namespaces this object programmed: when `desired` stops
  listing one that still exists, its table is removed; a restarted agent only knows the
  namespaces it is told about (an agent is told about every container it attached);
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
from swimnet.datapath.lb.nfnetlink import MAX_BATCH, GenerationChanged, NfError, NfSocket
from swimnet.datapath.lb.ops import (
    AddElements,
    ApplyFailed,
    Command,
    Conflict,
    DeleteElements,
    LbResult,
    NamespaceGone,
    NsOutcome,
    elements_only,
)
from swimnet.datapath.lb.reconcile import reconcile_all, reconcile_one
from swimnet.datapath.lb.table import TABLE, TableState, set_decl, table_for, table_from_listing
from swimnet.datapath.lb.text import render
from swimnet.datapath.nsthread import run_in

T = TypeVar("T")
DUMP_ATTEMPTS = 3


class _Handles:
    """The kept handles of one namespace (made inside it on first use), and the table the
    namespace held at a known ruleset generation."""

    def __init__(self, inode: tuple[int, int]) -> None:
        self.inode = inode
        self._nft: Nft | None = None
        self._nf: NfSocket | None = None
        self.known: tuple[int, TableState | None] | None = None
        """(generation, our table then): read by a dump, or left by our own commit."""
        self.read_at: int | None = None
        """The generation the state of the current visit was read at."""
        self.dumps = 0

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

    def forget(self) -> None:
        """Drop the remembered table: the next dump reads the kernel."""
        self.known = None

    def close(self) -> None:
        if self._nf is not None:
            self._nf.close()
            self._nf = None
        if self._nft is not None:
            self._nft.close()
            self._nft = None

    def dump(self) -> TableState | None:
        """Our table; read from the kernel unless its generation shows it unchanged since
        the state we hold, and read again if a commit lands while reading."""
        generation = self.nf.generation()
        if self.known is not None and self.known[0] == generation:
            self.read_at = generation
            return self.known[1]
        self.known = self.read_at = None
        for _ in range(DUMP_ATTEMPTS):
            state = self._read()
            self.dumps += 1
            after = self.nf.generation()
            if after == generation:  # nothing committed while reading: a consistent state
                self.known = (generation, state)
                self.read_at = generation
                return state
            generation = after
        return state  # kept changing: used once, never trusted later (nor committed against)

    def _read(self) -> TableState | None:
        state = table_from_listing(self.nft.listing())
        if state is None:
            return None
        ours = [name for name, decl in state.sets.items() if decl == set_decl(name)]
        return attrs.evolve(state, elements={name: self.nf.elements(TABLE, name) for name in ours})

    def apply(self, plan: Sequence[Command], result: TableState | None = None) -> str:
        """Apply a plan made from the state `dump` returned last; `result` is the table it
        leaves (None: unknown, the next visit dumps)."""
        read_at, self.known = self.read_at, None
        try:
            if elements_only(plan) and read_at is not None:
                changes = [c for c in plan if isinstance(c, (DeleteElements, AddElements))]
                messages = self.nf.batch(TABLE, changes)
                if sum(len(m) for m in messages) <= MAX_BATCH:
                    self.nf.send_batch(messages, generation=read_at)
                    if result is not None:
                        self.known = (_next(read_at), result)
                    return "netlink"
            self.nft.run(render(plan))
        except GenerationChanged as exc:
            raise Conflict(str(exc)) from exc
        except (NftError, NfError) as exc:
            raise ApplyFailed(str(exc)) from exc
        return "nft"


def _next(generation: int) -> int:
    """The generation after one commit (the kernel skips 0 when it wraps)."""
    return (generation + 1) & 0xFFFFFFFF or 1


class LinuxLoadBalancer:
    """Load balancing in container namespaces (see the module rules)."""

    def __init__(self, *, trust_generation: bool = True) -> None:
        self.known: set[NetnsRef] = set()
        self.trust_generation = trust_generation
        """False: read the table on every visit, even when the generation says it is
        unchanged (for measurements and suspicion; commits stay generation-checked)."""
        self._handles: dict[str, _Handles] = {}
        """By namespace path."""

    def _visit(self, netns: NetnsRef, fn: Callable[[_Handles], T]) -> T:
        path = ns.path_of(netns)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._drop(path)
            raise NamespaceGone(path) from None
        inode = (info.st_dev, info.st_ino)
        handles = self._handles.get(path)
        if handles is not None and handles.inode != inode:
            self._drop(path)  # another namespace lives at that path now
            handles = None
        if handles is None:
            handles = self._handles[path] = _Handles(inode)
        if not self.trust_generation:
            handles.forget()
        held = handles
        try:
            return run_in(path, lambda: fn(held), name="swimnet-lb")
        except FileNotFoundError as exc:
            self._drop(path)
            raise NamespaceGone(path) from exc

    def _drop(self, path: str) -> None:
        handles = self._handles.pop(path, None)
        if handles is not None:
            handles.close()

    def close(self) -> None:
        """Close every kept handle (the tables stay in the kernel)."""
        for path in list(self._handles):
            self._drop(path)

    def dump(self, netns: NetnsRef) -> TableState | None:
        return self._visit(netns, lambda h: h.dump())

    def apply(self, netns: NetnsRef, plan: Sequence[Command]) -> str:
        return self._visit(netns, lambda h: h.apply(plan))

    def reconcile(self, desired: Mapping[NetnsRef, Ruleset], *, keep_existing: bool = False) -> LbResult:
        def one(ref: NetnsRef, ruleset: Ruleset) -> NsOutcome:
            def inside(handles: _Handles) -> NsOutcome:
                want = table_for(ruleset)
                return reconcile_one(
                    ref,
                    ruleset,
                    handles.dump,
                    lambda plan: handles.apply(plan, want),
                    keep_existing=keep_existing,
                )

            try:
                return self._visit(ref, inside)
            except NamespaceGone:
                return NsOutcome(ref, gone=True)
            except Exception as exc:  # entering the namespace failed: that namespace's outcome
                return NsOutcome(ref, error=f"{type(exc).__name__}: {exc}")

        result = reconcile_all(desired, self.known, one)
        wanted = {ns.path_of(ref) for ref in (*desired, *self.known)}
        for path in [p for p in self._handles if p not in wanted]:
            self._drop(path)
        return result
