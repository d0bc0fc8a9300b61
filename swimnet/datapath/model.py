"""The desired kernel state of one host, computed purely from networks and endpoints.

Rules:
- a network gets a sandbox (namespace `swn-<tag>-<vni>`, bridge `br0`, VXLAN `vxlan0`)
  only while it has at least one local endpoint;
- each remote endpoint of such a network (VTEP != the local VTEP) gets a permanent `self`
  FDB entry MAC -> VTEP on the VXLAN device and a permanent neighbour entry IP -> MAC;
  local endpoints are never programmed (the bridge reaches them directly);
- conflicts resolve deterministically: a remote endpoint sharing an IP or a MAC with a
  local endpoint of the same network is skipped (local wins); among remote endpoints
  sharing an IP or a MAC, the smallest endpoint id wins;
- `flood=True` adds the all-zeros MAC -> every remote VTEP of the network (head-end
  replication of broadcast and unknown unicast); off by default, as in Docker: ARP is
  answered by the VXLAN proxy from the neighbour entries;
- the overlay MTU is `underlay_mtu - 50` (VXLAN over IPv4), lowered to the network's own
  `mtu` when that is smaller: a network never asks for more than the underlay carries;
- every value is validated and normalised on construction by the parsers of swimnet.values
  (the overlay records and the agent use the same ones, so a value the overlay accepts is
  never skipped here); a bad value raises ConfigError naming the field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import ParamSpec, TypeVar

import attrs

from swimnet import values
from swimnet.datapath import names
from swimnet.errors import ConfigError, LocalProtocolError

VXLAN_OVERHEAD = 50
FLOOD_MAC = "00:00:00:00:00:00"
VNI_MAX = values.VNI_MAX
MIN_MTU = values.MTU_MIN
P = ParamSpec("P")
T = TypeVar("T")

Fdb = frozenset[tuple[str, str]]
"""(MAC, VTEP) pairs of `self` FDB entries on a VXLAN device."""


def _parsed(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """The value `parse` (a swimnet.values parser) returns; its InvalidValue as a ConfigError."""
    try:
        return parse(*args, **kwargs)
    except values.InvalidValue as exc:
        raise ConfigError(exc.field, exc.reason) from None


@attrs.frozen
class NetworkSpec:
    """One overlay network as the datapath needs it."""

    name: str
    vni: int
    subnet: str
    gateway: str | None = None
    mtu: int | None = None
    """The network's overlay MTU; None: the host's (underlay MTU - 50)."""
    port: int = 4789
    flood: bool = False

    def __attrs_post_init__(self) -> None:
        _parsed(values.name, self.name, "name")
        _parsed(values.vni, self.vni, "vni")
        net = _parsed(values.subnet, self.subnet, "subnet")
        object.__setattr__(self, "subnet", str(net))
        if self.gateway is not None:
            gateway = _parsed(values.host_in, self.gateway, net, "gateway")
            object.__setattr__(self, "gateway", str(gateway.ip))
        if self.mtu is not None:
            _parsed(values.mtu, self.mtu, "mtu")
        object.__setattr__(self, "port", _parsed(values.port, self.port, "port"))


@attrs.frozen
class RemoteEndpoint:
    """An endpoint on another host: what the overlay peer table says about it."""

    network: str
    endpoint_id: str
    ip: str
    """With prefix length, e.g. 10.1.0.2/24."""
    mac: str
    vtep: str
    """Underlay IPv4 address of the owning host."""

    def __attrs_post_init__(self) -> None:
        _parsed(values.name, self.network, "network")
        _parsed(values.name, self.endpoint_id, "endpoint_id")
        object.__setattr__(self, "ip", str(_parsed(values.host_interface, self.ip, "ip")))
        object.__setattr__(self, "mac", _parsed(values.mac, self.mac, "mac"))
        object.__setattr__(self, "vtep", _parsed(values.vtep, self.vtep, "vtep"))

    @property
    def address(self) -> str:
        return self.ip.split("/")[0]


@attrs.frozen
class LocalEndpoint:
    """A container on this host; `netns` is a namespace name, a path, or a process id.

    `handoff`: None, the container end of the veth pair is made inside `netns` as `ifname`
    and configured (address, route); a name, the container end is made in the host
    namespace under that name, with the MAC and MTU only, and left there for the container
    runtime to move into `netns` and configure (Docker's remote driver `Join`)."""

    network: str
    endpoint_id: str
    name: str
    ip: str
    mac: str
    netns: str | int
    ifname: str = "eth0"
    handoff: str | None = None

    def __attrs_post_init__(self) -> None:
        _parsed(values.name, self.network, "network")
        _parsed(values.name, self.endpoint_id, "endpoint_id")
        _parsed(values.name, self.name, "name")
        object.__setattr__(self, "ip", str(_parsed(values.host_interface, self.ip, "ip")))
        object.__setattr__(self, "mac", _parsed(values.mac, self.mac, "mac"))
        _parsed(values.ifname, self.ifname, "ifname")
        _parsed(values.netns, self.netns, "netns")
        if self.handoff is not None:
            _parsed(values.ifname, self.handoff, "handoff")

    @property
    def address(self) -> str:
        return self.ip.split("/")[0]


@attrs.frozen
class Sandbox:
    """The devices of one network on this host (what `attach` plugs containers into)."""

    network: str
    netns: str
    vni: int
    port: int
    local_vtep: str
    mtu: int
    gateway: str | None
    """Containers' default route; also the bridge's address (with the subnet's prefix)."""
    bridge_address: str | None
    bridge: str = names.BRIDGE
    vxlan: str = names.VXLAN

    @property
    def host_vxlan(self) -> str:
        """The VXLAN device's name in the host namespace, before it moves in."""
        return names.host_vxlan_name(self.vni)


@attrs.frozen
class DesiredSandbox:
    sandbox: Sandbox
    fdb: Fdb
    neighbours: Mapping[str, str]
    """IPv4 address -> MAC."""


@attrs.frozen
class DesiredState:
    node_tag: str
    sandboxes: Mapping[str, DesiredSandbox]
    """By namespace name."""

    def sandbox(self, network: str) -> Sandbox:
        """The sandbox of a network; it exists only while the network has a local endpoint."""
        for want in self.sandboxes.values():
            if want.sandbox.network == network:
                return want.sandbox
        raise LocalProtocolError(f"network {network!r} has no sandbox (no local endpoint in it)")

    def entry_count(self) -> int:
        return sum(len(w.fdb) + len(w.neighbours) for w in self.sandboxes.values())


def overlay_mtu(spec: NetworkSpec, underlay_mtu: int) -> int:
    mtu = underlay_mtu - VXLAN_OVERHEAD
    if spec.mtu is not None:
        mtu = min(mtu, spec.mtu)
    if mtu < MIN_MTU:
        raise ConfigError("underlay_mtu", f"{underlay_mtu} leaves MTU {mtu} for {spec.name!r} (< {MIN_MTU})")
    return mtu


def _sandbox(tag: str, spec: NetworkSpec, local_vtep: str, underlay_mtu: int) -> Sandbox:
    prefixlen = ipaddress.IPv4Network(spec.subnet).prefixlen
    return Sandbox(
        network=spec.name,
        netns=names.sandbox_name(tag, spec.vni),
        vni=spec.vni,
        port=spec.port,
        local_vtep=local_vtep,
        mtu=overlay_mtu(spec, underlay_mtu),
        gateway=spec.gateway,
        bridge_address=f"{spec.gateway}/{prefixlen}" if spec.gateway else None,
    )


def _entries(
    spec: NetworkSpec, locals_: list[LocalEndpoint], remotes: list[RemoteEndpoint]
) -> tuple[Fdb, dict[str, str]]:
    used_ips = {ep.address for ep in locals_}
    used_macs = {ep.mac for ep in locals_}
    fdb: set[tuple[str, str]] = set()
    neighbours: dict[str, str] = {}
    vteps: set[str] = set()
    for ep in sorted(remotes, key=lambda e: e.endpoint_id):
        if ep.address in used_ips or ep.mac in used_macs:
            continue
        used_ips.add(ep.address)
        used_macs.add(ep.mac)
        fdb.add((ep.mac, ep.vtep))
        neighbours[ep.address] = ep.mac
        vteps.add(ep.vtep)
    if spec.flood:
        fdb.update((FLOOD_MAC, vtep) for vtep in vteps)
    return frozenset(fdb), neighbours


def desired_state(
    node_tag: str,
    local_vtep: str,
    underlay_mtu: int,
    networks: Iterable[NetworkSpec],
    local_endpoints: Iterable[LocalEndpoint],
    remote_endpoints: Iterable[RemoteEndpoint],
) -> DesiredState:
    """What the kernel of this host should hold (see the module rules)."""
    names.check_tag(node_tag)
    local_vtep = _parsed(values.vtep, local_vtep, "local_vtep")
    _parsed(values.underlay_mtu, underlay_mtu, "underlay_mtu")
    specs: dict[str, NetworkSpec] = {}
    vnis: dict[int, str] = {}
    for spec in networks:
        if spec.name in specs:
            raise ConfigError("networks", f"{spec.name!r} given twice")
        if spec.vni in vnis:
            raise ConfigError("networks", f"{spec.name!r} and {vnis[spec.vni]!r} share VNI {spec.vni}")
        specs[spec.name] = spec
        vnis[spec.vni] = spec.name
    locals_by_net: dict[str, list[LocalEndpoint]] = {}
    for lep in local_endpoints:
        if lep.network not in specs:
            raise ConfigError("local_endpoints", f"{lep.endpoint_id!r} is on unknown network {lep.network!r}")
        locals_by_net.setdefault(lep.network, []).append(lep)
    remotes_by_net: dict[str, list[RemoteEndpoint]] = {}
    for rep in remote_endpoints:
        if rep.vtep != local_vtep and rep.network in locals_by_net:
            remotes_by_net.setdefault(rep.network, []).append(rep)
    sandboxes: dict[str, DesiredSandbox] = {}
    for net_name, locals_ in sorted(locals_by_net.items()):
        spec = specs[net_name]
        box = _sandbox(node_tag, spec, local_vtep, underlay_mtu)
        fdb, neighbours = _entries(spec, locals_, remotes_by_net.get(net_name, []))
        sandboxes[box.netns] = DesiredSandbox(box, fdb, neighbours)
    return DesiredState(node_tag, sandboxes)
