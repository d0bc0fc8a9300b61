"""The CLI client's limit: `--timeout SECONDS` (or $SWIMNET_TIMEOUT, default 60) bounds the
whole exchange, an answer that trickles in included, and is checked once, by the parser.

A stand-in agent on a Unix socket answers one byte at a time; the bounds are behavioural
timeouts (the client must give up long before the answer is complete), not speed figures.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import cli

BODY = b'{"name": "slow"}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
DRIP = 0.25
"""Seconds between two bytes of the answer: the whole answer takes about 20 s."""


@pytest.fixture
def trickling_agent(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65_536)
                    for i in range(len(ANSWER)):
                        if done.wait(DRIP):
                            return
                        conn.sendall(ANSWER[i : i + 1])
                except OSError:
                    continue  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        server.close()
        thread.join(timeout=10)


def test_a_trickling_answer_does_not_extend_the_clients_limit(trickling_agent: str) -> None:
    code, out, err = cli("status", "--json", "--socket", trickling_agent, "--timeout", "1")
    assert code == 1 and "did not answer within 1 s" in err, (code, out, err)


def test_the_limit_comes_from_the_environment_when_no_flag_says(
    trickling_agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWIMNET_TIMEOUT", "1.5")
    code, _, err = cli("status", "--socket", trickling_agent)
    assert code == 1 and "did not answer within 1.5 s" in err, err


@pytest.mark.parametrize("bad", ["0", "-3", "nan", "inf", "soon"])
def test_a_limit_that_is_not_seconds_is_a_usage_error(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli("status", "--socket", "/nonexistent", "--timeout", bad)
    assert code == 2 and "--timeout" in err, err
    monkeypatch.setenv("SWIMNET_TIMEOUT", bad)
    code, _, err = cli("status", "--socket", "/nonexistent")
    assert code == 2 and "--timeout" in err, err
