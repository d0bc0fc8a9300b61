"""What a dump of the kernel says this node's datapath holds (the diff's other input).

Rules:
- only this node's objects appear: sandbox namespaces named `swn-<tag>-<vni>` and, in the
  host namespace, VXLAN devices named `swv<vni>` (leftovers of an interrupted creation);
- `fdb` holds the `self` entries of the sandbox's VXLAN device as (MAC, VTEP) pairs, in any
  state; `neighbours` the NUD_PERMANENT IPv4 neighbours on it (others are ignored, so a
  desired entry in another state is simply rewritten); `learned` the MACs the bridge
  learned dynamically on the VXLAN port;
- a missing device is None; its entries are then empty.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from swimnet.datapath.model import Fdb


@attrs.frozen
class BridgeState:
    mtu: int
    up: bool
    addresses: frozenset[str]
    """IPv4 addresses with prefix length."""


@attrs.frozen
class VxlanState:
    vni: int
    port: int
    local: str | None
    learning: bool
    proxy: bool
    mtu: int
    up: bool
    master: str | None
    """Name of the device it is enslaved to."""


@attrs.frozen
class SandboxState:
    netns: str
    bridge: BridgeState | None = None
    vxlan: VxlanState | None = None
    fdb: Fdb = frozenset()
    neighbours: Mapping[str, str] = attrs.field(factory=dict)
    learned: frozenset[str] = frozenset()
    usable: bool = True
    """False for a name under the netns directory that is not a namespace (a crash while
    creating it); such a sandbox is removed, and re-created when desired."""


@attrs.frozen
class ActualState:
    node_tag: str
    sandboxes: Mapping[str, SandboxState] = attrs.field(factory=dict)
    """By namespace name."""
    host_vxlans: frozenset[str] = frozenset()

    def entry_count(self) -> int:
        return sum(len(s.fdb) + len(s.neighbours) for s in self.sandboxes.values())
