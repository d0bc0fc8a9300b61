"""The Linux datapath: dump the kernel, apply ops, reconcile, attach and detach containers.

Rules:
- state comes from the kernel on every `dump()` (raw netlink, see kdump), never from what
  this object remembers, so a fresh instance (a restarted agent) repairs and removes
  whatever an earlier run left: `reconcile(desired)` = dump + diff + apply;
- entry ops go through the batched netlink writer (or pyroute2 one call per entry, for
  comparison); device and namespace ops through pyroute2;
- `apply` records every failed op in the result and goes on with the next; a device op
  that fails usually makes later ops on the same sandbox fail too, each reported;
- the VXLAN device is created in `host_netns` (None: this process's namespace), where the
  underlay is;
- `watch()` gives a KernelWatch (swimnet.datapath.kwatch): netlink notifications from
  inside the sandboxes, so changes made by others are seen as they happen;
- synchronous and not thread-safe: call one method at a time (from trio, through
  `trio.to_thread.run_sync` under a CapacityLimiter(1) or a lock).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterator, Sequence

from pyroute2.netlink.exceptions import NetlinkError

from swimnet.datapath import containers, kdump, links, names, netns
from swimnet.datapath import netlink as nl
from swimnet.datapath.actual import ActualState, SandboxState
from swimnet.datapath.diff import diff
from swimnet.datapath.entries import EntryWriter, NetlinkEntries, PyrouteEntries
from swimnet.datapath.kwatch import KernelWatch
from swimnet.datapath.model import DesiredState, LocalEndpoint, Sandbox
from swimnet.datapath.ops import (
    ENTRY_OPS,
    ApplyResult,
    CreateBridge,
    CreateNamespace,
    CreateVxlan,
    DeleteHostLink,
    DeleteLink,
    DeleteNamespace,
    EntryOp,
    Op,
    OpError,
    SetBridge,
    SetVxlan,
)
from swimnet.errors import DatapathError, LocalProtocolError

log = logging.getLogger("swimnet.datapath")


def _op_error(op: Op, exc: BaseException) -> OpError:
    if isinstance(exc, NetlinkError):
        return OpError(op, exc.code, os.strerror(exc.code))
    if isinstance(exc, OSError):
        return OpError(op, exc.errno or 0, str(exc))
    return OpError(op, 0, str(exc) or type(exc).__name__)


def _runs(ops: Sequence[Op]) -> Iterator[tuple[str, list[EntryOp] | Op]]:
    """Consecutive entry ops of one namespace as a list; any other op alone."""
    run: list[EntryOp] = []
    for op in ops:
        if isinstance(op, ENTRY_OPS):
            if run and run[0].netns != op.netns:
                yield run[0].netns, run
                run = []
            run.append(op)
            continue
        if run:
            yield run[0].netns, run
            run = []
        yield "", op
    if run:
        yield run[0].netns, run


class LinuxDatapath:
    """The datapath of one node (`node_tag` names its sandboxes; see swimnet.datapath.names)."""

    def __init__(self, node_tag: str, *, host_netns: str | None = None, entries: str = "netlink") -> None:
        self.node_tag = names.check_tag(node_tag)
        self.host_path = netns.path_of(host_netns)
        writers: dict[str, EntryWriter] = {"netlink": NetlinkEntries(), "pyroute2": PyrouteEntries()}
        if entries not in writers:
            raise LocalProtocolError(f"entries: 'netlink' or 'pyroute2', got {entries!r}")
        self.entries = writers[entries]

    # -- reading ------------------------------------------------------------------------

    def dump(self, sandboxes: Collection[str] | None = None) -> ActualState:
        """Every sandbox of this node and the host's leftovers; or only the named sandboxes
        (and then no host leftovers)."""
        found: dict[str, SandboxState] = {}
        listed = netns.list_names() if sandboxes is None else sorted(sandboxes)
        for name in listed:
            if names.sandbox_vni(self.node_tag, name) is None:
                continue
            path = netns.path_of(name)
            if not netns.is_namespace(path):
                if os.path.exists(path):
                    found[name] = SandboxState(name, usable=False)  # a crash while creating it
                continue
            try:
                with nl.NetlinkSocket(path) as sock:
                    found[name] = kdump.sandbox_state(sock, name, names.BRIDGE, names.VXLAN)
            except DatapathError:
                if netns.is_namespace(path):
                    raise
                # removed while we looked (by someone else): it is not there
        if sandboxes is not None:
            return ActualState(self.node_tag, found)
        with nl.NetlinkSocket(self.host_path) as host:
            links_ = kdump.links(host.dump(nl.RTM_GETLINK, kdump.link_request()), names.is_host_vxlan_name)
        leftovers = frozenset(link.name for link in links_.values() if link.kind == "vxlan")
        return ActualState(self.node_tag, found, leftovers)

    def watch(self) -> KernelWatch:
        """A watch of this node's sandboxes (netlink inside each; see swimnet.datapath.kwatch)."""
        return KernelWatch()

    # -- writing ------------------------------------------------------------------------

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        errors: list[OpError] = []
        handles = links.Handles()
        try:
            for netns_name, run in _runs(ops):
                if isinstance(run, list):
                    try:
                        errors += self.entries.write(netns_name, run)
                    except Exception as exc:  # the whole run failed (socket, namespace)
                        errors += [_op_error(o, exc) for o in run]
                    continue
                try:
                    self._device(handles, run)
                except Exception as exc:
                    errors.append(_op_error(run, exc))
        finally:
            handles.close()
        result = ApplyResult(len(ops), tuple(errors))
        if errors:
            shown = "; ".join(f"{e.op}: {e.message}" for e in errors[:3])
            log.warning("%s: %d of %d datapath ops failed: %s", self.node_tag, len(errors), len(ops), shown)
        return result

    def _device(self, handles: links.Handles, op: Op) -> None:
        if isinstance(op, CreateNamespace):
            links.create_namespace(op.netns)
        elif isinstance(op, CreateBridge):
            links.create_bridge(handles, op.sandbox)
        elif isinstance(op, SetBridge):
            links.set_bridge(handles, op.sandbox)
        elif isinstance(op, CreateVxlan):
            links.create_vxlan(handles, self.host_path, op.sandbox)
        elif isinstance(op, SetVxlan):
            links.set_vxlan(handles, op.sandbox)
        elif isinstance(op, DeleteLink):
            links.delete_link(handles, netns.path_of(op.netns), op.ifname)
        elif isinstance(op, DeleteHostLink):
            links.delete_link(handles, self.host_path, op.ifname)
        elif isinstance(op, DeleteNamespace):
            links.delete_namespace(handles, op.netns)
        else:
            raise LocalProtocolError(f"not a device op: {op!r}")

    def reconcile(self, desired: DesiredState) -> ApplyResult:
        return self.apply(diff(desired, self.dump()))

    # -- containers ---------------------------------------------------------------------

    def attach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> str:
        """Plug a container into its network's bridge (see swimnet.datapath.containers); a
        hand-off end is left in the host namespace."""
        return containers.attach(sandbox, endpoint, self.host_path)

    def attached(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> bool:
        """Whether the container already has the endpoint's interface on the sandbox's bridge."""
        return containers.attached(sandbox, endpoint)

    def detach(self, sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
        containers.detach(sandbox, endpoint)
