"""The agent's settings: a TOML file, then command-line flags over it, validated at once.

    name = "host-a"                 # default: the name kept in the state directory, else the host name
    bind = "0.0.0.0:7946"
    advertise = "10.0.0.5:7946"     # default: derived from bind
    join = ["10.0.0.6:7946"]
    label = "prod"                  # cluster label ("" = none)
    keyring = "/etc/swimnet/keyring"  # key file (base64, one key a line, primary first, mode 0600)
    state_dir = "/var/lib/swimnet"
    socket = "/run/swimnet/agent.sock"
    metrics = "127.0.0.1:9946"      # "off" (or "") disables the metrics endpoint
    profile = "lan"                 # lan | wan | local: memberlist's timing presets
    log_format = "text"             # text | json
    log_level = "info"              # debug | info | warning | error
    datapath = true
    underlay_mtu = 1500
    reconcile_interval = 30.0
    resolv_conf = "/etc/resolv.conf"  # the embedded DNS's upstreams: its `nameserver` lines (port 53)
    forward_single_label = false    # the embedded DNS forwards unknown names without a dot upstream
    docker_plugin = "/run/docker/plugins/swimnet.sock"   # Docker network + IPAM driver; "off" (default)
    docker_api = "/var/run/docker.sock"    # the dockerd the plugin serves (names are read there)
    docker_grace = 30.0             # an endpoint dockerd no longer knows is removed after this

    [tuning]                        # expert/testing: overrides of the profile's protocol timings,
    probe_interval = 0.2            # any swimnet.Config field except name, bind, advertise, meta,
    suspicion_mult = 2              # keyring and label (e.g. probe_timeout, gossip_interval,
    push_pull_interval = 2.0        # push_pull_interval, dead_reap_time, join_sync_delays...)

    [tables]                        # expert/testing: swimnet.tables.TablesConfig fields
    reap_interval = 5.0             # (reap_interval, network_reap_interval, node_reap_interval...)

Rules:
- a flag given on the command line replaces the file's value (`--join` replaces the whole
  list); relative paths in the file are relative to the file's directory;
- every error is a ConfigError whose `where` is where the value came from (the file path
  or "command line"), `field` the key (or flag) and `reason` the reason; unknown keys and
  wrong types are errors, never ignored; values of a kind swimnet.values knows (the node
  name, the underlay MTU) get its verdict;
- `resolv_conf` is read by the DNS resolvers, not here: a missing file means no upstream
  (forwarded names get SERVFAIL), and the file is re-read when it changes;
- the resolvers' settings (`forward_single_label`) become a `swimnet.dns.ResolverConfig`
  here (`resolver_config`), for the agent's resolvers and the Docker plugin's alike;
- the protocol Config and TablesConfig are built here once, so a bad timing is reported
  before anything starts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from swimnet import values
from swimnet.config import Config, parse_address
from swimnet.dns.limits import DNS_ADDRESS, ResolverConfig
from swimnet.dns.upstream import RESOLV_CONF
from swimnet.errors import ConfigError
from swimnet.security.keyring import Keyring
from swimnet.tables.config import TablesConfig

DEFAULT_BIND = "0.0.0.0:7946"
DEFAULT_STATE_DIR = "/var/lib/swimnet"
DEFAULT_SOCKET = "/run/swimnet/agent.sock"
DEFAULT_METRICS = "127.0.0.1:9946"
DEFAULT_DOCKER_PLUGIN = "/run/docker/plugins/swimnet.sock"
DEFAULT_DOCKER_API = "/var/run/docker.sock"
METRICS_PORT = 9946
PROFILES: dict[str, Callable[..., Config]] = {"lan": Config.lan, "wan": Config.wan, "local": Config.local}
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
COMMAND_LINE = "command line"

_NOT_TUNABLE = frozenset({"name", "bind", "advertise", "meta", "keyring", "label"})
_OFF = ("", "off", "none")


@attrs.frozen(kw_only=True)
class AgentSettings:
    name: str | None = None
    """None: the name kept in the state directory, else the host name."""
    bind: str = DEFAULT_BIND
    advertise: str | None = None
    join: tuple[str, ...] = ()
    label: str = ""
    keyring: str | None = None
    state_dir: str = DEFAULT_STATE_DIR
    socket: str = DEFAULT_SOCKET
    metrics: str | None = DEFAULT_METRICS
    profile: str = "lan"
    log_format: str = "text"
    log_level: str = "info"
    datapath: bool = True
    underlay_mtu: int = 1500
    reconcile_interval: float = 30.0
    """Seconds between full datapath reconciles (repairs outside tampering)."""
    resolv_conf: str = RESOLV_CONF
    """The file whose `nameserver` lines are the embedded DNS's upstream resolvers."""
    forward_single_label: bool = False
    """The embedded DNS forwards unknown single-label names upstream (as Docker's does);
    by default they are NXDOMAIN (see `swimnet.dns.limits.Policy`)."""
    docker_plugin: str | None = None
    """The Docker plugin's socket (swimnet.agent.docker); None: off."""
    docker_api: str = DEFAULT_DOCKER_API
    docker_grace: float = 30.0
    """Seconds before the plugin removes what dockerd no longer knows (also the period of
    that check; swimnet.agent.docker.reconcile)."""
    tuning: dict[str, Any] = attrs.field(factory=dict)
    tables: dict[str, Any] = attrs.field(factory=dict)
    source: str = COMMAND_LINE
    """Where the settings came from, for error messages (the config file or "command line")."""

    def node_config(self, name: str = "", keyring: Keyring | None = None) -> Config:
        """The protocol configuration (ConfigError naming the source and the field)."""
        try:
            return PROFILES[self.profile](
                name=name,
                bind=self.bind,
                advertise=self.advertise,
                label=self.label,
                keyring=keyring,
                **self.tuning,
            )
        except ConfigError as exc:
            section = "tuning." if exc.field in self.tuning else ""
            raise ConfigError(f"{section}{exc.field}", exc.reason, self.source) from None

    def resolver_config(self, address: str = DNS_ADDRESS) -> ResolverConfig:
        """The embedded DNS resolvers' configuration (listening on `address`)."""
        return ResolverConfig(address=address, forward_single_label=self.forward_single_label)

    def tables_config(self) -> TablesConfig:
        try:
            return TablesConfig(**self.tables)
        except ConfigError as exc:
            raise ConfigError(f"tables.{exc.field}", exc.reason, self.source) from None


