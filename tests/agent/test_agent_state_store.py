"""The state directory's endpoint files: checked values, the journal, crash leftovers
(issue 16, items 10 and 12)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_harness import free_port, run_cli_process

from swimnet.agent.daemon import state_store
from swimnet.agent.daemon.state_store import ENDPOINTS_FILE, JOURNAL_FILE, StateDir
from swimnet.errors import ConfigError
from swimnet.logfields import FIELDS_ATTR
from swimnet.overlay import LocalEndpointSpec, NetworkRecord

WEB = NetworkRecord("web", "10.1.0.0/24")
DB = NetworkRecord("db", "10.2.0.0/24")


def spec(n: int, network: str = "web") -> LocalEndpointSpec:
    prefix = "10.1.0" if network == "web" else "10.2.0"
    return LocalEndpointSpec(
        f"{n:012x}", network, f"c{n}", f"{prefix}.{n + 2}/24", f"02:42:0a:01:00:{n + 2:02x}", pid=100 + n
    )


def good_item() -> dict[str, Any]:
    return {
        "endpoint_id": "0123456789ab",
        "network": "web",
        "name": "c1",
        "ip": "10.1.0.2/24",
        "mac": "02:42:0a:01:00:02",
        "netns": None,
        "pid": 42,
        "ifname": "eth0",
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateDir]:
    s = StateDir(str(tmp_path / "st"))
    s.open()
    try:
        yield s
    finally:
        s.close()


def write_base(store: StateDir, endpoints: list[Any], networks: dict[str, Any] | None = None) -> Path:
    path = Path(store.path) / ENDPOINTS_FILE
    path.write_text(json.dumps({"version": 1, "endpoints": endpoints, "networks": networks or {}}))
    return path


BAD_VALUES = [
    ("ip", "10.1.0.300/24", "not an IP address"),
    ("ip", "10.1.0.2", "no prefix length"),
    ("mac", "02:42:zz:01:00:02", "not a MAC address"),
    ("mac", "01:00:5e:00:00:01", "multicast"),
    ("name", "bad name!", "must be 1..64 characters"),
    ("network", "_cluster", "must be 1..64 characters"),
    ("endpoint_id", "", "must be 1..64 characters"),
    ("ifname", "eth0/1", "not an interface name"),
    ("pid", 0, "positive process id"),
    ("netns", "../x", "not a network namespace"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES)
def test_a_bad_value_in_the_endpoints_file_names_the_file_and_the_field(
    store: StateDir, field: str, value: Any, reason: str
) -> None:
    item = good_item()
    item[field] = value
    if field == "netns":
        item["pid"] = None
    path = write_base(store, [good_item() | {"endpoint_id": "aaaaaaaaaaaa", "ip": "10.1.0.9/24"}, item])
    with pytest.raises(ConfigError) as caught:
        store.load_endpoints()
    error = caught.value
    assert (error.where, error.field) == (str(path), f"endpoints[1].{field}"), error
    assert reason in error.reason and str(error).startswith(
        f"{path}: endpoints[1].{field}: corrupt state file"
    )


def test_other_malformed_endpoint_files_are_refused_with_the_field(store: StateDir) -> None:
    cases: list[tuple[list[Any], dict[str, Any], str]] = [
        ([good_item() | {"netns": "n1"}], {}, "endpoints[0].netns"),  # netns and pid
        ([good_item(), good_item()], {}, "endpoints[1].endpoint_id"),  # twice
        ([good_item() | {"colour": "red"}], {}, "endpoints[0].colour"),
        ([{k: v for k, v in good_item().items() if k != "mac"}], {}, "endpoints[0].mac"),
        (["x"], {}, "endpoints[0]"),
        ([good_item()], {"web": "!!"}, "networks.web"),
        ([good_item()], {"web": state_store._record_to_json(DB)}, "networks.web"),  # another network's
    ]
    for endpoints, networks, field in cases:
        write_base(store, endpoints, networks)
        with pytest.raises(ConfigError) as caught:
            store.load_endpoints()
        assert caught.value.field == field, (field, caught.value)


def test_a_change_appends_one_line_and_a_reload_replays_them(store: StateDir) -> None:
    assert store.load_endpoints() == ([], {})
    base = Path(store.path) / ENDPOINTS_FILE
    journal = Path(store.path) / JOURNAL_FILE
    base_bytes = base.read_bytes()
    store.add_endpoint(spec(1), WEB)
    store.add_endpoint(spec(2), WEB)
    store.add_endpoint(spec(3, "db"), DB)
    newer = NetworkRecord("web", "10.1.0.0/24", mtu=1400)
    store.save_networks({"web": newer, "other": DB})  # networks without an endpoint are not kept
    store.remove_endpoint(spec(3, "db").endpoint_id)
    assert base.read_bytes() == base_bytes  # no change rewrote the base
    assert len(journal.read_bytes().splitlines()) == 5
    again = StateDir(store.path)
    specs, networks = again.load_endpoints()
    assert specs == [spec(1), spec(2)] and networks == {"web": newer} and networks["web"].mtu == 1400
    assert journal.read_bytes() == b""  # folded into the base at load
    assert again.load_endpoints() == (specs, networks)


def test_the_journal_is_folded_when_longer_than_the_endpoints(
    store: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_store, "JOURNAL_MIN", 4)
    store.load_endpoints()
    journal = Path(store.path) / JOURNAL_FILE
    for n in range(5):
        store.add_endpoint(spec(n), WEB)
    assert len(journal.read_bytes().splitlines()) == 5  # not longer than the endpoints
    store.remove_endpoint(spec(0).endpoint_id)  # 6 lines for 4 endpoints: folded
    assert journal.read_bytes() == b""
    base = json.loads((Path(store.path) / ENDPOINTS_FILE).read_text())
    assert [e["name"] for e in base["endpoints"]] == ["c1", "c2", "c3", "c4"]
    assert StateDir(store.path).load_endpoints() == ([spec(n) for n in range(1, 5)], {"web": WEB})


def test_a_torn_last_line_is_dropped_with_a_warning(
    store: StateDir, caplog: pytest.LogCaptureFixture
) -> None:
    store.load_endpoints()
    store.add_endpoint(spec(1), WEB)
    journal = Path(store.path) / JOURNAL_FILE
    with open(journal, "ab") as handle:
        handle.write(b'{"add": {"endpoint_id": "0000')  # a crash in the middle of a write
    with caplog.at_level(logging.WARNING, logger="swimnet.agent"):
        assert StateDir(store.path).load_endpoints() == ([spec(1)], {"web": WEB})
    assert [getattr(r, FIELDS_ATTR)["file"] for r in caplog.records] == [str(journal)]
    journal.write_bytes(b'{"remove": "x"}\nnot json\n')  # a bad line that is not the last
    with pytest.raises(ConfigError) as caught:
        StateDir(store.path).load_endpoints()
    assert caught.value.where == str(journal) and caught.value.field == "line 2"


def test_replaying_lines_already_in_the_base_changes_nothing(store: StateDir) -> None:
    """A crash after the fold wrote the new base, before it emptied the journal."""
    store.load_endpoints()
    store.add_endpoint(spec(1), WEB)
    store.add_endpoint(spec(2), WEB)
    store.remove_endpoint(spec(1).endpoint_id)
    journal = Path(store.path) / JOURNAL_FILE
    lines = journal.read_bytes()
    expected = StateDir(store.path).load_endpoints()  # folds
    journal.write_bytes(lines)
    assert StateDir(store.path).load_endpoints() == expected == ([spec(2)], {"web": WEB})


def test_a_failed_write_saves_nothing_and_leaves_whole_lines(
    store: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.load_endpoints()
    store.add_endpoint(spec(1), WEB)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_store.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.add_endpoint(spec(2), WEB)
    monkeypatch.undo()
    store.add_endpoint(spec(3), WEB)
    assert StateDir(store.path).load_endpoints() == ([spec(1), spec(3)], {"web": WEB})


def test_a_start_that_cannot_fold_goes_on_and_folds_before_the_next_change(
    store: StateDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store.load_endpoints()
    store.add_endpoint(spec(1), WEB)
    journal = Path(store.path) / JOURNAL_FILE
    with open(journal, "ab") as handle:
        handle.write(b'{"remove": "0000')  # a crash in the middle of a write
    again = StateDir(store.path)

    def full_disk(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(again, "_write", full_disk)
    with caplog.at_level(logging.WARNING, logger="swimnet.agent"):
        assert again.load_endpoints() == ([spec(1)], {"web": WEB})
    assert any("cannot fold" in r.getMessage() for r in caplog.records)
    with pytest.raises(OSError):  # never appended after the unfinished line
        again.add_endpoint(spec(2), WEB)
    monkeypatch.undo()
    again.add_endpoint(spec(2), WEB)  # folds first, then appends
    assert journal.read_bytes().count(b"\n") == 1
    assert StateDir(store.path).load_endpoints() == ([spec(1), spec(2)], {"web": WEB})


def test_leftovers_are_removed_and_a_lost_base_is_reported(
    store: StateDir, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="swimnet.agent")
    directory = Path(store.path)
    leftovers = [directory / ".endpoints.json-1a2b.tmp", directory / ".node.json-3c4d.tmp"]
    for path in leftovers:
        path.write_text("{")
    (directory / "keep.tmp").write_text("not ours")
    assert store.remove_leftovers() == [str(p) for p in leftovers]
    assert not any(p.exists() for p in leftovers) and (directory / "keep.tmp").exists()
    assert store.load_endpoints() == ([], {})  # a first start: nothing to report, the base is written
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (directory / "node.json").write_text(json.dumps({"version": 1, "name": "a", "incarnation": 1}))
    (directory / ENDPOINTS_FILE).unlink()
    caplog.clear()
    assert StateDir(store.path).load_endpoints() == ([], {})
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert getattr(warning, FIELDS_ATTR)["file"] == str(directory / ENDPOINTS_FILE)


@pytest.mark.parametrize(
    ("field", "value"), [("ip", "10.1.0.300/24"), ("mac", "02:42:zz:01:00:02"), ("name", "c 1")]
)
def test_a_bad_state_file_exits_2_naming_file_and_field_before_joining(
    tmp_path: Path, field: str, value: str
) -> None:
    state = tmp_path / "st"
    state.mkdir(mode=0o700)
    (state / "node.json").write_text(json.dumps({"version": 1, "name": "a", "incarnation": 3}))
    item = good_item() | {field: value}
    (state / ENDPOINTS_FILE).write_text(json.dumps({"version": 1, "endpoints": [item], "networks": {}}))
    port = free_port("127.0.0.1")
    with (  # a seed that only listens: a join would reach it (datagrams, stream connections)
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
    ):
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))
        tcp.listen(8)
        udp.setblocking(False)
        tcp.setblocking(False)
        control = tmp_path / "sock"
        done = run_cli_process(
            "run", "--state-dir", str(state), "--socket", str(control), "--bind", "127.0.0.1:0",
            "--metrics", "off", "--no-datapath", "--join", f"127.0.0.1:{port}",
        )  # fmt: skip
        with pytest.raises(BlockingIOError):
            udp.recv(65536)  # nothing was sent to the seed
        with pytest.raises(BlockingIOError):
            tcp.accept()  # and no stream was opened to it: the agent never tried to join
    assert done.returncode == 2, done.stderr
    assert f"configuration error: {state / ENDPOINTS_FILE}: endpoints[0].{field}: " in done.stderr, (
        done.stderr
    )
    assert "Traceback" not in done.stderr and not control.exists()
