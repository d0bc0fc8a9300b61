"""ConfigError carries its field: every raise site passes it, and nobody parses it back out
of a message."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

from swimnet import Config
from swimnet.agent.daemon.settings import AgentSettings, load_settings
from swimnet.errors import ConfigError, SwimnetError

SOURCES = sorted((Path(__file__).parent.parent / "swimnet").rglob("*.py"))


def test_field_reason_and_where() -> None:
    plain = ConfigError("bind", "port must be 0..65535, got '99999'")
    assert (plain.field, plain.reason, plain.where) == ("bind", "port must be 0..65535, got '99999'", "")
    assert str(plain) == "bind: port must be 0..65535, got '99999'"
    located = ConfigError("--bind", "empty host", "command line")
    assert str(located) == "command line: --bind: empty host"
    assert isinstance(located, ValueError) and isinstance(located, SwimnetError)
    again = pickle.loads(pickle.dumps(located))
    assert (again.field, again.reason, again.where, str(again)) == (
        "--bind",
        "empty host",
        "command line",
        str(located),
    )


def test_layers_read_the_field_not_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.lan(name="a", bind="127.0.0.1:99999")
    assert caught.value.field == "bind" and caught.value.where == ""
    with pytest.raises(ConfigError) as caught:
        AgentSettings(tuning={"probe_interval": -1.0}, source="agent.toml").node_config()
    assert (caught.value.field, caught.value.where) == ("tuning.probe_interval", "agent.toml")
    assert str(caught.value).startswith("agent.toml: tuning.probe_interval: must be a positive number")
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"bind": "127.0.0.1:http"})
    assert (caught.value.field, caught.value.where) == ("--bind", "command line")
    assert caught.value.reason == "port must be 0..65535, got 'http'"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"name": "a/b"})
    assert caught.value.field == "--name" and caught.value.reason.startswith("'a/b' must be 1..63")


def _config_error_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ConfigError"
    ]


def test_every_raise_site_passes_the_field() -> None:
    sites = 0
    for path in SOURCES:
        for call in _config_error_calls(ast.parse(path.read_text(), str(path))):
            sites += 1
            given = len(call.args) + sum(kw.arg in ("reason", "where") for kw in call.keywords)
            assert given >= 2, f"{path}:{call.lineno}: ConfigError(field, reason) expected"
    assert sites > 50


def test_nothing_parses_a_field_out_of_an_error_message() -> None:
    pattern = re.compile(r"str\((exc|err|error|e)\)\s*\.\s*(split|rsplit|partition|rpartition)\(")
    offenders = [
        f"{path}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []
