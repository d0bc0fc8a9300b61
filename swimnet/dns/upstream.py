"""The upstream resolvers: the host's /etc/resolv.conf, re-read when it changes.

Rules:
- `parse_resolv_conf` keeps the `nameserver` lines whose value is a literal IPv4 or IPv6
  address without a zone, first `MAX_NAMESERVERS` (glibc's limit), duplicates dropped;
  everything else in the file is ignored;
- `Upstreams.current()` stats the file on every call and re-reads it when its identity,
  size or modification time changed; a missing or unreadable file means no upstream (the
  resolver then answers SERVFAIL to what it would forward);
- the path (and the port, 53) are injectable, for tests; `Upstreams.fixed` needs no file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

RESOLV_CONF = "/etc/resolv.conf"
MAX_NAMESERVERS = 3


def parse_resolv_conf(text: str) -> tuple[str, ...]:
    """The nameserver addresses of a resolv.conf text (see the rules)."""
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver" or "%" in fields[1]:
            continue
        try:
            address = str(ipaddress.ip_address(fields[1]))
        except ValueError:
            continue
        if address not in found:
            found.append(address)
        if len(found) == MAX_NAMESERVERS:
            break
    return tuple(found)


class Upstreams:
    def __init__(self, path: str = RESOLV_CONF, port: int = 53) -> None:
        self.path = path
        self.port = port
        self.reads = 0
        self._stamp: tuple[int, int, int, int] | None = None
        self._servers: tuple[tuple[str, int], ...] = ()
        self._fixed = False

    @classmethod
    def fixed(cls, servers: Sequence[tuple[str, int]]) -> Upstreams:
        """Upstreams that never change (no file)."""
        upstreams = cls(path="")
        upstreams._servers = tuple(servers)
        upstreams._fixed = True
        return upstreams

    def current(self) -> tuple[tuple[str, int], ...]:
        """(address, port) of each upstream, in the file's order."""
        if self._fixed:
            return self._servers
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self._servers = None, ()
            return ()
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    text = f.read(64 * 1024)
            except OSError:
                return ()
            self.reads += 1
            self._stamp = stamp
            self._servers = tuple((a, self.port) for a in parse_resolv_conf(text))
        return self._servers
