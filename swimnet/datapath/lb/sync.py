"""The datapath driver's load-balancing pass: services + attached containers -> kernel.

    lb_sync = LbSync(LinuxLoadBalancer(), driver.stats, log)
    done = lb_sync.sync(snapshot.services, [(network, netns ref), ...], hold=False)

Rules:
- the pass runs with every driver reconcile (after an update, debounced; periodically;
  on attach; after failures), right after the FDB pass, from the same snapshot: desired
  rulesets (swimnet.datapath.lb.model) -> `LoadBalancer.reconcile` (dump, diff, apply
  per namespace);
- `hold` (the driver's startup grace): namespaces that already hold our table are left as
  they are, empty ones are filled; a restarted agent's first snapshots come before its
  tables have synced, and would otherwise drop backends (and VIPs) that are still alive;
  the held-back namespaces count as deferred, and the driver reconciles again when the
  grace ends;
- a failing namespace is counted and logged and never stops the others, nor the FDB;
  a namespace whose container is gone is counted (`lb_gone`), not an error;
- stats (added to the driver's counter): lb_reconciles, lb_namespaces_changed,
  lb_commands, lb_elements, lb_netlink_commits, lb_nft_scripts, lb_errors, lb_gone,
  lb_deferred, lb_skipped (services or ports left out, once each); lb_errors also adds to
  `errors`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable, Sequence

import attrs

from swimnet.datapath.lb.model import NetnsRef, rulesets
from swimnet.datapath.lb.ops import LbResult, LoadBalancer
from swimnet.logfields import event
from swimnet.overlay.snapshot import ServiceSpec


@attrs.frozen
class LbPass:
    result: LbResult

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def deferred(self) -> int:
        return self.result.deferred


class LbSync:
    def __init__(
        self, lb: LoadBalancer, stats: collections.Counter[str], log: logging.Logger | None = None
    ) -> None:
        self.lb = lb
        self.stats = stats
        self.log = log if log is not None else logging.getLogger("swimnet.datapath.lb")
        self.last: LbResult | None = None
        self._skipped: set[str] = set()

    def sync(
        self,
        services: Sequence[ServiceSpec],
        attachments: Iterable[tuple[str, NetnsRef]],
        *,
        hold: bool = False,
    ) -> LbPass:
        desired = rulesets(services, attachments)
        for ruleset in desired.values():
            for why in ruleset.skipped:
                if why not in self._skipped:
                    self._skipped.add(why)
                    self.stats["lb_skipped"] += 1
                    warn = logging.WARNING
                    event(self.log, "load balancer: skipped", level=warn, event="lb_skipped", detail=why)
        result = self.lb.reconcile(desired, keep_existing=hold)
        self.last = result
        self._count(result)
        return LbPass(result)

    def _count(self, result: LbResult) -> None:
        s = self.stats
        s["lb_reconciles"] += 1
        for outcome in result.outcomes:
            s["lb_gone"] += outcome.gone
            s["lb_deferred"] += outcome.deferred
            if outcome.commands:
                s["lb_namespaces_changed"] += 1
                s["lb_commands"] += outcome.commands
                s["lb_elements"] += outcome.elements
                s["lb_netlink_commits" if outcome.path == "netlink" else "lb_nft_scripts"] += 1
            if outcome.error:
                s["lb_errors"] += 1
                s["errors"] += 1
                event(
                    self.log,
                    "load balancer: namespace not reconciled",
                    level=logging.WARNING,
                    event="lb_failed",
                    netns=str(outcome.netns),
                    error=outcome.error,
                )
        changed = result.changed
        if changed:
            event(
                self.log,
                "load balancer: reconciled",
                event="lb_reconciled",
                namespaces=changed,
                commands=sum(o.commands for o in result.outcomes),
                failed=len(result.errors),
            )
