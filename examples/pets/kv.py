"""The pets application: a tiny TCP key-value store (`db`), its web front (`web`), a client.

    python -m examples.pets.kv serve --bind 10.0.9.2:6379 --lifetime 120
    python -m examples.pets.kv web --bind 10.0.9.3:8080 --name web1 --db db:6379 --lifetime 120
    python -m examples.pets.kv client web:80 --each set cat=Tom dog=Rex get cat list

Protocol, one line each way: `SET key value` -> `OK`, `GET key` -> `VALUE value` or
`NONE`, `LIST` -> `KEYS k1 k2 ...`, anything else -> `ERROR ...`. A client sends its lines,
half-closes, and reads the replies. `web` relays each connection's lines to the db and
answers every line with `<its name>: <db's reply>`; it looks the db up by name (the
container's resolver) for every connection. `client --each` opens one connection per
command (through a service VIP, each may reach another web backend) and ends with a line
counting the connections each backend answered.
Rules: everything is bounded: servers exit after `--lifetime` seconds or
`--max-connections` connections, every socket has a timeout, lines are at most 1 KiB; the
client retries a connection a bounded number of times (the overlay may still be
converging) and exits 1 if it never gets through.
"""

from __future__ import annotations

import argparse
import collections
import socket
import sys
import time
from collections.abc import Callable

MAX_LINE = 1024


def _reply(store: dict[str, str], line: str) -> str:
    words = line.split(" ", 2)
    command = words[0].upper()
    if command == "SET" and len(words) == 3:
        store[words[1]] = words[2]
        return "OK"
    if command == "GET" and len(words) == 2:
        return f"VALUE {store[words[1]]}" if words[1] in store else "NONE"
    if command == "LIST" and len(words) == 1:
        return "KEYS " + " ".join(sorted(store))
    return f"ERROR unknown command {line[:40]!r}"


def _lines(conn: socket.socket) -> list[str]:
    """Read lines until the peer half-closes (bounded by size, count and timeout)."""
    data = b""
    while len(data) < 64 * MAX_LINE:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return [line for line in data.decode(errors="replace").splitlines() if line][:64]


def _serve(
    name: str,
    host: str,
    port: int,
    lifetime: float,
    max_connections: int,
    answer: Callable[[list[str]], list[str]],
) -> int:
    """Accept connections one at a time; each one's lines -> `answer` -> its replies."""
    deadline = time.monotonic() + lifetime
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(8)
        print(f"{name}: listening on {host}:{port} (for at most {lifetime:.0f} s)", flush=True)
        for _ in range(max_connections):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            server.settimeout(left)
            try:
                conn, peer = server.accept()
            except TimeoutError:
                break
            with conn:
                conn.settimeout(5)
                try:
                    replies = answer([line[:MAX_LINE] for line in _lines(conn)])
                    conn.sendall("".join(r + "\n" for r in replies).encode())
                    print(f"{name}: {peer[0]} sent {len(replies)} commands", flush=True)
                except OSError as exc:
                    print(f"{name}: {peer[0]}: {exc}", flush=True)
    print(f"{name}: done", flush=True)
    return 0


def serve(host: str, port: int, lifetime: float, max_connections: int) -> int:
    store: dict[str, str] = {}

    def answer(lines: list[str]) -> list[str]:
        return [_reply(store, line) for line in lines]

    return _serve("db", host, port, lifetime, max_connections, answer)


def web(name: str, host: str, port: int, db: tuple[str, int], lifetime: float, max_connections: int) -> int:
    """The web front: every connection's lines go to the db (looked up by name each time)."""

    def relay(lines: list[str]) -> list[str]:
        try:
            replies = _exchange(db, lines, timeout=5.0)
        except OSError as exc:
            return [f"{name}: ERROR db {db[0]}:{db[1]}: {exc}"] * len(lines)
        return [f"{name}: {reply}" for reply in replies]

    return _serve(name, host, port, lifetime, max_connections, relay)


def _exchange(server: tuple[str, int], lines: list[str], timeout: float) -> list[str]:
    """One connection: send the lines, half-close, read the replies (bounded)."""
    with socket.create_connection(server, timeout=timeout) as conn:
        conn.sendall("".join(c + "\n" for c in lines).encode())
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(timeout)
        return _lines(conn)[: len(lines)]


def _commands(words: list[str]) -> list[str]:
    """`set k=v ... get k ... list` -> protocol lines."""
    out: list[str] = []
    mode = ""
    for word in words:
        if word.lower() in ("set", "get", "list"):
            mode = word.lower()
            if mode == "list":
                out.append("LIST")
            continue
        if mode == "set" and "=" in word:
            key, value = word.split("=", 1)
            out.append(f"SET {key} {value}")
        elif mode == "get":
            out.append(f"GET {word}")
        else:
            raise SystemExit(f"client: cannot use {word!r} here (set k=v ... get k ... list)")
    return out


def _attempt(server: tuple[str, int], lines: list[str], attempts: int, timeout: float) -> list[str] | None:
    for attempt in range(1, attempts + 1):
        try:
            return _exchange(server, lines, timeout)
        except OSError as exc:
            print(f"client: attempt {attempt}: {server[0]}:{server[1]}: {exc}", flush=True)
            time.sleep(0.5)
    return None


def client(
    host: str, port: int, commands: list[str], attempts: int, timeout: float, *, each: bool = False
) -> int:
    batches = [[c] for c in commands] if each else [commands]
    answered: collections.Counter[str] = collections.Counter()
    for batch in batches:
        replies = _attempt((host, port), batch, attempts, timeout)
        if replies is None:
            print(f"client: {host}:{port} never answered", flush=True)
            return 1
        for command, reply in zip(batch, replies, strict=False):
            print(f"client: {command:<24} -> {reply}", flush=True)
            backend, sep, _ = reply.partition(": ")
            answered[backend if sep and " " not in backend else "-"] += 1
    if each:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(answered.items()))
        print(f"client: {len(batches)} connections to {host}:{port}, answered by: {counts}", flush=True)
    return 0


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.pets.kv", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve", help="the key-value store (db)")
    w = sub.add_parser("web", help="the web front: relays to the db")
    for server in (s, w):
        server.add_argument("--bind", required=True, metavar="IP:PORT")
        server.add_argument("--lifetime", type=float, default=120.0)
        server.add_argument("--max-connections", type=int, default=200)
    w.add_argument("--name", required=True, help="answers carry it (which backend served)")
    w.add_argument("--db", required=True, metavar="HOST:PORT", help="the db, by name or address")
    c = sub.add_parser("client")
    c.add_argument("server", metavar="HOST:PORT", help="by name or address")
    c.add_argument("words", nargs="+", help="set k=v ... get k ... list")
    c.add_argument("--each", action="store_true", help="one connection per command")
    c.add_argument("--repeat", type=int, default=1, help="send the commands this many times")
    c.add_argument("--attempts", type=int, default=10)
    c.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.role == "serve":
        host, port = _endpoint(args.bind)
        return serve(host, port, args.lifetime, args.max_connections)
    if args.role == "web":
        host, port = _endpoint(args.bind)
        return web(args.name, host, port, _endpoint(args.db), args.lifetime, args.max_connections)
    host, port = _endpoint(args.server)
    commands = _commands(args.words) * max(1, args.repeat)
    return client(host, port, commands, args.attempts, args.timeout, each=args.each)


if __name__ == "__main__":
    sys.exit(main())
