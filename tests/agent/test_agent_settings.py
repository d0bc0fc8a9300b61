"""Settings: the TOML file, flags over it, and errors that name the file, the key and the reason."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from swimnet.agent.daemon.run import default_resolver_pool
from swimnet.agent.daemon.settings import (
    COMMAND_LINE,
    DEFAULT_METRICS,
    DEFAULT_SOCKET,
    DEFAULT_STATE_DIR,
    load_settings,
)
from swimnet.agent.domain.cluster import Cluster
from swimnet.agent.domain.dns import AgentDns
from swimnet.agent.domain.overlay import OverlayAgent
from swimnet.dns.pool import ResolverPool
from swimnet.errors import ConfigError

NO_FLAGS: dict[str, Any] = {}


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file() -> None:
    s = load_settings(None, NO_FLAGS)
    assert (s.name, s.bind, s.advertise, s.join, s.label, s.keyring) == (
        None,
        "0.0.0.0:7946",
        None,
        (),
        "",
        None,
    )
    assert (s.state_dir, s.socket, s.metrics) == (DEFAULT_STATE_DIR, DEFAULT_SOCKET, DEFAULT_METRICS)
    assert (s.profile, s.log_format, s.datapath, s.source) == ("lan", "text", True, COMMAND_LINE)
    assert s.node_config().probe_interval == 1.0
    assert s.resolv_conf == "/etc/resolv.conf"


def test_file_values_relative_paths_and_flags_over_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name = "host-a"
        bind = "127.0.0.1:7000"
        advertise = "10.0.0.5:7000"
        join = ["127.0.0.2:7000", "127.0.0.3"]
        label = "prod"
        keyring = "keys/ring"
        state_dir = "state"
        socket = "/run/x.sock"
        metrics = "off"
        profile = "wan"
        log_format = "json"
        datapath = false
        resolv_conf = "dns/resolv.conf"
        [tuning]
        probe_interval = 6
        join_sync_delays = [0.5, 1]
        [tables]
        reap_interval = 60.0
        """,
    )
    s = load_settings(path, NO_FLAGS)
    assert (s.name, s.bind, s.advertise, s.label) == ("host-a", "127.0.0.1:7000", "10.0.0.5:7000", "prod")
    assert s.join == ("127.0.0.2:7000", "127.0.0.3")
    assert s.keyring == str(tmp_path / "keys" / "ring") and s.state_dir == str(tmp_path / "state")
    assert s.socket == "/run/x.sock" and s.metrics is None and not s.datapath
    assert s.resolv_conf == str(tmp_path / "dns" / "resolv.conf")
    config = s.node_config("host-a")
    assert config.probe_interval == 6 and config.probe_timeout == 3.0  # wan preset, one override
    assert config.join_sync_delays == (0.5, 1)
    assert s.tables_config().reap_interval == 60.0
    flags = {
        "name": "host-b",
        "join": ["127.0.0.9:1"],
        "datapath": None,
        "metrics": "127.0.0.1:9",
        "state_dir": "rel",
    }
    over = load_settings(path, flags)
    assert over.name == "host-b" and over.join == ("127.0.0.9:1",) and over.metrics == "127.0.0.1:9"
    assert over.state_dir == os.path.abspath("rel") and not over.datapath


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bind = 7946\n", "bind: expected a string, got integer"),
        ("bnd = 'x'\n", "bnd: unknown key"),
        ("bind = 'x:99999'\n", "bind: port must be 0..65535"),
        ("join = 'a:1'\njoin2 = 1\n", "join2: unknown key"),
        ("join = [1]\n", "join: expected a string, got integer"),
        ("profile = 'fast'\n", "profile: must be one of lan, wan, local"),
        ("datapath = 'no'\n", "datapath: expected true or false, got string"),
        ("name = 'has space'\n", "name: 'has space' must be 1..63 characters"),
        ("socket = ''\n", "socket: must not be empty"),
        ("resolv_conf = ''\n", "resolv_conf: must not be empty"),
        ("resolv_conf = 53\n", "resolv_conf: expected a string, got integer"),
        ("metrics = 'x:y'\n", "metrics: port must be 0..65535"),
        ("[tuning]\nprobe_interval = 'fast'\n", "tuning.probe_interval: expected number, got string"),
        ("[tuning]\nname = 'x'\n", "tuning.name: unknown key"),
        ("[tuning]\nprobe_timeout = 5.0\n", "tuning.probe_timeout: must not exceed probe_interval"),
        ("[tuning]\nsuspicion_mult = 1.5\n", "tuning.suspicion_mult: expected int, got float"),
        ("[tuning]\ntcp_fallback_probe = 1\n", "tuning.tcp_fallback_probe: expected bool, got integer"),
        ("tuning = 3\n", "tuning: expected a table, got integer"),
        ("[tables]\nreap_interval = -1\n", "tables.reap_interval: must be positive"),
        ("[tables]\nreap = 1\n", "tables.reap: unknown key"),
        ("bind = 'x\n", "invalid TOML: "),
        ("= 1\n", "invalid TOML: "),
    ],
)
def test_bad_files_name_the_file_the_key_and_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, NO_FLAGS)
    message = str(caught.value)
    assert message.startswith(path + ": ") and expected in message, message


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere.toml: cannot read config file: No such file"):
        load_settings(str(tmp_path / "nothere.toml"), NO_FLAGS)
    (tmp_path / "bin.toml").write_bytes(b"name = '\xff'\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(str(tmp_path / "bin.toml"), NO_FLAGS)


def test_bad_flags_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^command line: --bind: port must be 0..65535"):
        load_settings(None, {"bind": "h:70000"})
    with pytest.raises(ConfigError, match=r"^command line: --join: empty host"):
        load_settings(None, {"join": [":7946"]})
    with pytest.raises(ConfigError, match=r"^command line: --name: 'a/b'"):
        load_settings(None, {"name": "a/b"})


def test_forward_single_label_reaches_the_resolvers(tmp_path: Path) -> None:
    assert load_settings(None, NO_FLAGS).resolver_config().forward_single_label is False
    s = load_settings(write(tmp_path, "forward_single_label = true\n"), NO_FLAGS)
    assert s.forward_single_label is True
    assert s.resolver_config().forward_single_label is True
    assert s.resolver_config(address="127.0.0.12").address == "127.0.0.12"  # the Docker plugin's


def test_forward_single_label_must_be_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, 'forward_single_label = "yes"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path, NO_FLAGS)
    assert exc.value.field == "forward_single_label" and "true or false" in exc.value.reason


async def test_the_agents_resolver_pool_is_opened_with_the_settings(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "forward_single_label = true\n"), NO_FLAGS)
    dns = AgentDns(cast(Cluster, None), Counter())
    overlay = cast(OverlayAgent, SimpleNamespace(dns=dns))
    async with default_resolver_pool(overlay, str(tmp_path / "resolv.conf"), s.resolver_config()) as pool:
        assert isinstance(pool, ResolverPool) and pool.config.forward_single_label is True
