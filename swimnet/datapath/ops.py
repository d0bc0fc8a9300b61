"""Datapath operations, the result of applying them, and the interface every datapath has.

Rules:
- an op is a frozen value naming one kernel change; `diff` produces them, a datapath
  applies them in the given order;
- entry ops address the VXLAN device of the sandbox namespace they name; FDB and neighbour
  writes have replace semantics (create or overwrite), deletes are idempotent (an entry that
  is already gone counts as deleted);
- `apply` never stops at the first failure and never drops one: every failed op is in
  `ApplyResult.errors` with the errno and the kernel's message; `raise_for_errors()` turns
  them into one DatapathError.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import attrs

from swimnet.datapath.actual import ActualState
from swimnet.datapath.model import DesiredState, LocalEndpoint, Sandbox
from swimnet.datapath.watch import Watch
from swimnet.errors import DatapathError


@attrs.frozen
class CreateNamespace:
    netns: str


@attrs.frozen
class CreateBridge:
    """Create the bridge with its MTU and address, and bring it up."""

    sandbox: Sandbox


@attrs.frozen
class SetBridge:
    """Bring an existing bridge to the sandbox's MTU, up, and exactly its IPv4 address."""

    sandbox: Sandbox


@attrs.frozen
class CreateVxlan:
    """Create the VXLAN device in the host namespace, move it in, enslave it, bring it up."""

    sandbox: Sandbox


@attrs.frozen
class SetVxlan:
    """Enslave an existing VXLAN device to the bridge, set its MTU and bring it up."""

    sandbox: Sandbox


@attrs.frozen
class DeleteLink:
    netns: str
    ifname: str


@attrs.frozen
class DeleteHostLink:
    """Delete a leftover `swv<vni>` device from the host namespace."""

    ifname: str


@attrs.frozen
class ReplaceFdb:
    netns: str
    mac: str
    vtep: str


@attrs.frozen
class AppendFdb:
    """Add one more VTEP to a MAC (the all-zeros flood MAC has one entry per remote VTEP)."""

    netns: str
    mac: str
    vtep: str


@attrs.frozen
class DeleteFdb:
    netns: str
    mac: str
    vtep: str


@attrs.frozen
class ReplaceNeigh:
    netns: str
    ip: str
    mac: str


@attrs.frozen
class DeleteNeigh:
    netns: str
    ip: str


@attrs.frozen
class DeleteLearned:
    """Delete a MAC the bridge learned on the VXLAN port (stale after an endpoint left)."""

    netns: str
    mac: str


@attrs.frozen
class DeleteNamespace:
    netns: str


DeviceOp = CreateNamespace | CreateBridge | SetBridge | CreateVxlan | SetVxlan | DeleteLink | DeleteHostLink
EntryOp = ReplaceFdb | AppendFdb | DeleteFdb | ReplaceNeigh | DeleteNeigh | DeleteLearned
Op = DeviceOp | EntryOp | DeleteNamespace
ENTRY_OPS = (ReplaceFdb, AppendFdb, DeleteFdb, ReplaceNeigh, DeleteNeigh, DeleteLearned)


@attrs.frozen
class OpError:
    op: Op
    errno: int
    """Positive errno, 0 when the failure was not the kernel's (e.g. a missing device)."""
    message: str


@attrs.frozen
class ApplyResult:
    attempted: int
    errors: tuple[OpError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def applied(self) -> int:
        return self.attempted - len(self.errors)

    def __add__(self, other: ApplyResult) -> ApplyResult:
        return ApplyResult(self.attempted + other.attempted, self.errors + other.errors)

    def raise_for_errors(self) -> None:
        if self.errors:
            shown = "; ".join(f"{e.op}: {e.message}" for e in self.errors[:5])
            more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
            raise DatapathError(f"{len(self.errors)} of {self.attempted} datapath ops failed: {shown}{more}")


class Datapath(Protocol):
    """What the datapath driver drives: the Linux datapath and the in-memory one both provide it."""

    node_tag: str

    def dump(self, sandboxes: Collection[str] | None = None) -> ActualState:
        """What the datapath holds: everything, or only the named sandboxes (then without
        the host's leftovers)."""
        ...

    def apply(self, ops: Sequence[Op]) -> ApplyResult: ...

    def reconcile(self, desired: DesiredState) -> ApplyResult: ...

    def attach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> str: ...

    def attached(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> bool:
        """Whether `endpoint` is plugged into `sandbox` already (same interface name and MAC
        in its container, its veth on the bridge): then `attach` would only disturb it."""
        ...

    def detach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> None: ...

    def watch(self) -> Watch:
        """A new source of the changes others make to this datapath's sandboxes."""
        ...
