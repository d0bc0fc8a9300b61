"""The kernel's Watch (swimnet.datapath.watch): rtnetlink notifications from inside every
watched sandbox namespace, and inotify on the namespace directory.

Rules:
- per watched sandbox one NETLINK_ROUTE socket, created inside the namespace
  (swimnet.datapath.netns.socket_in), bound without a unicast address and joined to
  RTNLGRP_LINK and RTNLGRP_NEIGH; non-blocking; a large receive buffer (SO_RCVBUFFORCE as
  root); a recv failing with ENOBUFS (the kernel dropped notifications: a burst outran us)
  is reported as `Lost`, as is a datagram larger than the buffer, and the next `track()`
  opens that socket anew (link messages may have been among the lost ones);
- only this node's devices count: link messages naming the bridge or the VXLAN device (one
  renamed away counts as deleted; an AF_BRIDGE port message removing the VXLAN device from
  the bridge as "not enslaved"), and neighbour messages on the VXLAN device's ifindex
  (AF_BRIDGE with NTF_SELF: its FDB entries; AF_INET: its neighbours); the ifindexes come
  from a link dump made on the socket right after it joined the groups (so no change falls
  between the two) and follow the link messages after that;
- the sockets and the inotify descriptor sit in one epoll set, whose descriptor is the one
  trio waits on (trio.lowlevel.wait_readable): one wait however many sandboxes; `read()`
  takes at most `limit` datagrams, so a burst is consumed in bounded steps;
- a socket keeps its namespace (and the VNI of the VXLAN device in it) alive: it is closed
  as soon as the namespace's name is removed (inotify IN_DELETE / IN_MOVED_FROM on the
  directory, checked against the namespace's inode, so a name removed and made again is a
  new namespace) and reported as `SandboxGone`; `track()` closes the sockets of namespaces
  no longer tracked or whose name points at another namespace;
- `discard()` still follows the link messages (ifindexes change when a device is re-made)
  and closes the sockets of removed namespaces; it only skips decoding the rest;
- one lock guards the sockets: `track()` runs in the driver's worker thread, the others in
  trio; every method is a no-op after `close()`, which the owner calls once nothing waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Collection

import attrs
import trio

from swimnet.datapath import kdump, names, netns
from swimnet.datapath import netlink as nl
from swimnet.datapath.watch import (
    READ_LIMIT,
    Change,
    FdbChange,
    LinkChange,
    Lost,
    NeighChange,
    SandboxGone,
)
from swimnet.errors import DatapathError

log = logging.getLogger("swimnet.datapath.watch")

RTM_DELLINK = 17
RTNLGRP_LINK = 1
RTNLGRP_NEIGH = 3
IFF_UP = 0x1
IFLA_MTU = 4
IFLA_MASTER = 10
_SOL_NETLINK = 270
_NETLINK_ADD_MEMBERSHIP = 1
_SO_RCVBUFFORCE = 33
RCVBUF = 4 << 20
OPEN_TIMEOUT = 5.0
DISCARD_LIMIT = 1 << 16

IN_MOVED_FROM = 0x40
IN_DELETE = 0x200
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
_INOTIFY_EVENT = struct.Struct("=iIII")
_U32 = struct.Struct("=I")
OURS = (names.BRIDGE, names.VXLAN)

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@attrs.define
class Devices:
    """The bridge and the VXLAN device of one namespace, by ifindex, as the messages tell."""

    netns: str
    by_index: dict[int, str] = attrs.Factory(dict)


@attrs.define
class _Watched:
    netns: str
    sock: socket.socket
    inode: tuple[int, int]
    """(st_dev, st_ino) of the namespace the socket lives in."""
    devices: Devices
    stale: bool = False
    """Notifications were lost, link messages maybe among them: `track()` opens it anew."""


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _link(box: Devices, data: bytes, pos: int, end: int, deleted: bool) -> Change | None:
    family, _, index, flags, _ = nl.IFINFOMSG.unpack_from(data, pos)
    top = kdump.attributes(data, pos + nl.IFINFOMSG.size, end)
    name = top.get(nl.IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace")
    known = box.by_index.get(index)
    if name not in OURS:
        if known is None:
            return None
        del box.by_index[index]  # renamed (or moved) away: gone as far as we are concerned
        return LinkChange(box.netns, known, deleted=True)
    up = bool(flags & IFF_UP)
    mtu = _U32.unpack(top[IFLA_MTU][:4])[0] if IFLA_MTU in top else 0
    master = _U32.unpack(top[IFLA_MASTER][:4])[0] if IFLA_MASTER in top else 0
    if family == nl.AF_BRIDGE:  # a bridge port message: DELLINK = no longer a port
        return LinkChange(box.netns, name, False, up, mtu, enslaved=master != 0 and not deleted)
    for other in [i for i, n in box.by_index.items() if n == name and i != index]:
        del box.by_index[other]  # re-made under the same name
    if deleted:
        box.by_index.pop(index, None)
        return LinkChange(box.netns, name, deleted=True)
    box.by_index[index] = name
    return LinkChange(box.netns, name, False, up, mtu, enslaved=master != 0)


def _neigh(box: Devices, data: bytes, pos: int, end: int, deleted: bool) -> Change | None:
    family, index, state, flags, _ = nl.NDMSG.unpack_from(data, pos)
    if box.by_index.get(index) != names.VXLAN:
        return None
    dst, lladdr = kdump.dst_lladdr(data, pos + nl.NDMSG.size, end)
    if family == nl.AF_BRIDGE:
        if not flags & nl.NTF_SELF or lladdr is None:
            return None  # a bridge row for the port (learned or local), not the device's own
        vtep = kdump.ip_text(dst) if dst else "0.0.0.0"
        return FdbChange(box.netns, lladdr.hex(":"), vtep, deleted)
    if family == nl.AF_INET and dst is not None and len(dst) == 4:
        mac = lladdr.hex(":") if lladdr else ""
        return NeighChange(box.netns, socket.inet_ntoa(dst), mac, bool(state & nl.NUD_PERMANENT), deleted)
    return None


def parse(box: Devices, data: bytes, *, decode: bool = True) -> list[Change]:
    """The changes in one datagram; with `decode=False` only the ifindexes are followed."""
    out: list[Change] = []
    offset = 0
    n = len(data)
    while offset + 16 <= n:
        length, kind, _, _, _ = nl.HDR.unpack_from(data, offset)
        if length < 16:
            break
        pos, end = offset + 16, min(offset + length, n)
        change: Change | None = None
        if kind in (nl.RTM_NEWLINK, RTM_DELLINK) and end - pos >= nl.IFINFOMSG.size:
            change = _link(box, data, pos, end, kind == RTM_DELLINK)
        elif decode and kind in (nl.RTM_NEWNEIGH, nl.RTM_DELNEIGH) and end - pos >= nl.NDMSG.size:
            change = _neigh(box, data, pos, end, kind == nl.RTM_DELNEIGH)
        if change is not None and decode:
            out.append(change)
        offset += (length + 3) & ~3
    return out


class KernelWatch:
    """Watches this node's sandbox namespaces through netlink (see the module rules)."""

    def __init__(self, *, rcvbuf: int = RCVBUF) -> None:
        self.rcvbuf = rcvbuf
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._watched: dict[str, _Watched] = {}
        self._by_fd: dict[int, _Watched] = {}
        self._orphans: list[_Watched] = []
        """Sockets in namespaces whose name was removed, for `track()` to clear and close."""
        self._seq = 0
        self._buf = bytearray(256 * 1024)
        self._open_buf = bytearray(64 * 1024)
        """For the requests of `track()`, which runs outside the lock."""
        self._inotify = -1
        self._inotify_watch = -1
        self.closed = False
        self.open_errors = 0
        """Namespaces that could not be watched (the periodic reconcile still covers them)."""
        self.cleared = 0
        """Namespaces whose name was removed and whose devices this watch deleted."""
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd >= 0:
            self._inotify = fd
            self._epoll.register(fd, select.EPOLLIN)

    # -- which namespaces -------------------------------------------------------------------

    def track(self, netns_names: Collection[str]) -> None:
        wanted = set(netns_names)
        with self._lock:
            if self.closed:
                return
            self._watch_directory()
            for name, box in list(self._watched.items()):
                if _inode(netns.path_of(name)) != box.inode:
                    self._set_aside(box)
                elif name not in wanted or box.stale:
                    self._close(box)
            orphans, self._orphans = self._orphans, []
            missing = sorted(wanted - set(self._watched))
        for box in orphans:  # outside the lock (blocking I/O): trio may read meanwhile
            self._clear(box)
            box.sock.close()
        opened = [self._open(name) for name in missing]
        with self._lock:
            for new in opened:
                if new is None:
                    continue
                if self.closed or new.netns in self._watched:
                    new.sock.close()
                    continue
                self._watched[new.netns] = new
                self._by_fd[new.sock.fileno()] = new
                self._epoll.register(new.sock.fileno(), select.EPOLLIN)

    @property
    def watched(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._watched)

    def _watch_directory(self) -> None:
        if self._inotify < 0 or self._inotify_watch >= 0:
            return
        wd = _libc.inotify_add_watch(self._inotify, netns.RUN_DIR.encode(), IN_DELETE | IN_MOVED_FROM)
        if wd >= 0:  # else the directory does not exist yet (no namespace ever made): next time
            self._inotify_watch = wd

    def _open(self, name: str) -> _Watched | None:
        path = netns.path_of(name)
        inode = _inode(path)
        if inode is None or not netns.is_namespace(path):
            return None
        try:
            sock = netns.socket_in(path, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        except DatapathError as exc:
            self._open_failed(name, exc)
            return None
        box = _Watched(name, sock, inode, Devices(name))
        try:
            sock.bind((0, 0))
            for group in (RTNLGRP_LINK, RTNLGRP_NEIGH):
                sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, group)
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:  # not root: the plain option, capped by rmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            self._initial_links(box)
            sock.setblocking(False)
        except (OSError, DatapathError) as exc:
            sock.close()
            self._open_failed(name, exc)
            return None
        return box

    def _open_failed(self, name: str, exc: BaseException) -> None:
        self.open_errors += 1
        log.warning("cannot watch namespace %s: %s", name, exc)

    def _initial_links(self, box: _Watched) -> None:
        """Dump the links on the subscribed socket: the ifindexes of our devices."""
        box.sock.settimeout(OPEN_TIMEOUT)
        for data in self._ask(box, nl.RTM_GETLINK, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, kdump.link_request()):
            parse(box.devices, data, decode=False)

    def _ask(self, box: _Watched, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request on a (blocking) watch socket; every datagram up to its answer
        (notifications included: they are link messages of that namespace too)."""
        sock = box.sock
        self._seq += 1
        seq = self._seq
        sock.send(nl.HDR.pack(16 + len(body), kind, flags, seq, 0) + body)
        buf = self._open_buf
        datagrams = []
        while True:
            n = sock.recv_into(buf, 0, socket.MSG_TRUNC)
            if n > len(buf):
                raise DatapathError(f"netlink in {box.netns}: a datagram of {n} bytes")
            data = bytes(buf[:n])
            datagrams.append(data)
            offset = 0
            while offset + 16 <= n:
                length, mtype, _, mseq, _ = nl.HDR.unpack_from(data, offset)
                if length < 16:
                    break
                if mseq == seq and mtype == nl.NLMSG_DONE:
                    return datagrams
                if mseq == seq and mtype == nl.NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, offset + 16)
                    if err:
                        raise DatapathError(f"netlink in {box.netns}: {os.strerror(-err)}")
                    return datagrams
                offset += (length + 3) & ~3

    def _clear(self, box: _Watched) -> None:
        """Delete every device of a namespace whose name was removed, the VXLAN device first
        (what delete_namespace does): the VNI and the containers' veth ends are free at once
        instead of whenever the kernel destroys the namespace. Best effort."""
        try:
            box.sock.setblocking(True)
            box.sock.settimeout(OPEN_TIMEOUT)
            dump = self._ask(box, nl.RTM_GETLINK, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, kdump.link_request())
            found = sorted(kdump.links(dump).values(), key=lambda link: link.name != names.VXLAN)
            for link in found:
                if link.name != "lo":
                    body = nl.IFINFOMSG.pack(0, 0, link.index, 0, 0)
                    with contextlib.suppress(DatapathError):  # e.g. gone with its peer already
                        self._ask(box, RTM_DELLINK, nl.NLM_F_REQUEST | nl.NLM_F_ACK, body)
            self.cleared += 1
        except (OSError, DatapathError) as exc:
            log.warning("cannot clear the removed namespace %s: %s", box.netns, exc)

    def _unwatch(self, box: _Watched) -> None:
        self._watched.pop(box.netns, None)
        fd = box.sock.fileno()
        if self._by_fd.get(fd) is box:
            del self._by_fd[fd]
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    def _close(self, box: _Watched) -> None:
        self._unwatch(box)
        box.sock.close()

    def _set_aside(self, box: _Watched) -> None:
        """The namespace's name is gone: stop reading; `track()` clears and closes it."""
        self._unwatch(box)
        self._orphans.append(box)

    # -- reading ----------------------------------------------------------------------------

    def read(self, limit: int = READ_LIMIT) -> list[Change]:
        return self._take(limit, decode=True)[0]

    def discard(self) -> int:
        return self._take(DISCARD_LIMIT, decode=False)[1]

    def _take(self, limit: int, *, decode: bool) -> tuple[list[Change], int]:
        out: list[Change] = []
        reads = 0
        with self._lock:
            if self.closed:
                return out, reads
            for fd, _ in self._epoll.poll(0):
                if reads >= limit:
                    break
                if fd == self._inotify:
                    out += self._directory_events()
                    continue
                box = self._by_fd.get(fd)
                while box is not None and reads < limit and self._by_fd.get(fd) is box:
                    try:
                        n = box.sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
                    except BlockingIOError:
                        break
                    except OSError as exc:  # ENOBUFS: the kernel dropped notifications
                        reads += 1
                        box.stale = True
                        out.append(Lost(box.netns, os.strerror(exc.errno or errno.EIO)))
                        continue
                    reads += 1
                    if n > len(self._buf):
                        box.stale = True
                        out.append(Lost(box.netns, f"a datagram of {n} bytes was truncated"))
                        continue
                    out += parse(box.devices, bytes(self._buf[:n]), decode=decode)
        return (out if decode else []), reads

    def _directory_events(self) -> list[Change]:
        """Set aside the sockets of namespaces whose name went away; SandboxGone for each."""
        removed: set[str] = set()
        overflow = False
        while True:
            try:
                data = os.read(self._inotify, 64 * 1024)
            except BlockingIOError:
                break
            if not data:
                break
            offset = 0
            while offset + _INOTIFY_EVENT.size <= len(data):
                _, mask, _, length = _INOTIFY_EVENT.unpack_from(data, offset)
                start = offset + _INOTIFY_EVENT.size
                name = data[start : start + length].rstrip(b"\0").decode(errors="replace")
                offset = start + length
                if mask & IN_Q_OVERFLOW:
                    overflow = True
                elif mask & IN_IGNORED:
                    self._inotify_watch = -1  # the directory itself went: watch it again on track()
                    overflow = True
                elif name in self._watched:
                    removed.add(name)
        if overflow:
            removed |= set(self._watched)
        gone: list[Change] = []
        for name in sorted(removed):
            box = self._watched[name]
            if _inode(netns.path_of(name)) != box.inode:
                self._set_aside(box)
                gone.append(SandboxGone(name))
        return gone

    async def wait(self) -> None:
        if self.closed:
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.wait_readable(self._epoll.fileno())

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for box in list(self._watched.values()):
                self._close(box)
            for box in self._orphans:
                box.sock.close()
            self._orphans = []
            self._epoll.close()
            if self._inotify >= 0:
                os.close(self._inotify)
                self._inotify = -1
