"""Plugging containers into a sandbox: one veth pair per local endpoint.

Rules:
- the container end is created directly inside the container's namespace (given by name,
  path or pid) with its final name (`eth0` by default), the endpoint's MAC and the sandbox
  MTU; it gets the endpoint's IP/prefix and, when the network has a gateway, the default
  route; `lo` is brought up too;
- the sandbox end is `ve<hash of endpoint id>`, enslaved to the bridge and up; an old one
  of the same name (a half-done earlier attach) is deleted first; but when the container
  already has the endpoint's interface (same name and MAC) and the sandbox that veth, the
  pair outlived a bridge that was deleted and made again: the veth is enslaved to the new
  bridge, nothing is re-made;
- an attach that fails half-way deletes the pair again (deleting one end deletes both) and
  raises DatapathError; a container name clash is refused before anything is created;
- detach deletes the sandbox end; a missing sandbox or veth is not an error;
- `attached` says whether the container already has the endpoint's interface (same name
  and MAC) and the sandbox its veth enslaved to the bridge: attaching again would only
  break a working endpoint (a restarted agent re-attaching); any doubt answers False;
- hand-off (`endpoint.handoff` set, Docker's remote driver): the container end is made in
  the host namespace (`host`) under the hand-off name with the endpoint's MAC and the
  sandbox MTU, and nothing more: the container runtime moves it into the container,
  renames and configures it. A leftover of that name in the host namespace (a half-done
  attach: ours, the name is derived from the endpoint id) is deleted first. `attached` is
  then the sandbox end alone (on the bridge: a veth pair lives and dies as one, wherever
  its other end was moved); a sandbox end that outlived its bridge is enslaved again.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from swimnet.datapath import links, names, netns
from swimnet.datapath.model import LocalEndpoint, Sandbox
from swimnet.errors import DatapathError, LocalProtocolError


def attach(sandbox: Sandbox, endpoint: LocalEndpoint, host: str = netns.SELF) -> str:
    """Returns the sandbox-side veth name; `host`: the namespace a hand-off end is left in."""
    what = f"attach {endpoint.endpoint_id} to {sandbox.netns}"
    if endpoint.network != sandbox.network:
        raise LocalProtocolError(f"{what}: the endpoint is on {endpoint.network}, not {sandbox.network}")
    spath = netns.path_of(sandbox.netns)
    if endpoint.handoff is not None:
        return _hand_off(sandbox, endpoint, host, what)
    cpath = netns.path_of(endpoint.netns)
    if not os.path.exists(spath):
        raise DatapathError(f"{what}: the sandbox does not exist (reconcile first)")
    if not os.path.exists(cpath):
        raise DatapathError(f"{what}: container namespace {cpath} does not exist")
    veth = names.veth_name(endpoint.endpoint_id)
    try:
        with netns.iproute_in(spath) as sb, netns.iproute_in(cpath) as ct:
            bridge = links.index_of(sb, sandbox.bridge, sandbox.netns)
            theirs = ct.link_lookup(ifname=endpoint.ifname)
            if theirs:
                mine = sb.link_lookup(ifname=veth)
                if not mine or _address(ct, theirs[0]) != endpoint.mac:
                    raise DatapathError(f"{what}: {cpath} already has a device {endpoint.ifname}")
                sb.link("set", index=mine[0], master=bridge)  # the pair outlived its bridge
                sb.link("set", index=mine[0], state="up")
                return veth
            for old in sb.link_lookup(ifname=veth):
                sb.link("del", index=old)
            _make_pair(sb, veth, cpath, endpoint.ifname, sandbox, endpoint)
            _plug(sb, veth, bridge, sandbox, lambda: _configure(ct, sandbox, endpoint))
    except (NetlinkError, OSError) as exc:
        raise DatapathError(f"{what}: {exc}") from exc
    return veth


def _hand_off(sandbox: Sandbox, endpoint: LocalEndpoint, host: str, what: str) -> str:
    """The hand-off attach (see the module rules)."""
    assert endpoint.handoff is not None
    spath = netns.path_of(sandbox.netns)
    if not os.path.exists(spath):
        raise DatapathError(f"{what}: the sandbox does not exist (reconcile first)")
    veth = names.veth_name(endpoint.endpoint_id)
    try:
        with netns.iproute_in(spath) as sb, netns.iproute_in(host) as hs:
            bridge = links.index_of(sb, sandbox.bridge, sandbox.netns)
            mine = sb.link_lookup(ifname=veth)
            if mine:  # the pair exists (its other end here or moved already): keep it
                sb.link("set", index=mine[0], master=bridge)
                sb.link("set", index=mine[0], state="up")
                return veth
            for old in hs.link_lookup(ifname=endpoint.handoff):
                hs.link("del", index=old)
            _make_pair(sb, veth, host, endpoint.handoff, sandbox, endpoint)
            _plug(sb, veth, bridge, sandbox, lambda: None)
    except (NetlinkError, OSError) as exc:
        raise DatapathError(f"{what}: {exc}") from exc
    return veth


def _address(ipr: Any, index: int) -> str | None:
    found = ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")
    return str(found) if found is not None else None


def _make_pair(sb: Any, veth: str, path: str, ifname: str, sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
    """The pair: `veth` in the sandbox, `ifname` (the endpoint's MAC) in the namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        peer = {"ifname": ifname, "net_ns_fd": fd, "address": endpoint.mac, "mtu": sandbox.mtu}
        sb.link("add", ifname=veth, kind="veth", mtu=sandbox.mtu, peer=peer)
    finally:
        os.close(fd)


def _plug(sb: Any, veth: str, bridge: int, sandbox: Sandbox, then: Callable[[], None]) -> None:
    """Enslave the sandbox end and bring it up, then `then()`; any failure deletes the pair."""
    index = links.index_of(sb, veth, sandbox.netns)
    try:
        sb.link("set", index=index, master=bridge)
        sb.link("set", index=index, state="up")
        then()
    except BaseException:
        sb.link("del", index=index)
        raise


def _configure(ct: Any, sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
    iface = ipaddress.IPv4Interface(endpoint.ip)
    index = links.index_of(ct, endpoint.ifname, str(endpoint.netns))
    ct.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    ct.link("set", index=index, state="up")
    for lo in ct.link_lookup(ifname="lo"):
        ct.link("set", index=lo, state="up")
    if sandbox.gateway:
        ct.route("add", dst="0.0.0.0/0", gateway=sandbox.gateway, oif=index)


def detach(sandbox: Sandbox, endpoint: LocalEndpoint) -> None:
    spath = netns.path_of(sandbox.netns)
    if not os.path.exists(spath):
        return
    veth = names.veth_name(endpoint.endpoint_id)
    try:
        with netns.iproute_in(spath) as sb:
            for index in sb.link_lookup(ifname=veth):
                sb.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise DatapathError(f"detach {endpoint.endpoint_id} from {sandbox.netns}: {exc}") from exc
    except OSError as exc:
        raise DatapathError(f"detach {endpoint.endpoint_id} from {sandbox.netns}: {exc}") from exc


def attached(sandbox: Sandbox, endpoint: LocalEndpoint) -> bool:
    """Whether the endpoint is plugged in already (see the module rules)."""
    spath, cpath = netns.path_of(sandbox.netns), netns.path_of(endpoint.netns)
    if endpoint.handoff is not None:
        return _on_bridge(sandbox, endpoint)
    if not (os.path.exists(spath) and os.path.exists(cpath)):
        return False
    try:
        with netns.iproute_in(spath) as sb, netns.iproute_in(cpath) as ct:
            peer = ct.link_lookup(ifname=endpoint.ifname)
            if not peer:
                return False
            veth = sb.link_lookup(ifname=names.veth_name(endpoint.endpoint_id))
            bridge = sb.link_lookup(ifname=sandbox.bridge)
            if not veth or not bridge or _address(ct, peer[0]) != endpoint.mac:
                return False
            return bool(sb.get_links(veth[0])[0].get_attr("IFLA_MASTER") == bridge[0])
    except OSError:
        return False


def _on_bridge(sandbox: Sandbox, endpoint: LocalEndpoint) -> bool:
    """Whether the endpoint's sandbox end exists, enslaved to the bridge."""
    spath = netns.path_of(sandbox.netns)
    if not os.path.exists(spath):
        return False
    try:
        with netns.iproute_in(spath) as sb:
            veth = sb.link_lookup(ifname=names.veth_name(endpoint.endpoint_id))
            bridge = sb.link_lookup(ifname=sandbox.bridge)
            if not veth or not bridge:
                return False
            return bool(sb.get_links(veth[0])[0].get_attr("IFLA_MASTER") == bridge[0])
    except OSError:
        return False
