"""A minimal rtnetlink socket: batched requests with per-message ACKs, and dumps.

Why not pyroute2 here: it spends ~230 us of Python per message (4-5k entries/s); this
module packs messages with `struct` and sends up to `chunk` of them per send(), about 40x
faster (see benchmarks/bench_datapath.py).

Rules:
- every request carries NLM_F_ACK and its own sequence number; the kernel answers each with
  one NLMSG_ERROR (errno 0 = success) and keeps going after a failure, so replies are
  matched to requests by sequence number, never by position;
- a request without an answer (time-out, or ENOBUFS when the receive queue overflowed) is
  reported as failed with that errno; the ops may still have happened, which the next
  dump shows (reconcile is the recovery path, not retries here);
- replies are read with recv_into() into one preallocated buffer (recv(n) would allocate n
  bytes per datagram, and every ACK is its own datagram); MSG_TRUNC guards against a
  datagram larger than the buffer;
- NETLINK_CAP_ACK keeps error ACKs small; NETLINK_EXT_ACK adds the kernel's message;
- a dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is repeated.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
import socket
import struct
from collections.abc import Sequence
from types import TracebackType

from swimnet.datapath.netns import SELF, socket_in
from swimnet.errors import DatapathError

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLM_F_DUMP = 0x300
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_GETADDR = 22
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30

AF_INET = 2
AF_BRIDGE = 7
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04
NDA_DST = 1
NDA_LLADDR = 2
IFLA_IFNAME = 3

REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | NLM_F_CREATE
APPEND = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND
DELETE = NLM_F_REQUEST | NLM_F_ACK

_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_NETLINK_EXT_ACK = 11
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_BUFFER = 4 << 20

HDR = struct.Struct("=IHHII")
NDMSG = struct.Struct("=BxxxiHBB")
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBi")
_LLADDR = struct.Struct("=HH6sxx")
_DST4 = struct.Struct("=HH4s")
_ERR = struct.Struct("=i")
_ATTR = struct.Struct("=HH")

Request = tuple[int, int, bytes]
"""(message type, flags, body after the netlink header)."""
Reply = tuple[int, str]
"""(positive errno, 0 = success; the kernel's message or strerror)."""


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def fdb_request(flags: int, ifindex: int, mac: str, vtep: str | None, *, master: bool = False) -> Request:
    """RTM_NEWNEIGH (flags REPLACE/APPEND) or RTM_DELNEIGH (DELETE) for an AF_BRIDGE entry.

    `self` entries of the VXLAN device by default (NTF_SELF, PERMANENT|NOARP: a replace
    without them is refused or lands in the bridge); `master=True` is a bridge row.
    """
    ntf = NTF_MASTER if master else NTF_SELF
    body = NDMSG.pack(AF_BRIDGE, ifindex, NUD_PERMANENT | NUD_NOARP, ntf, 0)
    body += _LLADDR.pack(10, NDA_LLADDR, mac_bytes(mac))
    if vtep is not None:
        body += _DST4.pack(8, NDA_DST, socket.inet_aton(vtep))
    kind = RTM_DELNEIGH if flags == DELETE else RTM_NEWNEIGH
    return kind, flags, body


def neigh_request(flags: int, ifindex: int, ip: str, mac: str | None) -> Request:
    """RTM_NEWNEIGH (REPLACE) or RTM_DELNEIGH (DELETE) of a permanent IPv4 neighbour."""
    body = NDMSG.pack(AF_INET, ifindex, NUD_PERMANENT, 0, 0) + _DST4.pack(8, NDA_DST, socket.inet_aton(ip))
    if mac is not None:
        body += _LLADDR.pack(10, NDA_LLADDR, mac_bytes(mac))
    kind = RTM_DELNEIGH if flags == DELETE else RTM_NEWNEIGH
    return kind, flags, body


def _ack_message(buf: bytearray, offset: int, length: int, flags: int) -> str:
    if not flags & NLM_F_ACK_TLVS:
        return ""
    inner = offset + 20
    if flags & NLM_F_CAPPED:
        pos = inner + 16
    else:
        (orig_len,) = struct.unpack_from("=I", buf, inner)
        pos = inner + ((orig_len + 3) & ~3)
    end = offset + length
    while pos + 4 <= end:
        alen, atype = _ATTR.unpack_from(buf, pos)
        if alen < 4:
            break
        if atype & 0x3FFF == NLMSGERR_ATTR_MSG:
            return bytes(buf[pos + 4 : pos + alen]).rstrip(b"\0").decode(errors="replace")
        pos += (alen + 3) & ~3
    return ""


class NetlinkSocket:
    """NETLINK_ROUTE socket inside one namespace; not thread-safe (one user at a time)."""

    def __init__(self, netns_path: str = SELF, *, timeout: float = 5.0, chunk: int = 1024) -> None:
        self.netns_path = netns_path
        self.chunk = chunk
        self._sock = socket_in(netns_path, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self._sock.bind((0, 0))
            for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF), (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
                try:
                    self._sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER)
                except OSError:  # not root: the plain option, capped by rmem_max/wmem_max
                    self._sock.setsockopt(socket.SOL_SOCKET, plain, _BUFFER)
            for option in (_NETLINK_CAP_ACK, _NETLINK_EXT_ACK):
                with contextlib.suppress(OSError):
                    self._sock.setsockopt(_SOL_NETLINK, option, 1)
            self._sock.settimeout(timeout)
        except OSError as exc:
            self._sock.close()
            raise DatapathError(f"netlink socket in {netns_path}: {exc}") from exc
        self._buf = bytearray(256 * 1024)
        self._seq = int.from_bytes(os.urandom(2), "big") + 1

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _seqs(self, count: int) -> int:
        if self._seq + count >= 0xFFFFFFFF:
            self._seq = 1
        base = self._seq
        self._seq += count
        return base

    def _recv(self) -> int:
        n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
        if n > len(self._buf):
            raise DatapathError(f"netlink datagram of {n} bytes exceeds the {len(self._buf)}-byte buffer")
        return n

    def transact(self, requests: Sequence[Request]) -> list[Reply]:
        """Send every request (ACKed), `chunk` per send(); one reply per request, in order."""
        replies: list[Reply] = [(0, "")] * len(requests)
        for start in range(0, len(requests), self.chunk):
            part = requests[start : start + self.chunk]
            base = self._seqs(len(part))
            data = b"".join(
                HDR.pack(16 + len(body), kind, flags, base + i, 0) + body
                for i, (kind, flags, body) in enumerate(part)
            )
            answered = bytearray(len(part))
            pending = len(part)
            try:
                self._sock.send(data)
            except OSError as exc:
                code = exc.errno or errnos.EIO
                for i in range(len(part)):
                    replies[start + i] = (code, f"send failed: {exc}")
                continue
            while pending:
                try:
                    n = self._recv()
                except (TimeoutError, OSError) as exc:
                    code = errnos.ETIMEDOUT if isinstance(exc, TimeoutError) else (exc.errno or errnos.EIO)
                    for i in range(len(part)):
                        if not answered[i]:
                            replies[start + i] = (code, f"no answer from the kernel: {os.strerror(code)}")
                    break
                pending -= self._take_acks(n, base, answered, replies, start)
        return replies

    def _take_acks(self, n: int, base: int, answered: bytearray, replies: list[Reply], start: int) -> int:
        buf = self._buf
        offset = 0
        taken = 0
        while offset + 16 <= n:
            length, kind, flags, seq, _ = HDR.unpack_from(buf, offset)
            if length < 16:
                break
            i = seq - base
            if kind == NLMSG_ERROR and 0 <= i < len(answered) and not answered[i]:
                (err,) = _ERR.unpack_from(buf, offset + 16)
                if err:
                    text = _ack_message(buf, offset, length, flags) or os.strerror(-err)
                    replies[start + i] = (-err, text)
                answered[i] = 1
                taken += 1
            offset += (length + 3) & ~3
        return taken

    def dump(self, kind: int, body: bytes, *, attempts: int = 3) -> list[bytes]:
        """All datagrams of a dump (parse them with swimnet.datapath.kdump)."""
        for _ in range(attempts):
            seq = self._seqs(1)
            self._sock.send(HDR.pack(16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
            datagrams: list[bytes] = []
            interrupted = False
            done = False
            while not done:
                try:
                    n = self._recv()
                except OSError as exc:
                    raise DatapathError(f"netlink dump in {self.netns_path}: {exc}") from exc
                data = bytes(self._buf[:n])
                offset = 0
                while offset + 16 <= n:
                    length, mtype, flags, mseq, _ = HDR.unpack_from(data, offset)
                    if length < 16:
                        break
                    if mseq == seq:
                        interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                        if mtype == NLMSG_DONE:
                            done = True
                        elif mtype == NLMSG_ERROR:
                            (err,) = _ERR.unpack_from(data, offset + 16)
                            raise DatapathError(f"netlink dump in {self.netns_path}: {os.strerror(-err)}")
                    offset += (length + 3) & ~3
                datagrams.append(data)
            if not interrupted:
                return datagrams
        raise DatapathError(f"netlink dump in {self.netns_path} kept being interrupted by changes")

    def link_index(self, ifname: str) -> int | None:
        """The ifindex of a device by name, None when there is none."""
        name = ifname.encode() + b"\0"
        attr = _ATTR.pack(4 + len(name), IFLA_IFNAME) + name + b"\0" * (-len(name) % 4)
        body = IFINFOMSG.pack(0, 0, 0, 0, 0) + attr
        seq = self._seqs(1)
        self._sock.send(HDR.pack(16 + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body)
        while True:
            try:
                n = self._recv()
            except OSError as exc:
                raise DatapathError(f"link lookup of {ifname} in {self.netns_path}: {exc}") from exc
            offset = 0
            while offset + 16 <= n:
                length, mtype, _, mseq, _ = HDR.unpack_from(self._buf, offset)
                if length < 16:
                    break
                if mseq == seq:
                    if mtype == RTM_NEWLINK:
                        return int(IFINFOMSG.unpack_from(self._buf, offset + 16)[2])
                    if mtype == NLMSG_ERROR:
                        (err,) = _ERR.unpack_from(self._buf, offset + 16)
                        if -err == errnos.ENODEV:
                            return None
                        why = os.strerror(-err)
                        raise DatapathError(f"link lookup of {ifname} in {self.netns_path}: {why}")
                offset += (length + 3) & ~3