# -- value checkers: (value, where, key) -> normalised value, ConfigError naming both ---------


def _fail(where: str, key: str, reason: str) -> ConfigError:
    return ConfigError(key, reason, where)


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _string(value: Any, where: str, key: str) -> str:
    if type(value) is not str:
        raise _fail(where, key, f"expected a string, got {_type_name(value)}")
    return value


def check_node_name(value: Any, where: str, key: str) -> str:
    text = _string(value, where, key)
    try:
        return values.node_name(text, key)
    except values.InvalidValue as exc:
        raise _fail(where, key, exc.reason) from None


def _address(value: Any, where: str, key: str) -> str:
    text = _string(value, where, key)
    try:
        parse_address(text, key)
    except ConfigError as exc:
        raise _fail(where, key, exc.reason) from None
    return text


def _address_list(value: Any, where: str, key: str) -> tuple[str, ...]:
    if type(value) is str:
        value = [value]
    if type(value) is not list:
        raise _fail(where, key, f"expected an array of 'host:port' strings, got {_type_name(value)}")
    return tuple(_address(item, where, key) for item in value)


def _metrics(value: Any, where: str, key: str) -> str | None:
    text = _string(value, where, key)
    if text.strip().lower() in _OFF:
        return None
    try:
        parse_address(text, key, default_port=METRICS_PORT)
    except ConfigError as exc:
        raise _fail(where, key, exc.reason) from None
    return text


def _optional_path(value: Any, where: str, key: str) -> str | None:
    text = _string(value, where, key)
    return None if text.lower() in _OFF else text


def _choice(options: tuple[str, ...]) -> Callable[[Any, str, str], str]:
    def check(value: Any, where: str, key: str) -> str:
        text = _string(value, where, key)
        if text not in options:
            raise _fail(where, key, f"must be one of {', '.join(options)}, got {text!r}")
        return text

    return check


def _boolean(value: Any, where: str, key: str) -> bool:
    if type(value) is not bool:
        raise _fail(where, key, f"expected true or false, got {_type_name(value)}")
    return value


def _mtu(value: Any, where: str, key: str) -> int:
    try:
        return values.underlay_mtu(value, key)
    except values.InvalidValue as exc:
        raise _fail(where, key, exc.reason) from None


def _interval(value: Any, where: str, key: str) -> float:
    if type(value) not in (int, float) or not 0.1 <= value <= 86_400:
        raise _fail(where, key, f"expected seconds in 0.1..86400, got {value!r}")
    return float(value)


