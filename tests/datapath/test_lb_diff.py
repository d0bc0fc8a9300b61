"""The load balancer's diff and its in-memory twin: plans, repair, atomicity, restarts."""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from swimnet.datapath.lb import MemoryLoadBalancer, Ruleset, lb_diff, rulesets, table_for
from swimnet.datapath.lb.memory import MemoryTable
from swimnet.datapath.lb.ops import (
    AddChain,
    AddElements,
    AddRule,
    AddSet,
    AddTable,
    ApplyFailed,
    Command,
    Conflict,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    DeleteTable,
    FlushChain,
    elements_only,
)
from swimnet.datapath.lb.reconcile import reconcile_one
from swimnet.datapath.lb.table import (
    NAT_CHAIN,
    SERVICES,
    VIPS,
    Decl,
    Rule,
    backend_data,
    backend_map,
    frontend_key,
    table_from_listing,
)
from swimnet.datapath.lb.text import render
from swimnet.overlay.snapshot import ServiceSpec


def ruleset(*backends: str, vip: str = "10.1.0.100") -> Ruleset:
    web = ServiceSpec("net", "web", vip, "vip", (("tcp", 80, 8080),), backends)
    return rulesets([web], [("net", "c1")])["c1"]


THREE = ruleset("10.1.0.2", "10.1.0.3", "10.1.0.4")
TWO = ruleset("10.1.0.2", "10.1.0.4")


def converged(lb: MemoryLoadBalancer, want: Ruleset, ref: str = "c1") -> bool:
    return lb_diff(table_for(want), lb.dump(ref)) == ()


def test_an_empty_namespace_gets_the_whole_table_in_one_plan() -> None:
    plan = lb_diff(table_for(THREE), None)
    assert isinstance(plan[0], AddTable) and not elements_only(plan)
    lb = MemoryLoadBalancer()
    assert lb.apply("c1", plan) == "nft"
    assert converged(lb, THREE)
    assert lb_diff(None, None) == () and lb_diff(None, lb.dump("c1")) == (DeleteTable(),)


def test_a_backend_change_is_elements_only() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    plan = lb_diff(table_for(TWO), lb.dump("c1"))
    assert elements_only(plan)
    key = frontend_key("10.1.0.100", "tcp", 80)
    assert plan == (  # slot 1 now holds .4, slot 2 nothing, and the frontend picks among 2
        DeleteElements(backend_map(1), (key,)),
        AddElements(backend_map(1), ((key, backend_data("10.1.0.4", 8080)),)),
        DeleteElements(backend_map(2), (key,)),
        DeleteElements(SERVICES, (key,)),
        AddElements(SERVICES, ((key, "pick-2"),)),
    )
    result = lb.reconcile({"c1": TWO})
    assert result.ok and result.outcomes[0].path == "netlink" and converged(lb, TWO)
    assert lb.reconcile({"c1": TWO}).changed == 0


def test_hand_made_drift_is_repaired() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    table = lb.tables["c1"]
    table.rules[NAT_CHAIN] = []  # `nft flush chain` / `delete rule` by hand
    table.rules["pick-3"].append(Rule('[{"counter":null}]'))
    del table.elements[backend_map(0)][frontend_key("10.1.0.100", "tcp", 80)]
    table.elements[VIPS][b"\x0a\x01\x00\x63"] = None
    table.chains["extra"] = Decl("{}")
    table.rules["extra"] = [Rule('[{"jump":{"target":"pick-1"}}]')]
    table.sets["mine"] = Decl('{"type":"ipv4_addr"}')
    plan = lb_diff(table_for(THREE), lb.dump("c1"))
    kinds = [type(c) for c in plan]
    assert kinds.index(FlushChain) < kinds.index(DeleteChain) and DeleteSet("mine") in plan
    assert lb.reconcile({"c1": THREE}).ok and converged(lb, THREE)
    assert "extra" not in lb.tables["c1"].chains and "mine" not in lb.tables["c1"].sets


def test_a_table_that_cannot_be_repaired_in_place_is_replaced_in_one_plan() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    lb.tables["c1"].sets[VIPS] = Decl('{"type":"inet_service"}')  # our name, another type
    plan = lb_diff(table_for(THREE), lb.dump("c1"))
    assert plan[:2] == (DeleteTable(), AddTable())
    lb.tables["c1"].unmanaged.append("counter hits")
    assert lb_diff(table_for(THREE), lb.dump("c1"))[:2] == (DeleteTable(), AddTable())
    assert lb.reconcile({"c1": THREE}).ok and converged(lb, THREE)


def test_a_failing_plan_changes_nothing() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    before = lb.tables["c1"].copy()
    lb.fail(lambda ref, plan: True, errno.ENOMEM)
    result = lb.reconcile({"c1": TWO})
    assert not result.ok and "Cannot allocate memory" in (result.outcomes[0].error or "")
    assert lb.tables["c1"] == before


def test_the_memory_twin_refuses_what_the_kernel_refuses() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    bad_plans = [
        (DeleteElements(backend_map(0), (frontend_key("10.9.9.9", "tcp", 1),)),),  # missing element
        (AddElements(SERVICES, ((frontend_key("10.1.0.100", "tcp", 80), "pick-2"),)),),  # other value
        (AddElements(SERVICES, ((frontend_key("10.1.0.9", "tcp", 80), "nowhere"),)),),  # no such chain
        (DeleteSet(backend_map(0)),),  # still used by the slot-0 rule
        (DeleteChain("pick-3"),),  # has rules and a map goes there
        (FlushChain("slot-0"), DeleteChain("slot-0")),  # pick rules go there
        (AddChain(NAT_CHAIN, Decl("{}")),),  # exists with another declaration
    ]
    before = lb.tables["c1"].copy()
    for plan in bad_plans:
        with pytest.raises(ApplyFailed, match=r"File exists|No such|busy"):
            lb.apply("c1", (*plan, AddRule("pick-1", Rule("[]"))))
        assert lb.tables["c1"] == before


