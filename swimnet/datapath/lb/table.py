"""The nftables table the load balancer owns in a container namespace, as values.

Layout of `table ip swimnet` (what `table_for(ruleset)` describes), M = max(PICK_MIN,
largest backend count):

    map services { type ipv4_addr . inet_proto . inet_service : verdict }
        VIP . protocol . published port -> goto pick-<N>, N = the frontend's backend count
    map backend-<i> { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
        (i = 0..M-1) VIP . protocol . published port -> the frontend's i-th backend
        address . target port
    set vips { type ipv4_addr }
        every VIP of the namespace's services, with or without backends
    chain nat-output { type nat hook output priority -100; policy accept;
        ip daddr . meta l4proto . th dport vmap @services }
    chain pick-<N> { numgen random mod N vmap { 0 : goto slot-0, ..., N-1 : goto slot-<N-1> } }
    chain slot-<i> { meta l4proto { tcp, udp }
        dnat ip to ip daddr . meta l4proto . th dport map @backend-<i> }
    chain filter-output { type filter hook output priority 0; policy accept;
        ip daddr @vips reject }

Rules:
- traffic to a VIP starts in the container itself, so DNAT hooks `output` (type nat,
  priority -100, dstnat); the kernel re-routes the rewritten packet to the backend, and
  conntrack un-NATs the replies, so neither an address for the VIP nor masquerade is needed;
- what a client container needs: a route to the VIP before DNAT (the output hook runs
  after the first routing decision; without one, connect() fails with ENETUNREACH and
  no rule is consulted). A VIP inside its network's subnet (which the agent requires) is
  covered by the on-link route of the container's overlay interface, so nothing else is
  needed: the packet never leaves with the VIP as destination (no ARP for it), and the
  backends are reached through that interface, the sandbox bridge and the VXLAN device
  the FDB datapath programs. A VIP outside every attached subnet would need a route (a
  default route via the network's gateway does);
- spreading is `numgen random mod N` (kube-proxy's nftables mode does the same): stateless,
  even in expectation for every N; `numgen inc` keeps one counter per rule, and a pick-N
  rule is shared by every frontend with N backends, so it would not be round robin per
  service anyway;
- only the first packet of a connection traverses nat chains: an established connection
  keeps its backend (its conntrack entry) whatever the maps say later; for UDP that also
  means a flow to a removed backend lives as long as its conntrack entry is refreshed
  (kube-proxy deletes such entries; not done here);
- a VIP packet no frontend translated (a port the service does not publish, a frontend
  without backends) is rejected at `filter-output` (priority 0, after DNAT: translated
  packets no longer carry the VIP), so clients fail at once instead of waiting for ARP;
- chains pick-1..pick-PICK_MIN, slot-0..slot-(M-1) and maps backend-0..backend-(M-1)
  exist whatever the frontends, so a service scaling within that range changes elements
  only; above PICK_MIN, pick-N exists only for the counts in use (pick-N holds an N-arm
  vmap: every count up to 500 would be 125,000 anonymous elements);
- every set is declared with `type`, none with `typeof`: nft 1.0.6 cannot evaluate a rule
  against a `typeof` map it reads back from the kernel whose data is `ip daddr . th dport`
  ("conflicting protocols specified: tcp vs. th"), which made every incremental rule
  write fail; one map per slot avoids the numgen part of the key that needed typeof;
- everything the diff compares is a value: set and chain declarations and rules are
  compared as nft's JSON listing prints them (canonical JSON text; the nft text that
  creates them rides along, excluded from equality), elements as the kernel's bytes
  (`Key` -> `Data`), so the dump needs no nft parsing of elements;
- element bytes: each part of a concatenation takes a multiple of 4 bytes (an nftables
  register): IPv4 address 4 bytes network order, protocol 1 byte + 3 padding, port 2 bytes
  big-endian + 2 padding; the empty key is the catch-all element (`*`), which the table
  never wants.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import struct
from collections.abc import Mapping
from typing import Any

import attrs

from swimnet.datapath.lb.model import Ruleset

FAMILY = "ip"
TABLE = "swimnet"
SERVICES = "services"
BACKEND_PREFIX = "backend-"
VIPS = "vips"
NAT_CHAIN = "nat-output"
FILTER_CHAIN = "filter-output"
PICK_PREFIX = "pick-"
SLOT_PREFIX = "slot-"
PICK_MIN = 8
NAT_PRIORITY = -100
FILTER_PRIORITY = 0
PROTOCOLS = {"tcp": 6, "udp": 17}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}
CATCH_ALL = b""

Key = bytes
Data = bytes | str | None
"""A map value's bytes, the chain a verdict map element goes to, or None in a plain set."""
Elements = Mapping[Key, Data]

