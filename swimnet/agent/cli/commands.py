"""One function per `swimnet-agent` command: build the request, call the agent, show the answer.

Rules: a command returns its exit code (EXIT_OK, or EXIT_API when the agent reports a key
operation that not every member acknowledged); failures travel as the client's exceptions
(AgentUnreachable, ApiFailure), which `main.run_cli` turns into messages and exit codes;
with `--json` the API's answer is printed as it came, else `render` makes it readable.
`keygen` needs no agent; `run` imports the daemon lazily.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable
from typing import Any, TextIO

from swimnet.agent.cli import render
from swimnet.agent.cli.client import ApiFailure, call, segment

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class Context:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.stdin = stdin

    def call(self, method: str, target: str, body: Any = None) -> Any:
        return call(self.args.socket, method, target, body, timeout=self.args.timeout)

    def show(self, doc: Any, human: Callable[[Any], str]) -> int:
        if self.args.json:
            self.out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        else:
            text = human(doc)
            if text:
                self.out.write(text + "\n")
        return EXIT_OK


def _q(name: str) -> str:
    return segment(name)


def cmd_members(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", "/v1/members"), render.members)


def cmd_status(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", "/v1/status"), render.status)


def cmd_network_create(ctx: Context) -> int:
    a = ctx.args
    body: dict[str, Any] = {"name": a.name, "subnet": a.subnet}
    for key in ("vni", "gateway", "mtu"):
        if getattr(a, key) is not None:
            body[key] = getattr(a, key)
    if a.opt:
        body["options"] = dict(a.opt)
    doc = ctx.call("POST", "/v1/networks", body)
    return ctx.show(doc, lambda d: f"created network {d['name']} (subnet {d['subnet']}, vni {d['vni']})")


def cmd_network_ls(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", "/v1/networks"), render.networks)


def cmd_network_inspect(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", f"/v1/networks/{_q(ctx.args.name)}"), render.network)


def cmd_network_rm(ctx: Context) -> int:
    doc = ctx.call("DELETE", f"/v1/networks/{_q(ctx.args.name)}")
    return ctx.show(doc, lambda d: f"removed network {d['removed']}")


def cmd_endpoint_create(ctx: Context) -> int:
    a = ctx.args
    body: dict[str, Any] = {"name": a.name}
    for key in ("ip", "mac", "netns", "pid", "ifname", "service"):
        if getattr(a, key) is not None:
            body[key] = getattr(a, key)
    doc = ctx.call("POST", f"/v1/networks/{_q(a.network)}/endpoints", body)
    return ctx.show(doc, lambda d: f"created endpoint {d['id']} ({d['name']} {d['ip']} {d['mac']})")


def cmd_endpoint_ls(ctx: Context) -> int:
    target = "/v1/endpoints" + (f"?network={_q(ctx.args.network)}" if ctx.args.network else "")
    return ctx.show(ctx.call("GET", target), render.endpoint_listing)


def cmd_endpoint_inspect(ctx: Context) -> int:
    doc = ctx.call("GET", f"/v1/endpoints/{_q(ctx.args.ref)}")
    return ctx.show(doc, lambda d: render.endpoints([d]))


def cmd_endpoint_rm(ctx: Context) -> int:
    doc = ctx.call("DELETE", f"/v1/endpoints/{_q(ctx.args.ref)}")
    return ctx.show(doc, lambda d: f"removed endpoint {d['removed']} ({d['name']}) from {d['network']}")


def _service_body(a: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if a.vip is not None:
        body["vip"] = a.vip
    if a.mode is not None:
        body["mode"] = a.mode
    if a.port is not None:
        body["ports"] = a.port
    if a.backend is not None:
        body["backends"] = a.backend
    if getattr(a, "add_backend", None):
        body["add_backends"] = a.add_backend
    if getattr(a, "rm_backend", None):
        body["rm_backends"] = a.rm_backend
    return body


def cmd_service_create(ctx: Context) -> int:
    a = ctx.args
    doc = ctx.call("POST", f"/v1/networks/{_q(a.network)}/services", {"name": a.name, **_service_body(a)})
    return ctx.show(
        doc, lambda d: f"created service {d['name']} in {d['network']} (vip {render.cell(d['vip'])})"
    )


def cmd_service_update(ctx: Context) -> int:
    a = ctx.args
    network = _service_network(ctx)
    doc = ctx.call("PATCH", f"/v1/networks/{_q(network)}/services/{_q(a.name)}", _service_body(a))
    return ctx.show(doc, lambda d: f"updated service {d['name']} in {d['network']}")


def cmd_service_ls(ctx: Context) -> int:
    target = "/v1/services" + (f"?network={_q(ctx.args.network)}" if ctx.args.network else "")
    return ctx.show(ctx.call("GET", target), render.service_listing)


def _service_network(ctx: Context) -> str:
    a = ctx.args
    if a.network:
        return str(a.network)
    found = sorted({s["network"] for s in ctx.call("GET", "/v1/services")["services"] if s["name"] == a.name})
    if len(found) != 1:
        why = f"exists in networks {', '.join(found)}" if found else "is not known to this agent"
        raise ApiFailure(404 if not found else 409, f"service {a.name!r} {why}: give --network")
    return str(found[0])


def cmd_service_inspect(ctx: Context) -> int:
    network = _service_network(ctx)
    doc = ctx.call("GET", f"/v1/networks/{_q(network)}/services/{_q(ctx.args.name)}")
    return ctx.show(doc, render.service)


def cmd_service_rm(ctx: Context) -> int:
    network = _service_network(ctx)
    doc = ctx.call("DELETE", f"/v1/networks/{_q(network)}/services/{_q(ctx.args.name)}")
    return ctx.show(doc, lambda d: f"removed service {d['removed']} from {d['network']}")


def _key_outcome(ctx: Context, doc: dict[str, Any]) -> int:
    ctx.show(doc, render.key_result)
    return EXIT_OK if doc["ok"] else EXIT_API


def cmd_keys_list(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", "/v1/keys"), render.key_listing)


def cmd_keys_install(ctx: Context) -> int:
    key = ctx.stdin.readline().strip() if ctx.args.key == "-" else ctx.args.key
    return _key_outcome(ctx, ctx.call("POST", "/v1/keys", {"key": key}))


def cmd_keys_use(ctx: Context) -> int:
    return _key_outcome(ctx, ctx.call("PUT", "/v1/keys/primary", {"id": ctx.args.id}))


def cmd_keys_remove(ctx: Context) -> int:
    return _key_outcome(ctx, ctx.call("DELETE", f"/v1/keys/{_q(ctx.args.id)}"))


def cmd_keygen(ctx: Context) -> int:
    from swimnet.io.keyfile import generate_key

    ctx.out.write(base64.b64encode(generate_key()).decode("ascii") + "\n")
    return EXIT_OK


def cmd_tables(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", f"/v1/tables/{_q(ctx.args.network)}"), render.tables_dump)


def cmd_fdb(ctx: Context) -> int:
    return ctx.show(ctx.call("GET", f"/v1/fdb/{_q(ctx.args.network)}"), render.fdb)


def cmd_dns(ctx: Context) -> int:
    a = ctx.args
    query = f"?type={_q(a.type)}" + (f"&from={_q(a.source)}" if a.source else "")
    return ctx.show(ctx.call("GET", f"/v1/dns/{_q(a.network)}/{_q(a.name)}{query}"), render.dns)


def cmd_run(ctx: Context) -> int:
    from swimnet.agent.daemon.run import main_run
    from swimnet.agent.daemon.settings import load_settings
    from swimnet.errors import ConfigError

    a = ctx.args
    flags = {
        "name": a.name,
        "bind": a.bind,
        "advertise": a.advertise,
        "join": a.join,
        "label": a.label,
        "keyring": a.keyring,
        "state_dir": a.state_dir,
        "socket": a.socket,
        "metrics": a.metrics,
        "profile": a.profile,
        "log_format": a.log_format,
        "datapath": False if a.no_datapath else None,
        "docker_plugin": a.docker_plugin,
        "docker_api": a.docker_api,
    }
    try:
        settings = load_settings(a.config, flags)
    except ConfigError as exc:
        ctx.err.write(f"swimnet-agent: configuration error: {exc}\n")
        return EXIT_USAGE
    return main_run(settings)
