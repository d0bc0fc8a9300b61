"""The agent at scale (issue 16, items 4 and 10): work per request and per change, counted.

Nothing here measures time: the tests count the expensive reads (a pass over a network's
entries), the VNI computations, and how many rows a request handles between two turns of
another task. The in-process daemon runs as in test_agent_inprocess (datapath off).
"""

from __future__ import annotations

import itertools
import json
import socket
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from test_agent_inprocess import WAIT, Drivers, eventually, settings_for, start

from swimnet.agent.domain import tables_view
from swimnet.agent.domain.endpoints import Endpoints
from swimnet.agent.domain.networks import Networks
from swimnet.agent.domain.overlay import REFRESH_PERIOD, OverlayAgent
from swimnet.agent.http import answers
from swimnet.overlay import CLUSTER_SCOPE, NETWORKS_TABLE, PEERS_TABLE, EndpointRecord, NetworkRecord
from swimnet.tables.entry import Entry

MAX_ROWS_BETWEEN_TURNS = 500
"""A listing lets other tasks run at least this often (it checkpoints every 250 rows)."""


def get(path: str, target: str) -> tuple[int, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


class CountingReader:
    """The node's tables reader, counting the reads that pass over a whole network."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.rows = 0
        """Entries those reads returned (the work they did)."""

    def live_entries(self, network: str) -> Mapping[tuple[str, str], tuple[bytes, str]]:
        found = self.inner.live_entries(network)
        self.calls["live_entries"] += 1
        self.rows += len(found)
        return found  # type: ignore[no-any-return]

    def entries(self, network: str) -> Sequence[Entry]:
        found = self.inner.entries(network)
        self.calls["entries"] += 1
        self.rows += len(found)
        return found  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def counting(calls: Counter[str], key: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[key] += 1
        return function(*args, **kwargs)

    return counted


async def test_listing_5000_networks_computes_vnis_once_and_lets_other_tasks_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: Counter[str] = Counter()
    monkeypatch.setattr(tables_view, "assign_vnis", counting(calls, "vnis", tables_view.assign_vnis))
    monkeypatch.setattr(Networks, "_describe", counting(calls, "described", Networks._describe))
    monkeypatch.setattr(answers, "network_json", counting(calls, "rendered", answers.network_json))
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a", datapath=False), Drivers())
        await eventually(lambda: a.overlay.started, "agent started")
        table = a.node.table(CLUSTER_SCOPE, NETWORKS_TABLE)
        for i in range(5000):
            name = f"n{i:04d}"
            record = NetworkRecord(name, f"10.{i // 256}.{i % 256}.0/24", created=i + 1)
            await table.put(name, record.encode())
        await eventually(lambda: len(a.overlay.view.networks()) == 5000, "5000 networks in the view")
        calls.clear()
        seen: list[tuple[int, int]] = []
        done = trio.Event()

        async def other_task() -> None:
            while not done.is_set():
                seen.append((calls["described"], calls["rendered"]))
                await trio.lowlevel.checkpoint()

        nursery.start_soon(other_task)
        status, rows = await trio.to_thread.run_sync(get, a.socket_path, "/v1/networks")
        done.set()
        assert status == 200 and len(rows) == 5000
        assert [r["name"] for r in rows[:2]] == ["n0000", "n0001"] and rows[0]["vni"] >= 4096
        assert len({r["vni"] for r in rows}) == 5000 and not any(r["vni_collision"] for r in rows)
        assert calls["vnis"] <= 1, "the VNI assignment is computed once per request, not per row"
        assert calls["described"] == calls["rendered"] == 5000
        # the other task kept running while the request was served
        for kind in (0, 1):
            steps = [after[kind] - before[kind] for before, after in itertools.pairwise(seen)]
            assert max(steps) <= MAX_ROWS_BETWEEN_TURNS, (kind, max(steps))
            assert len({s[kind] for s in seen if 0 < s[kind] < 5000}) >= 5000 // MAX_ROWS_BETWEEN_TURNS
        a.stop.set()


async def _create(overlay: OverlayAgent, first: int, count: int) -> None:
    endpoints = Endpoints(overlay)
    for i in range(first, first + count):
        await endpoints.create("big", f"e{i}", f"10.8.{(i + 2) // 256}.{(i + 2) % 256}")


async def test_per_endpoint_work_does_not_grow_with_the_number_of_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with trio.open_nursery() as nursery:
        a = await start(nursery, settings_for(tmp_path, "a", datapath=False), Drivers())
        await eventually(lambda: a.overlay.started, "agent started")
        overlay = a.overlay
        reader = CountingReader(overlay.view.tables)
        monkeypatch.setattr(overlay.view, "tables", reader)
        calls: Counter[str] = Counter()
        published = overlay.published
        monkeypatch.setattr(overlay, "published", counting(calls, "published", published))
        monkeypatch.setattr(overlay, "refresh", counting_async(calls, "refresh", overlay.refresh))
        await Networks(overlay).create("big", "10.8.0.0/16")
        await _create(overlay, 0, 50)  # the network's scope is joined, the view warms up

        async def phase(first: int) -> tuple[int, int, int]:
            before = (reader.rows, sum(reader.calls.values()), calls["published"])
            await _create(overlay, first, 50)
            await trio.sleep(3 * 0.05)  # the refresh the last create woke
            return (
                reader.rows - before[0],
                sum(reader.calls.values()) - before[1],
                calls["published"] - before[2],
            )

        early = await phase(50)
        await _create(overlay, 100, 300)
        await trio.sleep(3 * 0.05)
        late = await phase(400)
        assert len(overlay.local) == 450
        # creates 401..450 do no more table passes than 51..100, and check about one record each
        assert late[0] <= early[0] and late[1] <= early[1], (early, late)
        assert early[2] <= 2 * 50 and late[2] <= 2 * 50, "records checked: about one per create"
        assert late[1] <= 50, "at most one pass over a network's entries per create"

        # idle: refreshes run (every REFRESH_PERIOD) and touch nothing
        idle = (reader.rows, sum(reader.calls.values()), calls["published"])
        refreshes = calls["refresh"]
        await trio.sleep(2.5 * REFRESH_PERIOD)
        assert calls["refresh"] - refreshes >= 2
        assert (reader.rows, sum(reader.calls.values()), calls["published"]) == idle

        # a record the table no longer shows as ours is noticed and re-published, alone
        spec = overlay.local[sorted(overlay.local)[7]]
        wrong = EndpointRecord(spec.name, spec.ip, spec.mac, "192.0.2.99").encode()
        before = calls["published"]
        await a.node.table("big", PEERS_TABLE).put(spec.endpoint_id, wrong)
        await eventually(lambda: published(spec), "our record re-published")
        assert overlay.stats["republished"] == 1
        assert calls["published"] - before <= 5
        a.stop.set()


def counting_async(calls: Counter[str], key: str, function: Callable[..., Any]) -> Callable[..., Any]:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[key] += 1
        return await function(*args, **kwargs)

    return counted