_PORT = struct.Struct("!H2x")
_PROTO = struct.Struct("B3x")


def canonical(value: Any) -> str:
    """The text two listings of the same thing share (key order and spacing fixed)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@attrs.frozen
class Decl:
    """A set, map or chain declaration: what nft lists (compared) and how to create it."""

    listed: str
    """Canonical JSON of the listing without family, table, name and handle."""
    text: str = attrs.field(default="", eq=False)
    """The nft statement body that declares it (empty for what a dump found)."""


@attrs.frozen
class Rule:
    listed: str
    """Canonical JSON of the rule's `expr` list as nft lists it."""
    text: str = attrs.field(default="", eq=False)
    """The nft rule text (empty for what a dump found)."""


@attrs.frozen
class Chain:
    decl: Decl
    rules: tuple[Rule, ...] = ()


@attrs.frozen
class TableState:
    """Our table in one namespace: desired (from `table_for`) or actual (from a dump)."""

    sets: Mapping[str, Decl]
    chains: Mapping[str, Chain]
    elements: Mapping[str, Elements]
    """Elements of our own sets (see `set_decl`) only, by set name."""
    unmanaged: tuple[str, ...] = ()
    """Objects of kinds the table never has (counters, quotas, flowtables...): a table
    holding any is rebuilt."""

    @property
    def element_count(self) -> int:
        return sum(len(e) for e in self.elements.values())


# -- declarations and rules ------------------------------------------------------------

_DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
_L4PROTO = {"meta": {"key": "l4proto"}}
_DPORT = {"payload": {"protocol": "th", "field": "dport"}}
_FRONTEND = "ip daddr . meta l4proto . th dport"


def _base_chain(kind: str, priority: int) -> Decl:
    listed = {"type": kind, "hook": "output", "prio": priority, "policy": "accept"}
    return Decl(canonical(listed), f"type {kind} hook output priority {priority}; policy accept;")


SERVICES_DECL = Decl(
    canonical({"map": "verdict", "type": ["ipv4_addr", "inet_proto", "inet_service"]}),
    "type ipv4_addr . inet_proto . inet_service : verdict;",
)
BACKEND_DECL = Decl(
    canonical({"map": "ipv4_addr . inet_service", "type": ["ipv4_addr", "inet_proto", "inet_service"]}),
    "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
)
VIPS_DECL = Decl(canonical({"type": "ipv4_addr"}), "type ipv4_addr;")


def backend_map(slot: int) -> str:
    return f"{BACKEND_PREFIX}{slot}"


def set_decl(name: str) -> Decl | None:
    """The declaration a set of ours with this name has (None: not a name of ours)."""
    if name == SERVICES:
        return SERVICES_DECL
    if name == VIPS:
        return VIPS_DECL
    rest = name.removeprefix(BACKEND_PREFIX)
    if rest != name and rest.isdigit() and str(int(rest)) == rest:
        return BACKEND_DECL
    return None


def set_kind(name: str) -> str:
    return "set" if name == VIPS else "map"


