"""Writers of FDB and neighbour entries: batched raw netlink (used) and pyroute2 (measured).

Rules:
- a writer takes the entry ops of ONE sandbox namespace and returns an OpError for each
  op that failed, none for those that succeeded; it never raises for a single entry;
- deletes are idempotent: ENOENT, or a namespace or VXLAN device that is gone, is success;
- writes to a namespace or device that is missing fail with the reason.
`NetlinkEntries` sends `chunk` requests per send() (~200k entries/s); `PyrouteEntries`
makes one pyroute2 call per entry (~4-5k entries/s) and exists for comparison and as a
fallback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError

from swimnet.datapath import netlink as nl
from swimnet.datapath import netns
from swimnet.datapath.names import VXLAN
from swimnet.datapath.ops import (
    AppendFdb,
    DeleteFdb,
    DeleteLearned,
    DeleteNeigh,
    EntryOp,
    OpError,
    ReplaceFdb,
    ReplaceNeigh,
)
from swimnet.errors import DatapathError

_DELETES = (DeleteFdb, DeleteNeigh, DeleteLearned)


class EntryWriter(Protocol):
    name: str

    def write(self, netns_name: str, ops: Sequence[EntryOp]) -> list[OpError]: ...


def _unreachable(ops: Sequence[EntryOp], code: int, why: str) -> list[OpError]:
    """The namespace or device is missing: deletes are done, writes fail."""
    return [OpError(op, code, why) for op in ops if not isinstance(op, _DELETES)]


def _failed(op: EntryOp, code: int, message: str) -> OpError | None:
    if code == 0 or (code == errno.ENOENT and isinstance(op, _DELETES)):
        return None
    return OpError(op, code, message)


def request(op: EntryOp, ifindex: int) -> nl.Request:
    if isinstance(op, ReplaceFdb):
        return nl.fdb_request(nl.REPLACE, ifindex, op.mac, op.vtep)
    if isinstance(op, AppendFdb):
        return nl.fdb_request(nl.APPEND, ifindex, op.mac, op.vtep)
    if isinstance(op, DeleteFdb):
        return nl.fdb_request(nl.DELETE, ifindex, op.mac, op.vtep)
    if isinstance(op, ReplaceNeigh):
        return nl.neigh_request(nl.REPLACE, ifindex, op.ip, op.mac)
    if isinstance(op, DeleteNeigh):
        return nl.neigh_request(nl.DELETE, ifindex, op.ip, None)
    return nl.fdb_request(nl.DELETE, ifindex, op.mac, None, master=True)


class NetlinkEntries:
    name = "netlink"

    def __init__(self, chunk: int = 1024, timeout: float = 5.0) -> None:
        self.chunk = chunk
        self.timeout = timeout

    def write(self, netns_name: str, ops: Sequence[EntryOp]) -> list[OpError]:
        path = netns.path_of(netns_name)
        if not os.path.exists(path):
            return _unreachable(ops, errno.ENOENT, f"namespace {netns_name} does not exist")
        with nl.NetlinkSocket(path, timeout=self.timeout, chunk=self.chunk) as sock:
            ifindex = sock.link_index(VXLAN)
            if ifindex is None:
                return _unreachable(ops, errno.ENODEV, f"no {VXLAN} in {netns_name}")
            replies = sock.transact([request(op, ifindex) for op in ops])
        errors = []
        for op, (code, message) in zip(ops, replies, strict=True):
            failure = _failed(op, code, message)
            if failure is not None:
                errors.append(failure)
        return errors


def _call(ipr: Any, op: EntryOp, ifindex: int) -> None:
    static = nl.NUD_PERMANENT | nl.NUD_NOARP
    if isinstance(op, ReplaceFdb):
        ipr.fdb("replace", ifindex=ifindex, lladdr=op.mac, dst=op.vtep, flags=nl.NTF_SELF, state=static)
    elif isinstance(op, AppendFdb):
        ipr.fdb("append", ifindex=ifindex, lladdr=op.mac, dst=op.vtep, flags=nl.NTF_SELF, state=static)
    elif isinstance(op, DeleteFdb):
        ipr.fdb("del", ifindex=ifindex, lladdr=op.mac, dst=op.vtep, flags=nl.NTF_SELF)
    elif isinstance(op, ReplaceNeigh):
        ipr.neigh("replace", ifindex=ifindex, dst=op.ip, lladdr=op.mac, state=nl.NUD_PERMANENT)
    elif isinstance(op, DeleteNeigh):
        ipr.neigh("del", ifindex=ifindex, dst=op.ip)
    else:
        ipr.fdb("del", ifindex=ifindex, lladdr=op.mac, flags=nl.NTF_MASTER)


class PyrouteEntries:
    name = "pyroute2"

    def write(self, netns_name: str, ops: Sequence[EntryOp]) -> list[OpError]:
        path = netns.path_of(netns_name)
        if not os.path.exists(path):
            return _unreachable(ops, errno.ENOENT, f"namespace {netns_name} does not exist")
        errors = []
        try:
            with netns.iproute_in(path) as ipr:
                found = ipr.link_lookup(ifname=VXLAN)
                if not found:
                    return _unreachable(ops, errno.ENODEV, f"no {VXLAN} in {netns_name}")
                for op in ops:
                    try:
                        _call(ipr, op, found[0])
                    except NetlinkError as exc:
                        failure = _failed(op, exc.code, os.strerror(exc.code))
                        if failure is not None:
                            errors.append(failure)
        except (OSError, NetlinkError) as exc:
            raise DatapathError(f"pyroute2 in {netns_name}: {exc}") from exc
        return errors
