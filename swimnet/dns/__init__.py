"""Embedded DNS: containers find each other and services by name, per network.

Pure parts (exported here, no I/O):

    view = build_view([NetworkRecords("front", "10.1.0.0/24", endpoints, services)])
    # or, kept equal to the tables change by change:
    index = NamesIndex(); index.load_tables(node.tables); index.apply(change); index.view()
    answer(query, view, ("front",), rng)          # dnspython Message -> Reply | FORWARD
    handle(data, view, ("front",), rng)           # bytes -> Respond | Relay | Ignore
    resolve(view, ("front",), "tasks.web", "A")   # what a container on front would get

The I/O side (import `swimnet.dns.server`, `.pool`, `.upstream`; trio, sockets, files):
`ResolverService` serves 127.0.0.11:53 UDP+TCP inside one container namespace and relays
other names to the host's resolvers; `ResolverPool` runs one per namespace for the agent,
from the first attached endpoint to the last.

What resolves (see `names` and `lookup` for the rules): endpoint names, service names (VIP
or, for dnsrr, the healthy backends), `tasks.SERVICE` (healthy backends), `NAME.NETWORK`,
and PTR for the networks' addresses, each in the asking container's networks only (another
network's names are NXDOMAIN); everything else is forwarded.
"""

from swimnet.dns.answer import FORWARD, Forward, Reply, Resolution, answer, resolve
from swimnet.dns.exchange import Ignore, Relay, Respond, handle
from swimnet.dns.index import NamesIndex
from swimnet.dns.limits import DNS_ADDRESS, DNS_PORT, ResolverConfig
from swimnet.dns.lookup import Lookup, Outcome, lookup
from swimnet.dns.metrics import DnsMetrics
from swimnet.dns.names import (
    EndpointRow,
    NamesView,
    NetworkIndex,
    NetworkRecords,
    ServiceRow,
    build_view,
)

__all__ = [
    "DNS_ADDRESS",
    "DNS_PORT",
    "FORWARD",
    "DnsMetrics",
    "EndpointRow",
    "Forward",
    "Ignore",
    "Lookup",
    "NamesIndex",
    "NamesView",
    "NetworkIndex",
    "NetworkRecords",
    "Outcome",
    "Relay",
    "Reply",
    "Resolution",
    "ResolverConfig",
    "Respond",
    "ServiceRow",
    "answer",
    "build_view",
    "handle",
    "lookup",
    "resolve",
]
