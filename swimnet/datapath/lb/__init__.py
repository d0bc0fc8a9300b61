"""Service load balancing: VIPs DNATed to backends by nftables in each container namespace.

    desired = desired_lb(snapshot)               # {netns ref: Ruleset}, pure
    result = lb.reconcile(desired)               # per namespace: dump -> diff -> apply
    lb = LinuxLoadBalancer()                     # or MemoryLoadBalancer() in tests

`LinuxLoadBalancer` programs `table ip swimnet` in each namespace (libnftables for the
table's structure, raw nfnetlink for map elements; see `linux`); `MemoryLoadBalancer` keeps
the same table in memory. Both provide the `LoadBalancer` protocol, which the datapath
driver uses through `sync.LbSync`. The table layout is in `table`, the pure diff in `diff`.
"""

from typing import TYPE_CHECKING

from swimnet.datapath.lb.diff import lb_diff
from swimnet.datapath.lb.memory import MemoryLoadBalancer
from swimnet.datapath.lb.model import Backend, Frontend, NetnsRef, Ruleset, desired_lb, rulesets
from swimnet.datapath.lb.ops import Command, LbResult, LoadBalancer, NsOutcome
from swimnet.datapath.lb.table import TableState, table_for

if TYPE_CHECKING:

    def _is_a_load_balancer(memory: MemoryLoadBalancer) -> LoadBalancer:
        return memory


__all__ = [
    "Backend",
    "Command",
    "Frontend",
    "LbResult",
    "LoadBalancer",
    "MemoryLoadBalancer",
    "NetnsRef",
    "NsOutcome",
    "Ruleset",
    "TableState",
    "desired_lb",
    "lb_diff",
    "rulesets",
    "table_for",
]
