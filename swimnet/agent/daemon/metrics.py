"""Prometheus metrics, read from the node at scrape time (GET /metrics on the metrics address).

    swimnet_members{state}                     gauge     members by state, as this agent sees them
    swimnet_packets_total{direction}           counter   gossip datagrams in / out
    swimnet_bytes_total{direction}             counter   gossip datagram bytes in / out
    swimnet_dropped_packets_total{reason}      counter   every `drop_*` counter (auth, decode, ...)
    swimnet_probe_rtt_seconds                  histogram direct probe round trips (every ack to
                                                         one of our probes, measured by the engine)
    swimnet_suspicions_total                   counter   suspicions this agent started or learnt
    swimnet_refutations_total                  counter   suspicions of this agent it refuted
    swimnet_health_score                       gauge     Lifeguard local health (0 = healthy)
    swimnet_table_entries{network,table}       gauge     visible entries per joined network
    swimnet_stream_bytes_total{direction}      counter   push-pull and table anti-entropy streams
    swimnet_key_operations_total{action}       counter   cluster-wide key operations started
    swimnet_local_endpoints                    gauge     endpoints owned by this agent
    swimnet_endpoint_conflicts                 gauge     duplicate IPs/MACs in the held networks
    swimnet_datapath_events_total{name}        counter   datapath driver counters (reconciles, ops
                                                         applied, errors, attaches), with a datapath
    swimnet_dns_queries_total{qtype,rcode}     counter   replies of the embedded DNS resolvers
    swimnet_dns_forwarded_total{outcome}       counter   queries relayed upstream, by outcome
    swimnet_dns_dropped_total{reason}          counter   DNS inputs answered with nothing
    swimnet_dns_malformed_total{reason}        counter   FORMERR replies, by the parser's complaint
    swimnet_dns_truncated_total{transport}     counter   replies sent with TC set
    swimnet_counter_total{name}                counter   every raw counter of the node (diagnosis)

Rules: nothing is computed between scrapes (a scrape reads the node's counters, through
the agent's `Cluster`); the server is the agent's own HTTP server on TCP (GET /metrics only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.agent.http.server import Handler, Request, Response, error_response
from swimnet.dns import DnsMetrics
from swimnet.wire.messages import State

_KEY_ACTIONS = ("install", "use", "remove")


class AgentCollector:
    """A prometheus_client custom collector over one agent."""

    def __init__(self, agent: OverlayAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Any]:
        cluster = self.agent.cluster
        stats = cluster.stats
        members = GaugeMetricFamily(
            "swimnet_members", "Members by state, as this agent sees them", labels=["state"]
        )
        counts = {s.label: 0 for s in State}
        for m in cluster.members():
            counts[m.state.label] += 1
        for label, n in sorted(counts.items()):
            members.add_metric([label], n)
        yield members

        yield _directional("swimnet_packets", "Gossip datagrams", stats, "packets_received", "packets_sent")
        yield _directional("swimnet_bytes", "Gossip datagram bytes", stats, "bytes_received", "bytes_sent")
        yield _directional(
            "swimnet_stream_bytes",
            "Stream bytes (push-pull, table sync)",
            stats,
            "stream_bytes_received",
            "stream_bytes_sent",
        )

        dropped = CounterMetricFamily("swimnet_dropped_packets", "Dropped input by reason", labels=["reason"])
        for name, value in sorted(stats.items()):
            if name.startswith("drop_"):
                dropped.add_metric([name[len("drop_") :]], value)
        yield dropped

        histogram = cluster.rtt_histogram()
        if histogram is not None:
            rtt = HistogramMetricFamily("swimnet_probe_rtt_seconds", "Direct probe round-trip times")
            buckets = [(bound, float(n)) for bound, n in histogram.cumulative()]
            rtt.add_metric([], buckets, histogram.sum)
            yield rtt

        yield CounterMetricFamily("swimnet_suspicions", "Suspicions", value=stats["suspicions"])
        yield CounterMetricFamily(
            "swimnet_refutations", "Refutations of suspicions of us", value=stats["refutations"]
        )
        yield GaugeMetricFamily(
            "swimnet_health_score", "Lifeguard local health score", value=cluster.health_score
        )

        entries = GaugeMetricFamily(
            "swimnet_table_entries", "Visible table entries", labels=["network", "table"]
        )
        tables = cluster.tables
        for network in tables.networks():
            per_table: dict[str, int] = {}
            for table, _ in tables.live_entries(network):
                per_table[table] = per_table.get(table, 0) + 1
            for table, n in sorted(per_table.items()):
                entries.add_metric([network, table], n)
        yield entries

        keys = CounterMetricFamily(
            "swimnet_key_operations", "Cluster-wide key operations started", labels=["action"]
        )
        for action in _KEY_ACTIONS:
            keys.add_metric([action], stats[f"key_ops_{action}"])
        keys.add_metric(["refused"], stats["key_ops_refused"])
        yield keys

        yield GaugeMetricFamily(
            "swimnet_local_endpoints", "Endpoints owned by this agent", value=len(self.agent.local)
        )
        yield GaugeMetricFamily(
            "swimnet_endpoint_conflicts",
            "Duplicate IPs/MACs in the networks this agent holds",
            value=sum(len(c) for c in self.agent.conflicts.values()),
        )

        driver_stats = getattr(self.agent.driver, "stats", None)
        if driver_stats is not None:
            datapath = CounterMetricFamily(
                "swimnet_datapath_events",
                "Datapath driver counters (reconciles, ops, errors)",
                labels=["name"],
            )
            for name, value in sorted(dict(driver_stats).items()):
                datapath.add_metric([name], value)
            yield datapath

        yield from _dns(self.agent.dns.metrics)

        raw = CounterMetricFamily("swimnet_counter", "Every raw counter of the node", labels=["name"])
        for name, value in sorted(stats.items()):
            raw.add_metric([name], value)
        for name, value in sorted(self.agent.stats.items()):
            raw.add_metric([f"agent_{name}"], value)
        yield raw


def _directional(name: str, doc: str, stats: Any, received: str, sent: str) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["direction"])
    family.add_metric(["in"], stats[received])
    family.add_metric(["out"], stats[sent])
    return family


def _dns(metrics: DnsMetrics) -> Iterator[CounterMetricFamily]:
    queries = CounterMetricFamily(
        "swimnet_dns_queries", "Replies of the embedded DNS resolvers", labels=["qtype", "rcode"]
    )
    for (qtype, rcode), n in sorted(metrics.queries.items()):
        queries.add_metric([qtype, rcode], n)
    yield queries
    for family, label, counter, doc in (
        ("forwarded", "outcome", metrics.forwarded, "DNS queries relayed upstream"),
        ("dropped", "reason", metrics.dropped, "DNS inputs answered with nothing"),
        ("malformed", "reason", metrics.malformed, "DNS queries answered FORMERR"),
        ("truncated", "transport", metrics.truncated, "DNS replies sent with TC set"),
    ):
        out = CounterMetricFamily(f"swimnet_dns_{family}", doc, labels=[label])
        for key, n in sorted(counter.items()):
            out.add_metric([key], n)
        yield out


def registry_for(agent: OverlayAgent) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return registry


def metrics_handler(registry: CollectorRegistry) -> Handler:
    async def handle(request: Request) -> Response:
        if request.path not in ("/metrics", "/metrics/"):
            return error_response(404, "no such resource (try /metrics)")
        if request.method != "GET":
            return error_response(405, "method not allowed (GET /metrics)")
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    return handle
