"""Device and namespace changes through pyroute2 (few and rare, so its speed is no concern).

Rules:
- every function does one op of `ops.py` and raises on failure (NetlinkError, OSError or
  DatapathError); the caller turns that into an OpError;
- the VXLAN device is created in the host namespace (its UDP socket lives there, on the
  underlay) as `swv<vni>` with the port given explicitly (the kernel default is 8472),
  learning off, proxy on and local = the VTEP; then it is moved into the sandbox and renamed
  in one request, enslaved and brought up; a failed move deletes it again, and a
  leftover of the same name from a crash is deleted first; EEXIST (the VNI still held by a
  namespace the kernel is destroying) is retried for up to a second;
- a sandbox is removed by deleting its devices first, then its name (see
  `delete_namespace`);
- `Handles` keeps one IPRoute per namespace for one apply pass (each costs a helper
  thread entering the namespace, `netns.iproute_in`); a handle is closed before its
  namespace is removed, since an open socket would keep the namespace alive.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import time
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from swimnet.datapath import netns
from swimnet.datapath.model import Sandbox
from swimnet.datapath.names import VXLAN
from swimnet.errors import DatapathError

VNI_BUSY_RETRIES = 20
VNI_BUSY_SLEEP = 0.05


class Handles:
    """IPRoute objects by namespace path, opened on first use, closed by `close()`."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}

    def get(self, path: str) -> Any:
        ipr = self._open.get(path)
        if ipr is None:
            ipr = netns.iproute_in(path)
            self._open[path] = ipr
        return ipr

    def drop(self, path: str) -> None:
        ipr = self._open.pop(path, None)
        if ipr is not None:
            ipr.close()

    def close(self) -> None:
        for path in list(self._open):
            self.drop(path)


def index_of(ipr: Any, ifname: str, where: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise DatapathError(f"no device {ifname} in {where}")
    return int(found[0])


def _ipv4_addresses(ipr: Any, index: int) -> set[str]:
    out = set()
    for msg in ipr.get_addr(index=index, family=2):
        out.add(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
    return out


def create_namespace(name: str) -> None:
    netns.create(name)


def delete_namespace(handles: Handles, name: str) -> None:
    """Delete the namespace's devices (VXLAN first), then the namespace.

    The kernel destroys a namespace asynchronously, and until then its VXLAN device keeps
    the VNI bound in the host namespace: a network re-created at once would get EEXIST.
    Deleting the devices first frees the VNI (and the containers' veth ends) right away.
    """
    path = netns.path_of(name)
    if netns.is_namespace(path):  # else: the empty file of a crash while creating it
        try:
            ipr = handles.get(path)
            devices = [(m.get_attr("IFLA_IFNAME"), m["index"]) for m in ipr.get_links()]
            for ifname, index in sorted(devices, key=lambda d: d[0] != VXLAN):
                if ifname != "lo":
                    with contextlib.suppress(NetlinkError):
                        ipr.link("del", index=index)
        finally:
            handles.drop(path)
    netns.remove(name)


def create_bridge(handles: Handles, box: Sandbox) -> None:
    ipr = handles.get(netns.path_of(box.netns))
    ipr.link("add", ifname=box.bridge, kind="bridge", mtu=box.mtu)
    index = index_of(ipr, box.bridge, box.netns)
    if box.bridge_address:
        iface = ipaddress.IPv4Interface(box.bridge_address)
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    ipr.link("set", index=index, state="up")


def set_bridge(handles: Handles, box: Sandbox) -> None:
    ipr = handles.get(netns.path_of(box.netns))
    index = index_of(ipr, box.bridge, box.netns)
    ipr.link("set", index=index, mtu=box.mtu)
    want = {box.bridge_address} if box.bridge_address else set()
    have = _ipv4_addresses(ipr, index)
    for cidr in sorted(have - want):
        iface = ipaddress.IPv4Interface(cidr)
        ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    for cidr in sorted(want - have):
        iface = ipaddress.IPv4Interface(cidr)
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    ipr.link("set", index=index, state="up")


def create_vxlan(handles: Handles, host_path: str, box: Sandbox) -> None:
    host = handles.get(host_path)
    for stale in host.link_lookup(ifname=box.host_vxlan):
        host.link("del", index=stale)
    spec = {
        "ifname": box.host_vxlan,
        "kind": "vxlan",
        "vxlan_id": box.vni,
        "vxlan_port": box.port,
        "vxlan_learning": 0,
        "vxlan_local": box.local_vtep,
        "vxlan_proxy": 1,
        "mtu": box.mtu,
    }
    for attempt in range(VNI_BUSY_RETRIES + 1):
        try:
            host.link("add", **spec)
            break
        except NetlinkError as exc:  # EEXIST: the VNI may still be held by a dying namespace
            if exc.code != errno.EEXIST or attempt == VNI_BUSY_RETRIES:
                raise
            time.sleep(VNI_BUSY_SLEEP)
    index = index_of(host, box.host_vxlan, "the host namespace")
    fd = os.open(netns.path_of(box.netns), os.O_RDONLY)
    try:
        host.link("set", index=index, net_ns_fd=fd, ifname=box.vxlan)
    except BaseException:
        host.link("del", index=index)
        raise
    finally:
        os.close(fd)
    set_vxlan(handles, box)


def set_vxlan(handles: Handles, box: Sandbox) -> None:
    ipr = handles.get(netns.path_of(box.netns))
    index = index_of(ipr, box.vxlan, box.netns)
    bridge = index_of(ipr, box.bridge, box.netns)
    ipr.link("set", index=index, master=bridge, mtu=box.mtu)
    ipr.link("set", index=index, state="up")


def delete_link(handles: Handles, path: str, ifname: str) -> None:
    ipr = handles.get(path)
    for index in ipr.link_lookup(ifname=ifname):
        ipr.link("del", index=index)