NAT_DECL = _base_chain("nat", NAT_PRIORITY)
FILTER_DECL = _base_chain("filter", FILTER_PRIORITY)
REGULAR = Decl(canonical({}), "")

DISPATCH = Rule(
    canonical([{"vmap": {"key": {"concat": [_DADDR, _L4PROTO, _DPORT]}, "data": f"@{SERVICES}"}}]),
    f"{_FRONTEND} vmap @{SERVICES}",
)
REJECT = Rule(
    canonical(
        [
            {"match": {"op": "==", "left": _DADDR, "right": f"@{VIPS}"}},
            {"reject": {"type": "icmp", "expr": "port-unreachable"}},
        ]
    ),
    f"ip daddr @{VIPS} reject",
)


@functools.lru_cache(maxsize=1024)
def pick_chain(n: int) -> str:
    return f"{PICK_PREFIX}{n}"


def slot_chain(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot}"


@functools.lru_cache(maxsize=256)
def pick_rule(n: int) -> Rule:
    """numgen random mod N vmap { 0 : goto slot-0, ... }"""
    targets = [[i, {"goto": {"target": slot_chain(i)}}] for i in range(n)]
    listed = [
        {"vmap": {"key": {"numgen": {"mode": "random", "mod": n, "offset": 0}}, "data": {"set": targets}}}
    ]
    arms = ", ".join(f"{i} : goto {slot_chain(i)}" for i in range(n))
    return Rule(canonical(listed), f"numgen random mod {n} vmap {{ {arms} }}")


@functools.lru_cache(maxsize=256)
def slot_rule(slot: int) -> Rule:
    """meta l4proto { tcp, udp } dnat ip to <frontend> map @backend-<slot>"""
    key = {"concat": [_DADDR, _L4PROTO, _DPORT]}
    listed = [
        {"match": {"op": "==", "left": _L4PROTO, "right": {"set": ["tcp", "udp"]}}},
        {"dnat": {"family": "ip", "addr": {"map": {"key": key, "data": f"@{backend_map(slot)}"}}}},
    ]
    text = f"meta l4proto {{ tcp, udp }} dnat ip to {_FRONTEND} map @{backend_map(slot)}"
    return Rule(canonical(listed), text)


# -- element bytes ---------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def ip_bytes(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def frontend_key(vip: str, protocol: str, port: int) -> Key:
    return ip_bytes(vip) + _PROTO.pack(PROTOCOLS[protocol]) + _PORT.pack(port)


def backend_data(ip: str, port: int) -> bytes:
    return ip_bytes(ip) + _PORT.pack(port)


