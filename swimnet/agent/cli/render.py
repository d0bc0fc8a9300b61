"""Human output of the CLI: aligned tables and key/value blocks from the API's JSON answers.

Rules: pure (JSON in, text out); a missing value prints as "-"; tables have a header row
and columns padded to their widest cell; the last column is not padded (no trailing
spaces); every function returns the text without a final newline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value) or "-"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(headers), *([cell(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        padded = [text.ljust(widths[i]) for i, text in enumerate(r[:-1])] + [r[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def block(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {cell(v)}" for k, v in pairs)


def rtt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}ms"


def members(rows: list[dict[str, Any]]) -> str:
    return table(
        ["Node", "Address", "Status", "Incarnation", "RTT"],
        [
            [
                r["name"] + (" (self)" if r.get("local") else ""),
                r["address"],
                r["state"],
                r["incarnation"],
                rtt(r["rtt_ms"]),
            ]
            for r in rows
        ],
    )


def networks(rows: list[dict[str, Any]]) -> str:
    return table(
        ["Name", "Subnet", "VNI", "Gateway", "MTU", "Endpoints", "Owner"],
        [
            [
                r["name"],
                r["subnet"],
                f"{r['vni']}!" if r.get("vni_collision") else r["vni"],
                r["gateway"],
                r["mtu"],
                r["endpoints"] if r.get("held") else "(not held)",
                r["owner"],
            ]
            for r in rows
        ],
    )


def network(doc: dict[str, Any]) -> str:
    vni = str(doc["vni"])
    if doc.get("vni_collision"):
        vni += f" (requested {doc['vni_requested']} is taken by an older network)"
    elif doc.get("vni_requested") is None:
        vni += " (allocated)"
    parts = [
        block(
            [
                ("Name", doc["name"]),
                ("Subnet", doc["subnet"]),
                ("Gateway", doc["gateway"]),
                ("MTU", doc["mtu"]),
                ("VNI", vni),
                ("Options", ", ".join(f"{k}={v}" for k, v in sorted(doc.get("options", {}).items()))),
                ("Created", doc["created"]),
                ("Owner", doc["owner"]),
                ("Agents", doc.get("agents")),
                ("Held here", doc["held"]),
            ]
        )
    ]
    if not doc["held"]:
        parts.append("(this agent holds no endpoint table for this network: ask one of its agents)")
        return "\n".join(parts)
    parts.append("\nEndpoints:")
    parts.append(endpoints(doc.get("endpoint_list") or []))
    if doc.get("services"):
        parts.append("\nServices:")
        parts.append(services(doc["services"]))
    for c in doc.get("conflicts") or []:
        users = ", ".join(f"{e['id']}@{e['owner']}" for e in c["endpoints"])
        parts.append(f"CONFLICT: {c['kind']} {c['value']} is used by {users}")
    return "\n".join(parts)


def endpoints(rows: list[dict[str, Any]]) -> str:
    def flags(r: dict[str, Any]) -> str:
        out = ("local" if r.get("local") else "") + (" CONFLICT" if r.get("conflict") else "")
        if r.get("published") is False:
            out += " unpublished"
        return out.strip()

    return table(
        ["ID", "Name", "Network", "IP", "MAC", "VTEP", "Owner", "Flags"],
        [
            [r["id"], r["name"], r["network"], r["ip"], r["mac"], r["vtep"], r["owner"], flags(r)]
            for r in rows
        ],
    )


def endpoint_listing(doc: dict[str, Any]) -> str:
    text = endpoints(doc["endpoints"])
    if doc.get("not_held"):
        text += f"\n(not held by this agent, endpoints unknown here: {', '.join(doc['not_held'])})"
    return text


def ports(items: list[dict[str, Any]]) -> str:
    return ",".join(f"{p['protocol']}:{p['published']}:{p['target']}" for p in items)


def services(rows: list[dict[str, Any]]) -> str:
    return table(
        ["Name", "Network", "Mode", "VIP", "Ports", "Backends", "Owner"],
        [
            [r["name"], r["network"], r["mode"], r["vip"], ports(r["ports"]), r["backends"], r["owner"]]
            for r in rows
        ],
    )


def service(doc: dict[str, Any]) -> str:
    """`service inspect`: the service row, its backends' states, the namespaces programmed here."""
    parts = [services([doc])]
    states = doc.get("backend_states")
    if states:
        rows = [[b["id"], b.get("name"), b.get("ip"), b["state"], b.get("owner")] for b in states]
        parts.append("Backends:\n" + table(["Endpoint", "Name", "IP", "State", "Owner"], rows))
    programmed = doc.get("programmed")
    if programmed is None:
        parts.append("Programmed here: - (no datapath)")
    elif programmed:
        rows = [[p["endpoint"], p["netns"], p["state"]] for p in programmed]
        parts.append("Programmed here:\n" + table(["Endpoint", "Netns", "State"], rows))
    else:
        parts.append("Programmed here: none")
    return "\n\n".join(parts)


