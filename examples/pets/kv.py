"""The pets application: a tiny TCP key-value store (`db`) and a client (`web`).

    python -m examples.pets.kv serve --bind 10.0.9.2:6379 --lifetime 120
    python -m examples.pets.kv client 10.0.9.2:6379 set cat=Tom dog=Rex get cat list

Protocol, one line each way: `SET key value` -> `OK`, `GET key` -> `VALUE value` or
`NONE`, `LIST` -> `KEYS k1 k2 ...`, anything else -> `ERROR ...`.
Rules: everything is bounded: the server exits after `--lifetime` seconds or
`--max-connections` connections, every socket has a timeout, lines are at most 1 KiB; the
client retries its connection a bounded number of times (the overlay may still be
converging) and exits 1 if it never gets through.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

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
    """Read request lines until the peer half-closes (bounded by size and timeout)."""
    data = b""
    while len(data) < 64 * MAX_LINE:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return [line for line in data.decode(errors="replace").splitlines() if line][:64]


def serve(host: str, port: int, lifetime: float, max_connections: int) -> int:
    store: dict[str, str] = {}
    deadline = time.monotonic() + lifetime
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(8)
        print(f"db: listening on {host}:{port} (for at most {lifetime:.0f} s)", flush=True)
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
                    replies = [_reply(store, line[:MAX_LINE]) for line in _lines(conn)]
                    conn.sendall("".join(r + "\n" for r in replies).encode())
                    print(f"db: {peer[0]} sent {len(replies)} commands", flush=True)
                except OSError as exc:
                    print(f"db: {peer[0]}: {exc}", flush=True)
    print("db: done", flush=True)
    return 0


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
            raise SystemExit(f"web: cannot use {word!r} here (set k=v ... get k ... list)")
    return out


def client(host: str, port: int, commands: list[str], attempts: int, timeout: float) -> int:
    request = "".join(c + "\n" for c in commands).encode()
    for attempt in range(1, attempts + 1):
        try:
            with socket.create_connection((host, port), timeout=timeout) as conn:
                conn.sendall(request)
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(timeout)
                data = b""
                while len(data) < 64 * MAX_LINE:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            print(f"web: attempt {attempt}: {host}:{port}: {exc}", flush=True)
            time.sleep(0.5)
            continue
        for command, reply in zip(commands, data.decode(errors="replace").splitlines(), strict=False):
            print(f"web: {command:<24} -> {reply}", flush=True)
        return 0
    print(f"web: {host}:{port} never answered", flush=True)
    return 1


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.pets.kv", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True, metavar="IP:PORT")
    s.add_argument("--lifetime", type=float, default=120.0)
    s.add_argument("--max-connections", type=int, default=100)
    c = sub.add_parser("client")
    c.add_argument("server", metavar="IP:PORT")
    c.add_argument("words", nargs="+", help="set k=v ... get k ... list")
    c.add_argument("--attempts", type=int, default=10)
    c.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.role == "serve":
        host, port = _endpoint(args.bind)
        return serve(host, port, args.lifetime, args.max_connections)
    host, port = _endpoint(args.server)
    return client(host, port, _commands(args.words), args.attempts, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
