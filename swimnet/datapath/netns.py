"""Network namespace helpers: references, listing, creation, and sockets made inside one.

Rules:
- a namespace reference is a name (a file under pyroute2's NETNS_RUN_DIR, as `ip netns`
  uses), an absolute path (a bind mount, `/proc/<pid>/ns/net`) or a process id; `None` is
  the calling process's own namespace;
- a socket inside another namespace is made by a short-lived helper thread that enters it
  with setns(2), creates the socket and returns it; the caller's threads never change
  namespace (a socket keeps the namespace it was created in for its whole life);
- rtnetlink handles (`iproute_in`) are pyroute2 IPRoutes on such a socket, never
  `IPRoute(netns=...)`: that forks a child per socket and stops it with SIGTERM and a
  blocking waitpid; a child forked from the multi-threaded agent, with the agent's signal
  handlers, could miss that SIGTERM, and the waitpid then blocked a worker thread forever
  (the agent lab saw `endpoint create` hang in the DNS resolver's start, py-spy showed
  `ChildProcess.stop`);
- an open socket or fd keeps its namespace alive after the name is removed: callers close
  theirs before (or right after) removing a namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import threading
from typing import Any

from pyroute2 import netns as pr_netns

from swimnet.errors import DatapathError

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
RUN_DIR: str = pr_netns.NETNS_RUN_DIR
SELF = "/proc/self/ns/net"

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def path_of(ref: str | int | None) -> str:
    """The filesystem path of a namespace reference."""
    if ref is None:
        return SELF
    if isinstance(ref, int):
        return f"/proc/{ref}/ns/net"
    return ref if ref.startswith("/") else os.path.join(RUN_DIR, ref)


def list_names() -> list[str]:
    try:
        return sorted(os.listdir(RUN_DIR))
    except FileNotFoundError:
        return []


def exists(ref: str | int | None) -> bool:
    return os.path.exists(path_of(ref))


def same(a: str, b: str) -> bool:
    """Whether two namespace paths are the same namespace (False if either is missing)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def is_namespace(path: str) -> bool:
    """Whether `path` is a namespace (nsfs) rather than, say, the empty file a crash left."""
    try:
        return os.stat(path).st_dev == os.stat(SELF).st_dev
    except OSError:
        return False


def create(name: str) -> None:
    """Create a named namespace (EEXIST if the name is taken)."""
    if exists(name):
        raise FileExistsError(errno.EEXIST, "namespace exists", name)
    pr_netns.create(name)


def remove(name: str) -> None:
    """Unmount and unlink a named namespace; a missing one is not an error."""
    if exists(name):
        pr_netns.remove(name)


def socket_in(path: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside the namespace at `path` (see the module rules);
    DatapathError if it cannot be made."""
    try:
        return _make_socket_in(path, family, kind, proto)
    except OSError as exc:
        raise DatapathError(f"cannot open a socket in namespace {path}: {exc}") from exc


def iproute_in(ref: str | int | None) -> Any:
    """A pyroute2 IPRoute working in namespace `ref`, on a netlink socket made inside it by
    a helper thread (see the module rules); OSError if the namespace cannot be entered.
    The caller closes it (it is a context manager)."""
    from pyroute2 import IPRoute

    path = path_of(ref)
    if path == SELF:
        return IPRoute()
    sock = _make_socket_in(path, socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    try:
        return IPRoute(fileno=sock.detach())
    except BaseException:
        sock.close()
        raise


def _make_socket_in(path: str, family: int, kind: int, proto: int) -> socket.socket:
    if path == SELF or same(path, "/proc/thread-self/ns/net"):
        return socket.socket(family, kind, proto)
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def enter_and_create() -> None:
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        except OSError as exc:
            failure.append(exc)
            return
        try:
            target = os.open(path, os.O_RDONLY)
            try:
                if _libc.setns(target, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns({path}): {os.strerror(code)}")
                result.append(socket.socket(family, kind, proto))
            finally:
                os.close(target)
                _libc.setns(home, CLONE_NEWNET)  # the thread ends next either way
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)
        finally:
            os.close(home)

    helper = threading.Thread(target=enter_and_create, name="swimnet-netns", daemon=True)
    helper.start()
    helper.join()
    if failure:
        raise failure[0]
    return result[0]


def kernel_support_problem(probe_name: str) -> str | None:
    """None when this process can build a namespaced VXLAN overlay, else why not.

    Tries it for real in a scratch namespace called `probe_name` (removed again): root,
    network namespaces, a bridge and a VXLAN device.
    """
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces)"
    try:
        pr_netns.create(probe_name)
        try:
            with iproute_in(probe_name) as ipr:
                ipr.link("add", ifname="vxp", kind="vxlan", vxlan_id=1, vxlan_port=4789, vxlan_learning=0)
                ipr.link("add", ifname="brp", kind="bridge")
        finally:
            pr_netns.remove(probe_name)
    except Exception as exc:
        return f"network namespaces / bridge / VXLAN unavailable: {exc!r}"
    return None