def test_namespaces_no_longer_desired_are_emptied_and_gone_ones_are_not_errors() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE, "c2": THREE})
    result = lb.reconcile({"c1": THREE})
    assert "c2" not in lb.tables and result.ok and lb.known == {"c1"}
    lb.gone.add("c1")
    result = lb.reconcile({"c1": THREE})
    assert result.ok and result.outcomes[0].gone and lb.known == set()


def test_a_restarted_agent_removes_what_it_no_longer_wants_and_keeps_the_rest() -> None:
    lb = MemoryLoadBalancer()
    both = rulesets(
        [
            ServiceSpec("net", "web", "10.1.0.100", "vip", (("tcp", 80, 8080),), ("10.1.0.2",)),
            ServiceSpec("net", "old", "10.1.0.101", "vip", (("tcp", 80, 8080),), ("10.1.0.3",)),
        ],
        [("net", "c1")],
    )
    lb.reconcile(both)
    restarted = MemoryLoadBalancer()
    restarted.tables, restarted.gone = lb.tables, lb.gone  # same "kernel", fresh memory
    web_only = ruleset("10.1.0.2")
    result = restarted.reconcile({"c1": web_only})
    assert result.outcomes[0].path == "netlink" and converged(restarted, web_only)


def test_keep_existing_fills_empty_namespaces_only() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    result = lb.reconcile({"c1": Ruleset(), "c2": TWO}, keep_existing=True)
    assert result.deferred == 1 and converged(lb, THREE, "c1") and converged(lb, TWO, "c2")


def test_render_is_one_script_naming_only_our_table() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    lb.tables["c1"].sets["mine"] = Decl('{"type":"ipv4_addr"}')
    text = render((DeleteTable(), *lb_diff(table_for(TWO), lb.dump("c1"))))
    assert all(" ip swimnet" in line for line in text.splitlines())
    assert text.startswith("add table ip swimnet\ndelete table ip swimnet\n")
    assert "delete element ip swimnet backend-2 { 10.1.0.100 . 6 . 80 }" in text
    assert "add element ip swimnet backend-1 { 10.1.0.100 . 6 . 80 : 10.1.0.4 . 8080 }" in text
    assert "delete set ip swimnet mine" in text
    plan = lb_diff(table_for(THREE), None)
    assert "add map ip swimnet services { type ipv4_addr . inet_proto . inet_service : verdict; }" in render(
        plan
    )
    assert any(isinstance(c, AddSet) and c.kind == "set" and c.name == VIPS for c in plan)


def test_a_listing_reads_back_as_the_desired_table() -> None:
    desired = table_for(THREE)
    assert desired is not None
    items: list[dict[str, object]] = [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "ip", "name": "swimnet"}},
    ]
    items.append({"table": {"family": "inet", "name": "swimnet"}})  # another family: not ours
    for name, decl in desired.sets.items():
        kind = "map" if '"map"' in decl.listed else "set"
        items.append(
            {kind: {"family": "ip", "table": "swimnet", "name": name, "handle": 3, **_json(decl.listed)}}
        )
    for name, chain in desired.chains.items():
        items.append(
            {
                "chain": {
                    "family": "ip",
                    "table": "swimnet",
                    "name": name,
                    "handle": 1,
                    **_json(chain.decl.listed),
                }
            }
        )
        for rule in chain.rules:
            items.append(
                {"rule": {"family": "ip", "table": "swimnet", "chain": name, "expr": _json(rule.listed)}}
            )
    actual = table_from_listing({"nftables": items}, desired.elements)
    assert actual is not None and lb_diff(desired, actual) == ()
    assert table_from_listing({"nftables": items[2:3]}) is None
    counters = table_from_listing(
        {"nftables": [*items, {"counter": {"family": "ip", "table": "swimnet", "name": "c"}}]}
    )
    assert counters is not None and counters.unmanaged == ("counter c",)


def _json(text: str) -> Any:
    return json.loads(text)


def test_memory_table_copy_is_deep() -> None:
    t = MemoryTable()
    t.elements["x"] = {b"k": None}
    c = t.copy()
    c.elements["x"][b"j"] = None
    assert attrs.asdict(t)["elements"] == {"x": {b"k": None}}


def test_a_conflicting_commit_is_planned_again_from_a_new_dump() -> None:
    lb = MemoryLoadBalancer()
    lb.reconcile({"c1": THREE})
    refusals = [2]

    def apply(plan: Sequence[Command]) -> str:
        if refusals[0]:
            refusals[0] -= 1
            lb.tables["c1"].elements[VIPS][b"\x0a\x01\x00\x63"] = None  # someone else's commit
            raise Conflict("the ruleset changed since it was read")
        return lb.apply("c1", plan)

    outcome = reconcile_one("c1", TWO, lambda: lb.dump("c1"), apply)
    assert outcome.error is None and outcome.path == "netlink" and converged(lb, TWO)
    refusals[0] = 99
    outcome = reconcile_one("c1", THREE, lambda: lb.dump("c1"), apply)
    assert outcome.error is not None and "changed" in outcome.error
