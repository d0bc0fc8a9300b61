"""The resolver's counters, for the agent to export.

    metrics.queries[("A", "NOERROR")]     replies sent, by query type and rcode
    metrics.forwarded["answered"]         relayed queries by outcome (sent, answered,
                                          servfail, tcp_retry, truncated, mismatched, ...)
    metrics.dropped["short"]              inputs answered with nothing, by reason
    metrics.malformed["BadPointer"]       FORMERR replies, by the parser's complaint
    metrics.truncated["udp"]              replies sent with TC set, by transport
    metrics.flat()                        {"dns_queries{qtype=A,rcode=NOERROR}": 3, ...}

Rules: label values come from fixed sets (`QTYPE_LABELS`, rcode names, the resolver's own
reasons, the parser's exception class names), so hostile input cannot grow the counters
without bound; counting never fails; one `DnsMetrics` may be shared by many resolvers.
"""

from __future__ import annotations

from collections import Counter

import attrs

QTYPE_LABELS = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}
RCODE_LABELS = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    16: "BADVERS",
}


def qtype_label(qtype: int) -> str:
    return QTYPE_LABELS.get(qtype, "other")


def rcode_label(rcode: int) -> str:
    return RCODE_LABELS.get(int(rcode), "other")


@attrs.define
class DnsMetrics:
    queries: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    forwarded: Counter[str] = attrs.field(factory=Counter)
    dropped: Counter[str] = attrs.field(factory=Counter)
    malformed: Counter[str] = attrs.field(factory=Counter)
    truncated: Counter[str] = attrs.field(factory=Counter)

    def answered(self) -> int:
        return sum(self.queries.values())

    def flat(self) -> dict[str, int]:
        """Every counter as `dns_<family>{labels}` -> value (sorted keys)."""
        out: dict[str, int] = {}
        for (qtype, rcode), n in self.queries.items():
            out[f"dns_queries{{qtype={qtype},rcode={rcode}}}"] = n
        for family, counter in (
            ("forwarded", self.forwarded),
            ("dropped", self.dropped),
            ("malformed", self.malformed),
            ("truncated", self.truncated),
        ):
            label = {"forwarded": "outcome", "truncated": "transport"}.get(family, "reason")
            for key, n in counter.items():
                out[f"dns_{family}{{{label}={key}}}"] = n
        return dict(sorted(out.items()))