def dns(doc: dict[str, Any]) -> str:
    head = f"{doc['name']} {doc['type']} from {doc.get('from') or 'network ' + doc['network']}"
    head += f" (networks: {cell(doc['networks'])})"
    if doc["forwarded"]:
        return head + "\nnot an overlay name: a container's query goes to the host's resolvers"
    found = f" ({doc['kind']} in {doc['answered_by']})" if doc.get("kind") else ""
    lines = [head, doc["rcode"] + found]
    lines += [f"  {r}" for r in doc["records"]]
    return "\n".join(lines)


def service_listing(doc: dict[str, Any]) -> str:
    text = services(doc["services"])
    if doc.get("not_held"):
        text += f"\n(not held by this agent, services unknown here: {', '.join(doc['not_held'])})"
    return text


def key_listing(doc: dict[str, Any]) -> str:
    return table(["Key ID", "Primary"], [[k, k == doc["primary"]] for k in doc["keys"]])


def key_result(doc: dict[str, Any]) -> str:
    lines = [f"{doc['action']} {doc['key_id']}: {'ok' if doc['ok'] else 'INCOMPLETE'}"]
    lines.append(f"  acknowledged by: {cell(doc['acked'])}")
    for name, error in sorted(doc["failed"].items()):
        lines.append(f"  refused by {name}: {error}")
    if doc["missing"]:
        lines.append(f"  no answer from: {cell(doc['missing'])}")
    return "\n".join(lines)


def _entry_value(e: dict[str, Any]) -> str:
    value = e.get("value")
    if not isinstance(value, dict):
        return f"<{e['size']} bytes>"
    keys = ("ip", "mac", "vtep", "subnet", "vni", "vip", "mode", "backends")
    shown = [f"{k}={cell(value[k])}" for k in keys if k in value and value[k] not in (None, [], ())]
    return " ".join(shown) or cell(value.get("name"))


def tables_dump(doc: dict[str, Any]) -> str:
    atts = ", ".join(
        f"{a['node']}{' (leaving)' if a['leaving'] else ''}{' (failed)' if a['failed'] else ''}"
        for a in doc["attachments"]
    )
    head = block(
        [
            ("Network", doc["network"]),
            ("Agents", atts),
            ("Digest", f"{doc['digest']['count']} entries, {doc['digest']['hash']}"),
            ("Table clock", doc["table_clock"]),
        ]
    )

    def state(e: dict[str, Any]) -> str:
        return "deleted" if e["deleted"] else "hidden" if e["hidden"] else "live"

    rows = [[e["table"], e["key"], e["owner"], e["ltime"], state(e), _entry_value(e)] for e in doc["entries"]]
    return head + "\n\n" + table(["Table", "Key", "Owner", "LTime", "State", "Value"], rows)


def fdb(doc: dict[str, Any]) -> str:
    rows = [[e.get("mac"), e.get("vtep"), e.get("ip")] for e in doc["entries"]]
    return f"Network: {doc['network']}\n" + table(["MAC", "VTEP", "IP"], rows)


def status(doc: dict[str, Any]) -> str:
    members_text = ", ".join(f"{n} {s}" for s, n in sorted(doc["members"].items()) if n)
    keyring = doc.get("keyring")
    pairs: list[tuple[str, Any]] = [
        ("Name", doc["name"]),
        ("Address", doc["address"]),
        ("Advertise", doc["advertise"]),
        ("Incarnation", doc["incarnation"]),
        ("Health score", doc["health_score"]),
        ("Ready", doc["ready"]),
        ("Joined", doc["joined"] if not doc.get("join_error") else f"no: {doc['join_error']}"),
        ("Members", members_text),
        ("Networks held", doc["networks_held"]),
        ("Local endpoints", doc["local_endpoints"]),
        ("Conflicts", doc["conflicts"]),
        ("Datapath", "on" if doc["datapath"] else "off"),
        ("Encryption", f"{keyring['keys']} keys, primary {keyring['primary']}" if keyring else "off"),
        ("Label", doc.get("label")),
        ("Metrics", doc.get("metrics")),
        ("Socket", doc.get("socket")),
        ("State dir", doc.get("state_dir")),
    ]
    counters = {**doc.get("stats", {}), **{f"agent_{k}": v for k, v in doc.get("agent_stats", {}).items()}}
    lines = [block(pairs), "", "Counters:"]
    lines += [f"  {k} = {v}" for k, v in sorted(counters.items()) if v]
    return "\n".join(lines)