_KEYS: dict[str, Callable[[Any, str, str], Any]] = {
    "name": check_node_name,
    "bind": _address,
    "advertise": _address,
    "join": _address_list,
    "label": _string,
    "keyring": _string,
    "state_dir": _string,
    "socket": _string,
    "metrics": _metrics,
    "profile": _choice(tuple(PROFILES)),
    "log_format": _choice(LOG_FORMATS),
    "log_level": _choice(LOG_LEVELS),
    "datapath": _boolean,
    "underlay_mtu": _mtu,
    "reconcile_interval": _interval,
    "resolv_conf": _string,
    "forward_single_label": _boolean,
    "docker_plugin": _optional_path,
    "docker_api": _string,
    "docker_grace": _interval,
}
_PATHS = ("keyring", "state_dir", "socket", "resolv_conf", "docker_plugin", "docker_api")
FLAGS: dict[str, str] = {
    "name": "--name",
    "bind": "--bind",
    "advertise": "--advertise",
    "join": "--join",
    "label": "--label",
    "keyring": "--keyring",
    "state_dir": "--state-dir",
    "socket": "--socket",
    "metrics": "--metrics",
    "profile": "--profile",
    "log_format": "--log-format",
    "datapath": "--no-datapath",
    "docker_plugin": "--docker-plugin",
    "docker_api": "--docker-api",
}
"""Settings key -> the flag that overrides it."""


# -- sections of expert overrides ---------------------------------------------------------------


def _field_kinds(cls: type) -> dict[str, str]:
    return {f.name: str(f.type) for f in attrs.fields(cls)}


def _tuned(value: Any, kind: str, where: str, key: str) -> Any:
    number = type(value) in (int, float)
    if kind == "bool":
        ok = type(value) is bool
    elif kind == "int":
        ok = type(value) is int
    elif kind in ("float", "float | None"):
        ok = number
    elif kind.startswith("tuple[float"):
        ok = type(value) is list and all(type(v) in (int, float) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = False
    if not ok:
        raise _fail(where, key, f"expected {kind.replace('float', 'number')}, got {_type_name(value)}")
    return value


def _section(table: Any, cls: type, where: str, section: str, exclude: frozenset[str]) -> dict[str, Any]:
    if type(table) is not dict:
        raise _fail(where, section, f"expected a table, got {_type_name(table)}")
    kinds = {k: v for k, v in _field_kinds(cls).items() if k not in exclude}
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{section}.{key}"
        if key not in kinds:
            raise _fail(where, full, "unknown key")
        out[key] = _tuned(value, kinds[key], where, full)
    return out


# -- loading ------------------------------------------------------------------------------------


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(path, f"cannot read config file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "invalid TOML: not UTF-8 text") from None


def _from_file(path: str) -> dict[str, Any]:
    data = read_toml(path)
    base = os.path.dirname(os.path.abspath(path))
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "tuning":
            values["tuning"] = _section(value, Config, path, "tuning", _NOT_TUNABLE)
        elif key == "tables":
            values["tables"] = _section(value, TablesConfig, path, "tables", frozenset())
        elif key in _KEYS:
            checked = _KEYS[key](value, path, key)
            if key in _PATHS and checked:
                checked = os.path.join(base, checked)
            values[key] = checked
        else:
            raise _fail(path, key, "unknown key")
    return values


def _from_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        if key not in _KEYS:
            raise ConfigError(key, "unknown setting", COMMAND_LINE)
        flag = FLAGS.get(key, key)
        checked = _KEYS[key](value, COMMAND_LINE, flag)
        if key in _PATHS and checked:
            checked = os.path.abspath(checked)
        values[key] = checked
    return values


def load_settings(config_file: str | None, flags: Mapping[str, Any]) -> AgentSettings:
    """Settings from the file (if any) with the flags over it; ConfigError on any problem.

    `flags` maps settings keys to values (None: not given on the command line).
    """
    values = _from_file(config_file) if config_file is not None else {}
    values.update(_from_flags(flags))
    for key in _PATHS:
        if values.get(key) == "":
            where = config_file if config_file is not None else COMMAND_LINE
            raise _fail(where, key, "must not be empty")
    settings = AgentSettings(source=config_file if config_file is not None else COMMAND_LINE, **values)
    settings.node_config()  # report bad timings and addresses now
    settings.tables_config()
    return settings
