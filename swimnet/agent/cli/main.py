"""`swimnet-agent`: run the daemon, or talk to a running one over its control socket.

    swimnet-agent run [--config FILE] [--name N] [--bind H:P] [--advertise H:P] [--join H:P]...
                      [--label L] [--keyring FILE] [--state-dir DIR] [--socket PATH]
                      [--metrics H:P|off] [--profile lan|wan|local] [--log-format text|json]
                      [--no-datapath] [--docker-plugin [PATH]] [--docker-api PATH]
    swimnet-agent members | status
    swimnet-agent network create NAME --subnet CIDR [--vni N] [--gateway IP] [--mtu N] [--opt K=V]...
    swimnet-agent network ls | inspect NAME | rm NAME
    swimnet-agent endpoint create NETWORK NAME [--ip IP[/LEN]] [--mac MAC] [--netns NAME | --pid PID]
                      [--service NAME]
                      [--ifname eth0]
    swimnet-agent endpoint ls [NETWORK] | inspect ID_OR_NAME | rm ID_OR_NAME
    swimnet-agent service create NAME --network N [--vip IP] [--mode vip|dnsrr] [--port tcp:80:8080]...
                      [--backend EP]...
    swimnet-agent service update NAME [--network N] [same options] [--add-backend EP]... [--rm-backend EP]...
    swimnet-agent service ls [--network N] | inspect NAME [--network N] | rm NAME [--network N]
    swimnet-agent keys list | install KEY|- | use ID | remove ID
    swimnet-agent keygen
    swimnet-agent tables NETWORK
    swimnet-agent fdb NETWORK
    swimnet-agent dns NETWORK NAME [--from ENDPOINT] [--type A|AAAA|PTR]

Every client command takes `--socket PATH` (default: $SWIMNET_SOCKET, else
/run/swimnet/agent.sock), `--json` (print the API's JSON answer instead of a table) and
`--timeout SECONDS` (default: $SWIMNET_TIMEOUT, else 60: no complete answer by then is
exit 1).

Exit codes: 0 ok; 1 the agent refused the request (its message is printed) or failed;
2 usage or configuration error; 3 the agent's socket cannot be reached.

This module is the argument parser and the entry point (`main`, the `swimnet-agent` script);
the commands are in `commands`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from swimnet.agent.cli.client import DEFAULT_TIMEOUT, AgentUnreachable, ApiFailure
from swimnet.agent.cli.commands import (
    EXIT_API,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Context,
    cmd_dns,
    cmd_endpoint_create,
    cmd_endpoint_inspect,
    cmd_endpoint_ls,
    cmd_endpoint_rm,
    cmd_fdb,
    cmd_keygen,
    cmd_keys_install,
    cmd_keys_list,
    cmd_keys_remove,
    cmd_keys_use,
    cmd_members,
    cmd_network_create,
    cmd_network_inspect,
    cmd_network_ls,
    cmd_network_rm,
    cmd_run,
    cmd_service_create,
    cmd_service_inspect,
    cmd_service_ls,
    cmd_service_rm,
    cmd_service_update,
    cmd_status,
    cmd_tables,
)
from swimnet.agent.daemon.settings import DEFAULT_DOCKER_PLUGIN, DEFAULT_SOCKET, LOG_FORMATS, PROFILES

SOCKET_ENV = "SWIMNET_SOCKET"
TIMEOUT_ENV = "SWIMNET_TIMEOUT"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports usage errors by exception (run_cli prints them)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")


# -- argument helpers ------------------------------------------------------------------------------


def _port(text: str) -> dict[str, Any]:
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["tcp", *parts]
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise argparse.ArgumentTypeError(f"expected PROTO:PUBLISHED:TARGET (e.g. tcp:80:8080), got {text!r}")
    return {"protocol": parts[0], "published": int(parts[1]), "target": int(parts[2])}


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _seconds(text: str) -> float:
    """A request timeout: a finite number of seconds > 0 (the one check of `--timeout`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    client = _Parser(add_help=False)
    client.add_argument(
        "--socket",
        default=os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET,
        help=f"the agent's control socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )
    client.add_argument("--json", action="store_true", help="print the API's JSON answer")
    client.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=os.environ.get(TIMEOUT_ENV) or str(DEFAULT_TIMEOUT),
        help=f"seconds to wait for the agent's answer (default: ${TIMEOUT_ENV} or {DEFAULT_TIMEOUT:g})",
    )

    parser = _Parser(prog="swimnet-agent", description="SWIM gossip overlay network agent")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent daemon")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    run.add_argument("--name", help="node name (default: the state directory's, else the host name)")
    run.add_argument("--bind", metavar="HOST:PORT", help="gossip address (UDP and TCP)")
    run.add_argument("--advertise", metavar="HOST:PORT", help="address the cluster reaches us at")
    run.add_argument("--join", metavar="HOST:PORT", action="append", help="seed to join (repeatable)")
    run.add_argument("--label", help="cluster label")
    run.add_argument("--keyring", metavar="FILE", help="key file (encrypts gossip)")
    run.add_argument("--state-dir", metavar="DIR", help="state directory")
    run.add_argument("--socket", metavar="PATH", help="control socket path")
    run.add_argument("--metrics", metavar="HOST:PORT", help="Prometheus metrics address, or 'off'")
    run.add_argument("--profile", choices=sorted(PROFILES), help="protocol timing preset")
    run.add_argument("--log-format", choices=LOG_FORMATS, help="log line format")
    run.add_argument("--no-datapath", action="store_true", help="do not program the kernel")
    run.add_argument(
        "--docker-plugin",
        nargs="?",
        const=DEFAULT_DOCKER_PLUGIN,
        metavar="PATH",
        help=f"serve Docker's network and IPAM driver protocol (default path {DEFAULT_DOCKER_PLUGIN})",
    )
    run.add_argument("--docker-api", metavar="PATH", help="the dockerd API socket the plugin reads")
    run.set_defaults(handler=cmd_run, json=False)

    sub.add_parser("members", parents=[client], help="list the cluster's members").set_defaults(
        handler=cmd_members
    )
    sub.add_parser("status", parents=[client], help="the agent's health and counters").set_defaults(
        handler=cmd_status
    )

    net = sub.add_parser("network", help="overlay networks").add_subparsers(dest="action", required=True)
    p = net.add_parser("create", parents=[client], help="create a network")
    p.add_argument("name")
    p.add_argument("--subnet", required=True, metavar="CIDR")
    p.add_argument("--vni", type=_positive_int)
    p.add_argument("--gateway", metavar="IP")
    p.add_argument("--mtu", type=_positive_int)
    p.add_argument("--opt", type=_option, action="append", metavar="KEY=VALUE", help="network option")
    p.set_defaults(handler=cmd_network_create)
    net.add_parser("ls", parents=[client], help="list networks").set_defaults(handler=cmd_network_ls)
    p = net.add_parser("inspect", parents=[client], help="show a network")
    p.add_argument("name")
    p.set_defaults(handler=cmd_network_inspect)
    p = net.add_parser("rm", parents=[client], help="remove a network")
    p.add_argument("name")
    p.set_defaults(handler=cmd_network_rm)

    ep = sub.add_parser("endpoint", help="endpoints").add_subparsers(dest="action", required=True)
    p = ep.add_parser("create", parents=[client], help="create an endpoint on this agent")
    p.add_argument("network")
    p.add_argument("name")
    p.add_argument("--ip", metavar="IP[/LEN]", help="pin this address (default: a free one from the IPAM)")
    p.add_argument("--mac")
    p.add_argument("--service", metavar="NAME", help="join this service's backends")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--netns", metavar="NAME", help="network namespace of the container")
    where.add_argument("--pid", type=_positive_int, help="a process in the container's network namespace")
    p.add_argument("--ifname", help="interface name in the container (default eth0)")
    p.set_defaults(handler=cmd_endpoint_create)
    p = ep.add_parser("ls", parents=[client], help="list endpoints (of the networks this agent holds)")
    p.add_argument("network", nargs="?")
    p.set_defaults(handler=cmd_endpoint_ls)
    p = ep.add_parser("inspect", parents=[client], help="show an endpoint")
    p.add_argument("ref", metavar="ID_OR_NAME")
    p.set_defaults(handler=cmd_endpoint_inspect)
    p = ep.add_parser("rm", parents=[client], help="remove an endpoint of this agent")
    p.add_argument("ref", metavar="ID_OR_NAME")
    p.set_defaults(handler=cmd_endpoint_rm)

    svc = sub.add_parser("service", help="services").add_subparsers(dest="action", required=True)
    for action, helptext in (("create", "create a service"), ("update", "change a service")):
        p = svc.add_parser(action, parents=[client], help=helptext)
        p.add_argument("name")
        if action == "create":
            p.add_argument("--network", required=True)
        else:
            p.add_argument("--network", help="needed only if the name is in several networks")
        p.add_argument(
            "--vip", metavar="IP", help="pin the VIP (vip mode; default: a free one from the IPAM)"
        )
        p.add_argument("--mode", choices=("vip", "dnsrr"))
        p.add_argument("--port", type=_port, action="append", metavar="PROTO:PUBLISHED:TARGET")
        p.add_argument(
            "--backend", action="append", metavar="ENDPOINT", help="endpoint id or name (repeatable)"
        )
        if action == "update":
            p.add_argument("--add-backend", action="append", metavar="ENDPOINT", help="add (repeatable)")
            p.add_argument("--rm-backend", action="append", metavar="ENDPOINT", help="remove (repeatable)")
        p.set_defaults(handler=cmd_service_create if action == "create" else cmd_service_update)
    p = svc.add_parser("ls", parents=[client], help="list services")
    p.add_argument("--network")
    p.set_defaults(handler=cmd_service_ls)
    for action, handler in (("inspect", cmd_service_inspect), ("rm", cmd_service_rm)):
        p = svc.add_parser(action, parents=[client], help=f"{action} a service")
        p.add_argument("name")
        p.add_argument("--network")
        p.set_defaults(handler=handler)

    keys = sub.add_parser("keys", help="cluster-wide keyring").add_subparsers(dest="action", required=True)
    keys.add_parser("list", parents=[client], help="list key ids").set_defaults(handler=cmd_keys_list)
    p = keys.add_parser("install", parents=[client], help="install a key everywhere")
    p.add_argument("key", help="base64 key, or - to read it from stdin")
    p.set_defaults(handler=cmd_keys_install)
    for action, handler in (("use", cmd_keys_use), ("remove", cmd_keys_remove)):
        p = keys.add_parser(action, parents=[client], help=f"{action} a key everywhere")
        p.add_argument("id", help="key id (8 hex characters)")
        p.set_defaults(handler=handler)

    sub.add_parser("keygen", help="print a new random key (base64)").set_defaults(
        handler=cmd_keygen, json=False
    )
    p = sub.add_parser("tables", parents=[client], help="dump a network's replicated tables")
    p.add_argument("network")
    p.set_defaults(handler=cmd_tables)
    p = sub.add_parser("fdb", parents=[client], help="what the datapath programmed for a network")
    p.add_argument("network")
    p.set_defaults(handler=cmd_fdb)
    p = sub.add_parser("dns", parents=[client], help="resolve a name as a container would")
    p.add_argument("network")
    p.add_argument("name")
    p.add_argument("--from", dest="source", metavar="ENDPOINT", help="as this local endpoint's container")
    p.add_argument("--type", default="A", choices=["A", "AAAA", "PTR"])
    p.set_defaults(handler=cmd_dns)
    return parser


def run_cli(
    argv: Sequence[str],
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run one CLI command; the exit code (output goes to `out` / `err`)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        args = build_parser().parse_args(list(argv))
    except UsageError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    ctx = Context(args, out, err, stdin if stdin is not None else sys.stdin)
    handler: Callable[[Context], int] = args.handler
    try:
        return handler(ctx)
    except AgentUnreachable as exc:
        err.write(f"swimnet-agent: {exc}\n")
        return EXIT_UNREACHABLE
    except ApiFailure as exc:
        where = f" (field: {exc.field})" if exc.field else ""
        err.write(f"error: {exc.message}{where}\n")
        return EXIT_API


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(sys.argv[1:] if argv is None else argv)