def _ip_text(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"  # 10x ipaddress's str()


def _frontend_text(key: bytes) -> str:
    (port,) = _PORT.unpack_from(key, 8)
    return f"{_ip_text(key)} . {key[4]} . {port}"


def key_text(set_name: str, key: Key) -> str:
    """An element key in nft's syntax (protocols as numbers, which nft accepts)."""
    if key == CATCH_ALL:
        return "*"
    if set_name == VIPS:
        return _ip_text(key)
    if set_decl(set_name) in (SERVICES_DECL, BACKEND_DECL):
        return _frontend_text(key)
    raise ValueError(f"no element syntax for set {set_name!r}")


def data_text(data: Data) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return f"goto {data}"
    (port,) = _PORT.unpack_from(data, 4)
    return f"{_ip_text(data)} . {port}"


def element_text(set_name: str, key: Key, data: Data) -> str:
    value = data_text(data)
    return f"{key_text(set_name, key)} : {value}" if value else key_text(set_name, key)


def describe_frontend(key: Key) -> tuple[str, str, int]:
    """(VIP, protocol, port) of a services or backend-<i> key (for tests and logs)."""
    (port,) = _PORT.unpack_from(key, 8)
    return _ip_text(key), PROTOCOL_NAMES.get(key[4], str(key[4])), port


def describe_backend(data: bytes) -> tuple[str, int]:
    """(address, port) of a backend-<i> value."""
    return _ip_text(data), _PORT.unpack_from(data, 4)[0]


# -- the desired table -----------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)
def _frontend_elements(
    frontend: tuple[str, str, int], targets: tuple[tuple[str, int], ...]
) -> tuple[Key, str, tuple[bytes, ...]]:
    """A frontend's key, its pick chain and its backends' values by slot (memoised: one
    backend change re-encodes one frontend, not the table)."""
    vip, protocol, port = frontend
    values = tuple(backend_data(ip, target) for ip, target in targets)
    return frontend_key(vip, protocol, port), pick_chain(len(targets)), values


@functools.lru_cache(maxsize=1024)
def table_for(ruleset: Ruleset) -> TableState | None:
    """The table a namespace with `ruleset` should hold; None when it should hold none."""
    if ruleset.empty:
        return None
    counts = {len(targets) for _, targets in ruleset.frontends}
    slots = max(PICK_MIN, *counts) if counts else PICK_MIN
    services: dict[Key, Data] = {}
    backends: list[dict[Key, Data]] = [{} for _ in range(slots)]
    for frontend, targets in ruleset.frontends:
        if targets:
            key, chain, values = _frontend_elements(frontend, targets)
            services[key] = chain
            for slot, value in enumerate(values):
                backends[slot][key] = value
    sets = {SERVICES: SERVICES_DECL, VIPS: VIPS_DECL}
    elements: dict[str, Elements] = {SERVICES: services, VIPS: {ip_bytes(vip): None for vip in ruleset.vips}}
    chains = {NAT_CHAIN: Chain(NAT_DECL, (DISPATCH,)), FILTER_CHAIN: Chain(FILTER_DECL, (REJECT,))}
    for slot in range(slots):
        sets[backend_map(slot)] = BACKEND_DECL
        elements[backend_map(slot)] = backends[slot]
        chains[slot_chain(slot)] = Chain(REGULAR, (slot_rule(slot),))
    for n in sorted(set(range(1, PICK_MIN + 1)) | counts - {0}):
        chains[pick_chain(n)] = Chain(REGULAR, (pick_rule(n),))
    return TableState(sets=sets, chains=chains, elements=elements)


# -- the actual table, from a listing --------------------------------------------------

_IDENTITY = ("family", "table", "name", "handle")


def _decl_of(body: Mapping[str, Any]) -> Decl:
    return Decl(canonical({k: v for k, v in body.items() if k not in _IDENTITY and k != "elem"}))


def table_from_listing(
    listing: Mapping[str, Any], elements: Mapping[str, Elements] | None = None
) -> TableState | None:
    """Our table from `nft -j -t list ruleset ip` (None when there is none); `elements`
    are the element dumps of our sets (see swimnet.datapath.lb.nfnetlink)."""
    found = False
    sets: dict[str, Decl] = {}
    chains: dict[str, Decl] = {}
    rules: dict[str, list[Rule]] = {}
    unmanaged: list[str] = []
    for item in listing.get("nftables", ()):
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((kind, body),) = item.items()
        if not isinstance(body, dict) or body.get("family") != FAMILY:
            continue
        if kind == "table":
            found = found or body.get("name") == TABLE
            continue
        if body.get("table") != TABLE:
            continue
        name = str(body.get("name", ""))
        if kind in ("set", "map"):
            sets[name] = _decl_of(body)
        elif kind == "chain":
            chains[name] = _decl_of(body)
        elif kind == "rule":
            rules.setdefault(str(body.get("chain", "")), []).append(Rule(canonical(body.get("expr", []))))
        elif kind != "metainfo":
            unmanaged.append(f"{kind} {name}".strip())
    if not found:
        return None
    return TableState(
        sets=sets,
        chains={name: Chain(decl, tuple(rules.get(name, ()))) for name, decl in chains.items()},
        elements=dict(elements or {}),
        unmanaged=tuple(sorted(unmanaged)),
    )
