"""Shared records and views for the DNS tests: two networks, front and back.

front (10.1.0.0/24): endpoints web1 (10.1.0.2), web2 (10.1.0.3), db (10.1.0.4, its owner
failed: hidden), client (10.1.0.9); services web (vip 10.1.0.100, backends web1 web2 and an
unknown id), rr (dnsrr, backends web1 web2 db), empty (dnsrr, no backends).
back (10.2.0.0/24): endpoints cache (10.2.0.5), web1 (10.2.0.2, same name as on front);
service api (vip 10.2.0.50, backend cache).
"""

from __future__ import annotations

from swimnet.dns.names import EndpointRow, NamesView, NetworkRecords, ServiceRow, build_view
from swimnet.overlay.model import EndpointRecord, ServiceRecord, mac_from_ip


def endpoint(name: str, ip: str, prefix: int = 24) -> EndpointRecord:
    return EndpointRecord(name=name, ip=f"{ip}/{prefix}", mac=mac_from_ip(ip), vtep="192.0.2.11")


FRONT = NetworkRecords(
    network="front",
    subnet="10.1.0.0/24",
    endpoints=(
        EndpointRow("ep-web1", endpoint("web1", "10.1.0.2")),
        EndpointRow("ep-web2", endpoint("web2", "10.1.0.3")),
        EndpointRow("ep-db", endpoint("db", "10.1.0.4"), live=False),
        EndpointRow("ep-client", endpoint("client", "10.1.0.9")),
    ),
    services=(
        ServiceRow(ServiceRecord("web", "10.1.0.100", "vip", backends=("ep-web1", "ep-web2", "ep-gone"))),
        ServiceRow(ServiceRecord("rr", None, "dnsrr", backends=("ep-web1", "ep-web2", "ep-db"))),
        ServiceRow(ServiceRecord("empty", None, "dnsrr")),
    ),
)
BACK = NetworkRecords(
    network="back",
    subnet="10.2.0.0/24",
    endpoints=(
        EndpointRow("ep-cache", endpoint("cache", "10.2.0.5")),
        EndpointRow("ep-web1b", endpoint("web1", "10.2.0.2")),
    ),
    services=(ServiceRow(ServiceRecord("api", "10.2.0.50", "vip", backends=("ep-cache",))),),
)


def two_networks() -> NamesView:
    return build_view([FRONT, BACK])


def _ids(start: int, stop: int) -> tuple[str, ...]:
    return tuple(f"id{i}" for i in range(start, stop))


def many_names(count: int, network: str = "big", per_service: int = 10) -> NetworkRecords:
    """A network with `count` endpoints (ep0..) and a dnsrr service per `per_service` of them."""
    eps = tuple(
        EndpointRow(f"id{i}", endpoint(f"ep{i}", f"10.{8 + i // 65000}.{(i // 250) % 256}.{1 + i % 250}", 8))
        for i in range(count)
    )
    services = tuple(
        ServiceRow(ServiceRecord(f"svc{j}", None, "dnsrr", backends=_ids(j, min(count, j + per_service))))
        for j in range(0, count, per_service)
    )
    return NetworkRecords(network=network, subnet="10.0.0.0/8", endpoints=eps, services=services)
