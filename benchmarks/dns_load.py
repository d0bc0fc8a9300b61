"""A DNS load generator, run INSIDE a container namespace (`ip netns exec NS python -m
benchmarks.dns_load ...`) by bench_dns: its own process, so it does not share the server's
interpreter lock. Prints one JSON object.

    flood:  keep `--window` queries outstanding for `--seconds`; replies/s
    paced:  send `--rate` queries/s (open loop) for `--seconds`; each query's latency

Queries are A queries for `--names` names `ep0..` (pre-encoded); replies are matched by id.
"""

from __future__ import annotations

import argparse
import json
import random
import select
import socket
import struct
import time

import dns.message

SERVER = ("127.0.0.11", 53)


def queries(names: int, count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [dns.message.make_query(f"ep{rng.randrange(names)}.", "A", id=0).to_wire() for _ in range(count)]


def flood(wires: list[bytes], seconds: float, window: int) -> dict[str, float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(SERVER)
    sock.settimeout(0.2)
    sent = received = lost = 0
    outstanding = 0
    ident = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        while outstanding < window:
            ident = (ident + 1) & 0xFFFF
            sock.send(struct.pack("!H", ident) + wires[sent % len(wires)][2:])
            sent += 1
            outstanding += 1
        try:
            sock.recv(4096)
            received += 1
            outstanding -= 1
        except TimeoutError:
            lost += outstanding
            outstanding = 0
    elapsed = time.perf_counter() - start
    sock.settimeout(0.2)
    try:
        while outstanding:
            sock.recv(4096)
            received += 1
            outstanding -= 1
    except TimeoutError:
        lost += outstanding
    return {"sent": sent, "received": received, "lost": lost, "seconds": elapsed, "qps": received / elapsed}


def paced(wires: list[bytes], seconds: float, rate: float) -> dict[str, object]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(SERVER)
    sock.setblocking(False)
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    total = int(seconds * rate)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                now = time.perf_counter()
                if now >= due:
                    break
                select.select([sock], [], [], due - now)  # wakes for a reply or the next send
                continue
            t0 = sent_at.pop(struct.unpack("!H", data[:2])[0], None)
            if t0 is not None:
                latencies.append(time.perf_counter() - t0)
        ident = i & 0xFFFF
        sent_at[ident] = time.perf_counter()
        sock.send(struct.pack("!H", ident) + wires[i % len(wires)][2:])
    end = time.perf_counter() + 1.0
    while sent_at and time.perf_counter() < end:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        t0 = sent_at.pop(struct.unpack("!H", data[:2])[0], None)
        if t0 is not None:
            latencies.append(time.perf_counter() - t0)
    return {"sent": total, "received": len(latencies), "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["flood", "paced"])
    parser.add_argument("--names", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    wires = queries(args.names, 4096)
    if args.mode == "flood":
        print(json.dumps(flood(wires, args.seconds, args.window)))
    else:
        print(json.dumps(paced(wires, args.seconds, args.rate)))


if __name__ == "__main__":
    main()
