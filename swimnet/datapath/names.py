"""Names of everything the datapath creates, and how to recognise them again.

Rules:
- a node tag is an agent's node name (swimnet.values.node_name: 1..63 characters of
  [A-Za-z0-9_.-] starting with a letter or digit);
- the sandbox of network VNI v on node tag t is the network namespace `swn-<t>-<v>`; it is
  ours exactly when the part after `swn-<t>-` is all digits, so tags that extend each other
  (`a` and `a-1`) never claim each other's namespaces (`swn-a-1-7` is not `swn-a-<digits>`);
- inside a sandbox the bridge is `br0` and the VXLAN device `vxlan0`; a VXLAN device is born
  in the host namespace as `swv<vni>` and renamed when it moves, so a host link with that
  name is a leftover of a run that crashed between the two steps;
- the sandbox side of an endpoint's veth pair is `ve` + 10 hex digits of a hash of the
  endpoint id (15 characters is the kernel's limit).
"""

from __future__ import annotations

import hashlib
import re

from swimnet import values
from swimnet.errors import ConfigError

PREFIX = "swn-"
BRIDGE = "br0"
VXLAN = "vxlan0"
HOST_VXLAN_PREFIX = "swv"

_HOST_VXLAN = re.compile(r"swv(\d{1,8})")


def check_tag(tag: str) -> str:
    try:
        return values.node_name(tag, "node_tag")
    except values.InvalidValue as exc:
        raise ConfigError(exc.field, exc.reason) from None


def sandbox_prefix(tag: str) -> str:
    return f"{PREFIX}{tag}-"


def sandbox_name(tag: str, vni: int) -> str:
    return f"{sandbox_prefix(tag)}{vni}"


def sandbox_vni(tag: str, netns: str) -> int | None:
    """The VNI of one of this node's sandbox names, None for any other name."""
    prefix = sandbox_prefix(tag)
    if not netns.startswith(prefix):
        return None
    rest = netns[len(prefix) :]
    return int(rest) if rest.isdigit() and len(rest) <= 8 else None


def host_vxlan_name(vni: int) -> str:
    return f"{HOST_VXLAN_PREFIX}{vni}"


def is_host_vxlan_name(ifname: str) -> bool:
    return _HOST_VXLAN.fullmatch(ifname) is not None


def veth_name(endpoint_id: str) -> str:
    return "ve" + hashlib.blake2b(endpoint_id.encode(), digest_size=5).hexdigest()
