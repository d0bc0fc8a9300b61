"""What a container namespace needs around the resolver: its address and a resolv.conf.

Rules:
- `ensure_dns_address` brings `lo` up and adds 127.0.0.11/32 to it if no such address is
  there (Docker does the same); it says whether it added it, and `remove_dns_address`
  removes it again only then (a namespace gone in between is not an error);
- `NetnsResolvConf` writes `<root>/<name>/resolv.conf` (root /etc/netns: what `ip netns
  exec NAME` bind-mounts over /etc/resolv.conf) with `nameserver 127.0.0.11` and
  `options ndots:0`, atomically; `restore()` puts back what was there before (a file that
  existed, or nothing, removing the NAME folder if it made it; the shared root stays, as
  `ip netns` leaves /run/netns); a path namespace (no name) has
  no such file: the container runtime owns its /etc/resolv.conf;
- blocking calls (netlink, files): the server runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from pyroute2 import IPRoute

from swimnet.dns.limits import DNS_ADDRESS

NETNS_ETC = "/etc/netns"
RESOLV_CONF_TEXT = f"nameserver {DNS_ADDRESS}\noptions ndots:0\n"


def _lo(ipr: Any) -> int:
    found = ipr.link_lookup(ifname="lo")
    if not found:
        raise OSError("no lo device in the namespace")
    return int(found[0])


def _has(ipr: Any, index: int, address: str) -> bool:
    return any(
        msg.get_attr("IFA_ADDRESS") == address for msg in ipr.get_addr(index=index, family=socket.AF_INET)
    )


def ensure_dns_address(path: str, address: str = DNS_ADDRESS) -> bool:
    """Bring lo up and give it `address`/32 if missing; True if this call added it."""
    with IPRoute(netns=path, flags=0) as ipr:
        index = _lo(ipr)
        ipr.link("set", index=index, state="up")
        if _has(ipr, index, address):
            return False
        ipr.addr("add", index=index, address=address, prefixlen=32)
        return True


def remove_dns_address(path: str, address: str = DNS_ADDRESS) -> None:
    """Remove `address`/32 from lo (best effort: a vanished namespace or address is fine)."""
    if not os.path.exists(path):
        return
    with contextlib.suppress(Exception), IPRoute(netns=path, flags=0) as ipr:
        index = _lo(ipr)
        if _has(ipr, index, address):
            ipr.addr("del", index=index, address=address, prefixlen=32)


class NetnsResolvConf:
    """The resolv.conf `ip netns exec NAME` shows processes in a named namespace."""

    def __init__(self, name: str, root: str = NETNS_ETC, text: str = RESOLV_CONF_TEXT) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"not a namespace name: {name!r}")
        self.folder = os.path.join(root, name)
        self.path = os.path.join(self.folder, "resolv.conf")
        self.text = text
        self._previous: bytes | None = None
        self._made_folder = False
        self._written = False

    def write(self) -> None:
        if not os.path.isdir(self.folder):
            os.makedirs(self.folder, exist_ok=True)
            self._made_folder = True
        try:
            with open(self.path, "rb") as f:
                self._previous = f.read()
        except FileNotFoundError:
            self._previous = None
        self._replace(self.text.encode())
        self._written = True

    def restore(self) -> None:
        if not self._written:
            return
        self._written = False
        with contextlib.suppress(OSError):
            if self._previous is not None:
                self._replace(self._previous)
            else:
                os.unlink(self.path)
            if self._made_folder:
                os.rmdir(self.folder)  # only if empty: anything else there is someone else's

    def _replace(self, data: bytes) -> None:
        tmp = f"{self.path}.swimnet-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)
