"""The datapath: desired kernel state from the overlay tables, a pure diff, and two datapaths.

    desired = desired_state(node_tag, local_vtep, underlay_mtu, networks, locals, remotes)
    result = datapath.reconcile(desired)        # dump the kernel, diff, apply
    datapath.attach(desired.sandbox(net), ep)   # plug a container in (after reconcile)

`LinuxDatapath` programs the kernel (pyroute2 for devices, batched raw netlink for FDB and
neighbour entries); `MemoryDatapath` keeps the same state in memory. Both reconcile from
what they hold, never from what they were told earlier, and both provide the `Datapath`
protocol, including `watch()`: a source of the changes others make to the sandboxes
(`swimnet.datapath.watch`; netlink inside each sandbox for the kernel, `kwatch`).
`swimnet.datapath.driver.DatapathDriver` (trio; not imported here) keeps a datapath equal
to the overlay snapshots the agent computes, in the background, and repairs what others
change as it happens.
"""

from typing import TYPE_CHECKING

from swimnet.datapath.actual import ActualState, BridgeState, SandboxState, VxlanState
from swimnet.datapath.diff import diff
from swimnet.datapath.linux import LinuxDatapath
from swimnet.datapath.memory import MemoryDatapath
from swimnet.datapath.model import (
    DesiredSandbox,
    DesiredState,
    LocalEndpoint,
    NetworkSpec,
    RemoteEndpoint,
    Sandbox,
    desired_state,
)
from swimnet.datapath.ops import ApplyResult, Datapath, Op, OpError
from swimnet.overlay.model import mac_from_ip

if TYPE_CHECKING:

    def _both_are_datapaths(linux: LinuxDatapath, memory: MemoryDatapath) -> tuple[Datapath, Datapath]:
        return linux, memory


__all__ = [
    "ActualState",
    "ApplyResult",
    "BridgeState",
    "Datapath",
    "DesiredSandbox",
    "DesiredState",
    "LinuxDatapath",
    "LocalEndpoint",
    "MemoryDatapath",
    "NetworkSpec",
    "Op",
    "OpError",
    "RemoteEndpoint",
    "Sandbox",
    "SandboxState",
    "VxlanState",
    "desired_state",
    "diff",
    "mac_from_ip",
]
