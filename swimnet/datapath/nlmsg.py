"""Netlink framing shared by the rtnetlink (`netlink`), nf_tables (`lb.nfnetlink`) and
watcher (`kwatch`) sockets: headers, attributes, ACK texts, dumps.

Rules:
- messages and attributes are 4-byte aligned; a header or attribute whose length is
  shorter than itself ends the walk (a malformed datagram is read no further, never looped
  on);
- attribute types are returned with the nested / byte-order flag bits cleared;
- an error ACK's text is the kernel's extended-ACK message when it sent one (capped ACKs
  carry the original header only), "" otherwise;
- `Channel` owns one socket: bound, with forced buffers (the plain option, capped by
  rmem_max / wmem_max, when not root), capped and extended ACKs when the kernel has them,
  a timeout, sequence numbers that start at a random point and wrap, and one receive
  buffer read with MSG_TRUNC so a datagram larger than it is an error, never a silent cut;
- a dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is repeated, up to
  `attempts` times.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
import socket
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

from swimnet.errors import DatapathError

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000
NLMSGERR_ATTR_MSG = 1
TYPE_MASK = 0x3FFF
"""Attribute type bits (NLA_F_NESTED and NLA_F_NET_BYTEORDER cleared)."""

HDR = struct.Struct("=IHHII")
"""nlmsghdr: length, type, flags, sequence, port id."""
ATTR = struct.Struct("=HH")
ERR = struct.Struct("=i")

_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_NETLINK_EXT_ACK = 11
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    return ATTR.pack(4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def walk(data: bytes | bytearray, pos: int, end: int) -> list[tuple[int, int, int]]:
    """(type, payload start, payload end) of every attribute in data[pos:end]."""
    out = []
    while pos + 4 <= end:
        alen, atype = ATTR.unpack_from(data, pos)
        if alen < 4:
            break
        out.append((atype & TYPE_MASK, pos + 4, pos + alen))
        pos += (alen + 3) & ~3
    return out


def attributes(data: bytes, pos: int, end: int) -> dict[int, bytes]:
    """The attributes in data[pos:end] by type (the last one of a type wins)."""
    return {kind: data[start:stop] for kind, start, stop in walk(data, pos, end)}


def messages(data: bytes | bytearray, n: int) -> Iterator[tuple[int, int, int, int, int]]:
    """(offset, length, type, flags, sequence) of every message in data[:n]."""
    offset = 0
    while offset + 16 <= n:
        length, kind, flags, seq, _ = HDR.unpack_from(data, offset)
        if length < 16:
            return
        yield offset, length, kind, flags, seq
        offset += (length + 3) & ~3


def error_code(data: bytes | bytearray, offset: int) -> int:
    """The positive errno of the NLMSG_ERROR message at `offset` (0: an ACK)."""
    return -int(ERR.unpack_from(data, offset + 16)[0])


def ack_text(buf: bytes | bytearray, offset: int, length: int, flags: int) -> str:
    """The kernel's extended-ACK message of the NLMSG_ERROR at `offset`, "" when none."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    inner = offset + 20
    if flags & NLM_F_CAPPED:
        pos = inner + 16
    else:
        (orig_len,) = struct.unpack_from("=I", buf, inner)
        pos = inner + ((orig_len + 3) & ~3)
    for kind, start, stop in walk(buf, pos, offset + length):
        if kind == NLMSGERR_ATTR_MSG:
            return bytes(buf[start:stop]).rstrip(b"\0").decode(errors="replace")
    return ""


class Channel:
    """One configured netlink socket; not thread-safe (one user at a time)."""

    def __init__(self, sock: socket.socket, *, label: str, buffer: int, receive: int, timeout: float) -> None:
        """Takes ownership of `sock` (closed on failure here); `label` names it in errors,
        `buffer` is the kernel's send/receive buffer size, `receive` ours."""
        self.label = label
        self._sock = sock
        try:
            sock.bind((0, 0))
            for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF), (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, buffer)
                except OSError:  # not root: the plain option, capped by wmem_max/rmem_max
                    sock.setsockopt(socket.SOL_SOCKET, plain, buffer)
            for option in (_NETLINK_CAP_ACK, _NETLINK_EXT_ACK):
                with contextlib.suppress(OSError):
                    sock.setsockopt(_SOL_NETLINK, option, 1)
            sock.settimeout(timeout)
        except OSError as exc:
            sock.close()
            raise DatapathError(f"{label}: {exc}") from exc
        self._buf = bytearray(receive)
        self._seq = int.from_bytes(os.urandom(2), "big") + 1

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _seqs(self, count: int) -> int:
        """The first of `count` consecutive fresh sequence numbers."""
        if self._seq + count >= 0xFFFFFFFF:
            self._seq = 1
        base = self._seq
        self._seq += count
        return base

    def _recv(self) -> int:
        """Read one datagram into the buffer; its length."""
        n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
        if n > len(self._buf):
            raise DatapathError(f"netlink datagram of {n} bytes exceeds the {len(self._buf)}-byte buffer")
        return n

    def _dump(
        self, kind: int, body: bytes, fail: Callable[[int, str], Exception], *, attempts: int = 3
    ) -> list[bytes]:
        """Every datagram of a dump request (NLMSG_DONE ends it); an error answer or a
        failed read raises `fail(errno, text)`, as does a dump interrupted every time."""
        for _ in range(attempts):
            seq = self._seqs(1)
            self._sock.send(HDR.pack(16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
            datagrams: list[bytes] = []
            interrupted = done = False
            while not done:
                try:
                    n = self._recv()
                except OSError as exc:
                    raise fail(exc.errno or errnos.EIO, str(exc)) from exc
                data = bytes(self._buf[:n])
                for offset, _, mtype, flags, mseq in messages(data, n):
                    if mseq != seq:
                        continue
                    interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                    if mtype == NLMSG_DONE:
                        done = True
                    elif mtype == NLMSG_ERROR:
                        code = error_code(data, offset)
                        raise fail(code, os.strerror(code))
                datagrams.append(data)
            if not interrupted:
                return datagrams
        raise fail(errnos.EINTR, "kept being interrupted by changes")
