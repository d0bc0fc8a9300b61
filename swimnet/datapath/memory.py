"""An in-memory datapath with the Linux one's interface, for the simulator and unit tests.

Rules (the kernel's, as far as the diff relies on them):
- ops on a missing namespace or device fail (ENOENT / ENODEV), except deletes, which are
  idempotent; creating what exists fails with EEXIST;
- FDB replace of a MAC with remotes rewrites its first remote in place (the VXLAN driver's
  NLM_F_REPLACE); append adds a remote; delete with a VTEP removes that remote only;
- a VXLAN device is created in the "host" and moved in, so a second device with the same
  VNI and port on this node fails with EEXIST, and a leftover `swv<vni>` is replaced;
- `fail(predicate, errno)` makes matching ops fail, for testing error paths;
- the `sandboxes` and `host_vxlans` attributes are the state itself: tests edit them to
  simulate drift made by hand; edits made inside `with datapath.by_hand() as sandboxes:`
  are also reported to the watches, like the kernel's notifications of an administrator's
  `bridge fdb del` or `ip link del` (edits made outside it are found by a reconcile only);
- `watch()` returns a QueueWatch that gets the changes of every `apply()` and `by_hand()`
  edit, computed from the state before and after (FDB pairs and neighbours written or
  deleted, the bridge and the VXLAN device made, changed or deleted, a sandbox gone); an
  apply reports its changes when it ends, as the kernel has before its last ACK.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Collection, Iterator, Sequence

import attrs

from swimnet.datapath import names
from swimnet.datapath.actual import ActualState, BridgeState, SandboxState, VxlanState
from swimnet.datapath.diff import diff
from swimnet.datapath.model import DesiredState, LocalEndpoint, Sandbox
from swimnet.datapath.names import BRIDGE, VXLAN
from swimnet.datapath.ops import (
    AppendFdb,
    ApplyResult,
    CreateBridge,
    CreateNamespace,
    CreateVxlan,
    DeleteFdb,
    DeleteHostLink,
    DeleteLearned,
    DeleteLink,
    DeleteNamespace,
    DeleteNeigh,
    Op,
    OpError,
    ReplaceFdb,
    ReplaceNeigh,
    SetBridge,
    SetVxlan,
)
from swimnet.datapath.watch import Change, FdbChange, LinkChange, NeighChange, QueueWatch, SandboxGone
from swimnet.errors import DatapathError, LocalProtocolError


@attrs.define
class MemorySandbox:
    bridge: BridgeState | None = None
    vxlan: VxlanState | None = None
    fdb: dict[str, list[str]] = attrs.Factory(dict)
    """MAC -> remotes, in kernel order."""
    neighbours: dict[str, str] = attrs.Factory(dict)
    learned: set[str] = attrs.Factory(set)
    ports: dict[str, LocalEndpoint] = attrs.Factory(dict)
    """Sandbox-side veth name -> the attached endpoint."""


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class MemoryDatapath:
    def __init__(self, node_tag: str) -> None:
        self.node_tag = names.check_tag(node_tag)
        self.sandboxes: dict[str, MemorySandbox] = {}
        self.host_vxlans: set[str] = set()
        self.history: list[Op] = []
        """Every op applied, failed or not, in order."""
        self._failures: list[tuple[Callable[[Op], bool], int]] = []
        self._watches: list[QueueWatch] = []

    def watch(self) -> QueueWatch:
        """A watch of this datapath's sandboxes (see the module rules)."""
        watch = QueueWatch()
        self._watches.append(watch)
        return watch

    @contextlib.contextmanager
    def by_hand(self) -> Iterator[dict[str, MemorySandbox]]:
        """Edit the state as an administrator would; the watches see what changed."""
        with self._reported():
            yield self.sandboxes

    @contextlib.contextmanager
    def _reported(self) -> Iterator[None]:
        self._watches = [w for w in self._watches if not w.closed]
        before = self.dump() if self._watches else None
        try:
            yield
        finally:
            if before is not None:
                found = changes(before, self.dump())
                for watch in self._watches:
                    watch.push(found)

    def fail(self, predicate: Callable[[Op], bool], code: int = errno.EIO) -> None:
        self._failures.append((predicate, code))

    def dump(self, sandboxes: Collection[str] | None = None) -> ActualState:
        """Everything, or only the named sandboxes (and then no host leftovers)."""
        if sandboxes is not None:
            full = self.dump()
            only = {n: s for n, s in full.sandboxes.items() if n in sandboxes}
            return ActualState(self.node_tag, only)
        found = {
            name: SandboxState(
                name,
                bridge=box.bridge,
                vxlan=box.vxlan,
                fdb=frozenset((mac, vtep) for mac, remotes in box.fdb.items() for vtep in remotes)
                if box.vxlan
                else frozenset(),
                neighbours=dict(box.neighbours) if box.vxlan else {},
                learned=frozenset(box.learned) if box.vxlan else frozenset(),
            )
            for name, box in self.sandboxes.items()
        }
        return ActualState(self.node_tag, found, frozenset(self.host_vxlans))

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        with self._reported():
            return self._apply_all(ops)

    def _apply_all(self, ops: Sequence[Op]) -> ApplyResult:
        errors: list[OpError] = []
        for op in ops:
            self.history.append(op)
            try:
                for predicate, code in self._failures:
                    if predicate(op):
                        raise _Failed(code, f"injected failure: {os.strerror(code)}")
                self._apply(op)
            except _Failed as exc:
                errors.append(OpError(op, exc.code, str(exc)))
        return ApplyResult(len(ops), tuple(errors))

    def reconcile(self, desired: DesiredState) -> ApplyResult:
        return self.apply(diff(desired, self.dump()))

    def _box(self, netns: str, *, vxlan: bool = False) -> MemorySandbox:
        box = self.sandboxes.get(netns)
        if box is None:
            raise _Failed(errno.ENOENT, f"namespace {netns} does not exist")
        if vxlan and box.vxlan is None:
            raise _Failed(errno.ENODEV, f"no {names.VXLAN} in {netns}")
        return box

    def _apply(self, op: Op) -> None:
        if isinstance(op, (DeleteFdb, DeleteNeigh, DeleteLearned)):
            box = self.sandboxes.get(op.netns)
            if box is not None and box.vxlan is not None:
                _delete_entry(box, op)
        elif isinstance(op, (ReplaceFdb, AppendFdb)):
            remotes = self._box(op.netns, vxlan=True).fdb.setdefault(op.mac, [])
            if op.vtep not in remotes:
                if isinstance(op, ReplaceFdb) and remotes:
                    remotes[0] = op.vtep
                else:
                    remotes.append(op.vtep)
        elif isinstance(op, ReplaceNeigh):
            self._box(op.netns, vxlan=True).neighbours[op.ip] = op.mac
        elif isinstance(op, CreateNamespace):
            if op.netns in self.sandboxes:
                raise _Failed(errno.EEXIST, f"namespace {op.netns} exists")
            self.sandboxes[op.netns] = MemorySandbox()
        elif isinstance(op, DeleteNamespace):
            self.sandboxes.pop(op.netns, None)
        elif isinstance(op, (CreateBridge, SetBridge)):
            self._bridge(op)
        elif isinstance(op, (CreateVxlan, SetVxlan)):
            self._vxlan(op)
        elif isinstance(op, DeleteLink):
            box = self.sandboxes.get(op.netns)
            if box is not None and op.ifname == names.VXLAN:
                box.vxlan = None
                box.fdb.clear()
                box.neighbours.clear()
                box.learned.clear()
            elif box is not None and op.ifname == names.BRIDGE:
                box.bridge = None
                if box.vxlan is not None:
                    box.vxlan = attrs.evolve(box.vxlan, master=None)
        elif isinstance(op, DeleteHostLink):
            self.host_vxlans.discard(op.ifname)

    def _bridge(self, op: CreateBridge | SetBridge) -> None:
        s = op.sandbox
        box = self._box(s.netns)
        if isinstance(op, CreateBridge) and box.bridge is not None:
            raise _Failed(errno.EEXIST, f"{s.bridge} exists in {s.netns}")
        if isinstance(op, SetBridge) and box.bridge is None:
            raise _Failed(errno.ENODEV, f"no {s.bridge} in {s.netns}")
        addresses = frozenset([s.bridge_address] if s.bridge_address else [])
        box.bridge = BridgeState(mtu=s.mtu, up=True, addresses=addresses)

    def _vxlan(self, op: CreateVxlan | SetVxlan) -> None:
        s = op.sandbox
        box = self._box(s.netns)
        if isinstance(op, CreateVxlan):
            self.host_vxlans.discard(s.host_vxlan)
            if box.vxlan is not None:
                raise _Failed(errno.EEXIST, f"{s.vxlan} exists in {s.netns}")
            for other in self.sandboxes.values():
                vx = other.vxlan
                if vx is not None and (vx.vni, vx.port) == (s.vni, s.port):
                    raise _Failed(errno.EEXIST, f"VNI {s.vni} port {s.port} is in use")
            box.vxlan = VxlanState(s.vni, s.port, s.local_vtep, False, True, s.mtu, False, None)
            box.fdb.clear()  # a new device starts without entries
            box.neighbours.clear()
            box.learned.clear()
        elif box.vxlan is None:
            raise _Failed(errno.ENODEV, f"no {s.vxlan} in {s.netns}")
        if box.bridge is None:
            raise _Failed(errno.ENODEV, f"no {s.bridge} in {s.netns}")
        box.vxlan = attrs.evolve(box.vxlan, mtu=s.mtu, up=True, master=s.bridge)

    def attach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> str:
        if endpoint.network != sandbox.network:
            raise LocalProtocolError(f"attach {endpoint.endpoint_id}: not on network {sandbox.network}")
        box = self.sandboxes.get(sandbox.netns)
        if box is None or box.bridge is None:
            raise DatapathError(f"attach {endpoint.endpoint_id}: sandbox {sandbox.netns} does not exist")
        for other in self.sandboxes.values():
            for ep in other.ports.values():
                clash = (ep.netns, ep.ifname) == (endpoint.netns, endpoint.ifname)
                if clash and ep.endpoint_id != endpoint.endpoint_id:
                    raise DatapathError(f"attach {endpoint.endpoint_id}: {endpoint.ifname} is taken")
        veth = names.veth_name(endpoint.endpoint_id)
        box.ports[veth] = endpoint
        return veth

    def attached(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> bool:
        box = self.sandboxes.get(sandbox.netns)
        if box is None or box.bridge is None:
            return False
        port = box.ports.get(names.veth_name(endpoint.endpoint_id))
        return port is not None and (port.netns, port.ifname, port.mac) == (
            endpoint.netns,
            endpoint.ifname,
            endpoint.mac,
        )

    def detach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
        box = self.sandboxes.get(sandbox.netns)
        if box is not None:
            box.ports.pop(names.veth_name(endpoint.endpoint_id), None)


def _delete_entry(box: MemorySandbox, op: DeleteFdb | DeleteNeigh | DeleteLearned) -> None:
    if isinstance(op, DeleteNeigh):
        box.neighbours.pop(op.ip, None)
    elif isinstance(op, DeleteLearned):
        box.learned.discard(op.mac)
    else:
        remotes = box.fdb.get(op.mac, [])
        if op.vtep in remotes:
            remotes.remove(op.vtep)
        if not remotes:
            box.fdb.pop(op.mac, None)


def changes(before: ActualState, after: ActualState) -> list[Change]:
    """What a kernel would have notified for the difference between two states."""
    out: list[Change] = []
    for netns in sorted(before.sandboxes.keys() | after.sandboxes.keys()):
        new = after.sandboxes.get(netns)
        if new is None:
            out.append(SandboxGone(netns))
            continue
        old = before.sandboxes.get(netns) or SandboxState(netns)
        if old.bridge is not None and new.bridge is None:
            out.append(LinkChange(netns, BRIDGE, deleted=True))
        elif new.bridge is not None and new.bridge != old.bridge:
            out.append(LinkChange(netns, BRIDGE, False, new.bridge.up, new.bridge.mtu))
        if old.vxlan is not None and new.vxlan is None:
            out.append(LinkChange(netns, VXLAN, deleted=True))
        elif new.vxlan is not None and new.vxlan != old.vxlan:
            vx = new.vxlan
            out.append(LinkChange(netns, VXLAN, False, vx.up, vx.mtu, enslaved=vx.master is not None))
        out += [FdbChange(netns, mac, vtep, True) for mac, vtep in sorted(old.fdb - new.fdb)]
        out += [FdbChange(netns, mac, vtep, False) for mac, vtep in sorted(new.fdb - old.fdb)]
        for ip, mac in sorted(old.neighbours.items()):
            if ip not in new.neighbours:
                out.append(NeighChange(netns, ip, mac, True, True))
        for ip, mac in sorted(new.neighbours.items()):
            if old.neighbours.get(ip) != mac:
                out.append(NeighChange(netns, ip, mac, True, False))
    return out
