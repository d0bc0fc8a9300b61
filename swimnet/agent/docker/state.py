"""The plugin's own records, kept in the agent's state directory (`docker-plugin.json`).

Docker remembers its pools, networks and endpoints by the ids the plugin answered; after an
agent restart the plugin must know them again, so every change is written before it is
answered.

Rules:
- pools by PoolID: the subnet, the gateway once Docker asked for it, the addresses handed
  out and not released, and the Docker network using the pool (set by CreateNetwork);
- networks by Docker's NetworkID: the pool and the swimnet network name once bound (see
  `plugin`), the driver options;
- endpoints by Docker's EndpointID: its Docker network, address (with prefix) and MAC,
  the swimnet endpoint id and the sandbox key while joined, and when it was created (the
  reconcile's grace);
- the file is written whole and atomically (temporary file, fsync, rename); a file that
  cannot be read or does not have these shapes is a StartupError naming the problem
  (never silently dropped: Docker would be left with ids nobody knows);
- pure data plus `load`/`save`: the plugin decides, this module only keeps.
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from swimnet.agent.errors import StartupError

FILE_NAME = "docker-plugin.json"
VERSION = 1


@attrs.define
class Pool:
    subnet: str
    gateway: str | None = None
    addresses: list[str] = attrs.field(factory=list)
    network_id: str | None = None


@attrs.define
class Network:
    pool_id: str
    name: str | None = None
    options: dict[str, str] = attrs.field(factory=dict)
    created: float = 0.0
    """Wall-clock time of CreateNetwork (seconds since the epoch)."""


@attrs.define
class Endpoint:
    network_id: str
    ip: str
    mac: str
    created: float
    """Wall-clock time of CreateEndpoint (seconds since the epoch)."""
    swimnet_id: str | None = None
    sandbox: str | None = None
    """The container's SandboxKey while joined."""


@attrs.define
class PluginState:
    pools: dict[str, Pool] = attrs.field(factory=dict)
    networks: dict[str, Network] = attrs.field(factory=dict)
    endpoints: dict[str, Endpoint] = attrs.field(factory=dict)


def _typed(cls: type[Any], items: Any, where: str) -> dict[str, Any]:
    if type(items) is not dict:
        raise ValueError(f"{where}: expected an object")
    out = {}
    for key, fields in items.items():
        if type(fields) is not dict:
            raise ValueError(f"{where}.{key}: expected an object")
        try:
            out[key] = cls(**fields)
        except TypeError as exc:
            raise ValueError(f"{where}.{key}: {exc}") from None
    return out


def _check(state: PluginState) -> None:
    """The field types (attrs does not check them)."""
    for key, pool in state.pools.items():
        ok = type(pool.subnet) is str and all(type(a) is str for a in pool.addresses)
        ok = ok and type(pool.addresses) is list
        if not ok or not isinstance(pool.gateway, (str, type(None))):
            raise ValueError(f"pools.{key}: bad field types")
    for key, net in state.networks.items():
        ok = type(net.pool_id) is str and type(net.options) is dict
        if not ok or type(net.created) not in (int, float):
            raise ValueError(f"networks.{key}: bad field types")
    for key, ep in state.endpoints.items():
        if not all(type(v) is str for v in (ep.network_id, ep.ip, ep.mac)):
            raise ValueError(f"endpoints.{key}: bad field types")
        if type(ep.created) not in (int, float):
            raise ValueError(f"endpoints.{key}.created: not a number")
        if not all(isinstance(v, (str, type(None))) for v in (ep.swimnet_id, ep.sandbox)):
            raise ValueError(f"endpoints.{key}: bad field types")


def load(directory: str) -> PluginState:
    path = os.path.join(directory, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except FileNotFoundError:
        return PluginState()
    except (OSError, ValueError) as exc:
        raise StartupError(f"{path}: cannot read the Docker plugin state: {exc}") from None
    try:
        if type(doc) is not dict or doc.get("version") != VERSION:
            raise ValueError(f"expected an object with version {VERSION}")
        state = PluginState(
            _typed(Pool, doc.get("pools", {}), "pools"),
            _typed(Network, doc.get("networks", {}), "networks"),
            _typed(Endpoint, doc.get("endpoints", {}), "endpoints"),
        )
        _check(state)
    except ValueError as exc:
        raise StartupError(f"{path}: corrupt Docker plugin state: {exc}") from None
    return state


def save(directory: str, state: PluginState) -> None:
    """Write the state atomically (OSError if it cannot)."""
    path = os.path.join(directory, FILE_NAME)
    doc = {"version": VERSION, **attrs.asdict(state)}
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
