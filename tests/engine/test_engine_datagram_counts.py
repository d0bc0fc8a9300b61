"""The engine's datagram counters (packets_received, bytes_received, packets_sent,
bytes_sent) wait in the engine between reads of `stats`: whenever read they are exact, and a
key appears only once something was counted, as if counted per packet."""

from __future__ import annotations

import random

from swimnet.config import Config
from swimnet.engine import Engine
from swimnet.wire import Ping, encode_packet

PEER = ("10.0.0.2", 7946)


def _engine() -> Engine:
    return Engine(Config.lan().evolve(name="a", bind="10.0.0.1:7946"), rng=random.Random(1), now=0.0)


def test_datagram_counts_are_exact_whenever_stats_are_read() -> None:
    e = _engine()
    assert not {"packets_received", "bytes_received", "packets_sent", "bytes_sent"} & set(e.stats)
    ping = encode_packet([Ping(1, "a", "b")])
    garbage = b"\x00not a packet"
    e.receive_datagram(ping, PEER, 0.1)
    assert (e.stats["packets_received"], e.stats["bytes_received"]) == (1, len(ping))
    assert "packets_sent" not in e.stats  # the ack is queued, not sent yet
    e.receive_datagram(garbage, PEER, 0.2)  # refused, and still a datagram received
    e.receive_datagram(ping, PEER, 0.3)
    out = e.datagrams_to_send()
    assert len(out) == 2 and e.stats["drop_decode"] == 1
    assert (e.stats["packets_received"], e.stats["bytes_received"]) == (3, 2 * len(ping) + len(garbage))
    assert (e.stats["packets_sent"], e.stats["bytes_sent"]) == (2, sum(len(d) for _, d in out))
    assert e.stats["packets_sent"] == 2  # reading again counts nothing twice
