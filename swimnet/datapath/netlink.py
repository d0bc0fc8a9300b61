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

import errno as errnos
import os
import socket
import struct
from collections.abc import Sequence

from swimnet.datapath.netns import SELF, socket_in
from swimnet.datapath.nlmsg import (
    HDR,
    NLM_F_ACK,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    Channel,
    ack_text,
    attr,
    error_code,
    messages,
)
from swimnet.errors import DatapathError

NLM_F_REPLACE = 0x100
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800

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

_BUFFER = 4 << 20

NDMSG = struct.Struct("=BxxxiHBB")
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBi")
_LLADDR = struct.Struct("=HH6sxx")
_DST4 = struct.Struct("=HH4s")

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


class NetlinkSocket(Channel):
    """NETLINK_ROUTE socket inside one namespace; not thread-safe (one user at a time)."""

    def __init__(self, netns_path: str = SELF, *, timeout: float = 5.0, chunk: int = 1024) -> None:
        self.netns_path = netns_path
        self.chunk = chunk
        sock = socket_in(netns_path, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        label = f"netlink socket in {netns_path}"
        super().__init__(sock, label=label, buffer=_BUFFER, receive=256 * 1024, timeout=timeout)

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
        taken = 0
        for offset, length, kind, flags, seq in messages(buf, n):
            i = seq - base
            if kind == NLMSG_ERROR and 0 <= i < len(answered) and not answered[i]:
                code = error_code(buf, offset)
                if code:
                    replies[start + i] = (code, ack_text(buf, offset, length, flags) or os.strerror(code))
                answered[i] = 1
                taken += 1
        return taken

    def dump(self, kind: int, body: bytes, *, attempts: int = 3) -> list[bytes]:
        """All datagrams of a dump (parse them with swimnet.datapath.kdump)."""

        def fail(code: int, text: str) -> DatapathError:
            return DatapathError(f"netlink dump in {self.netns_path}: {text}")

        return self._dump(kind, body, fail, attempts=attempts)

    def link_index(self, ifname: str) -> int | None:
        """The ifindex of a device by name, None when there is none."""
        body = IFINFOMSG.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, ifname.encode() + b"\0")
        seq = self._seqs(1)
        self._sock.send(HDR.pack(16 + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body)
        while True:
            try:
                n = self._recv()
            except OSError as exc:
                raise DatapathError(f"link lookup of {ifname} in {self.netns_path}: {exc}") from exc
            for offset, _, mtype, _, mseq in messages(self._buf, n):
                if mseq != seq:
                    continue
                if mtype == RTM_NEWLINK:
                    return int(IFINFOMSG.unpack_from(self._buf, offset + 16)[2])
                if mtype == NLMSG_ERROR:
                    code = error_code(self._buf, offset)
                    if code == errnos.ENODEV:
                        return None
                    why = os.strerror(code)
                    raise DatapathError(f"link lookup of {ifname} in {self.netns_path}: {why}")
