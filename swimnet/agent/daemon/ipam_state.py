"""The IPAM part of the agent's state directory: `ipam.json`.

Format (JSON, with the directory's "version"): {"left": bool, "networks": {name: {"subnet",
"gateway" (or null), "record" (base64 or null), "memory" (base64 or null), "reserved":
[addresses]}}}. "record" is this agent's IPAM record as last published, "memory" what it
knew of the others' claims, "reserved" the addresses it granted that no endpoint or VIP
holds yet; "left" says the agent stopped with a graceful leave (its claims are voted on
again after the restart: the others dropped them).

Rules: the whole file is rewritten atomically at each change (`StateDir.write_doc`: one
small record per network, rewritten only when a record, the memory or a reservation
changes); reading checks every value (`swimnet.values` for names and addresses; a record
or memory that is not base64 is a ConfigError naming the field; their contents are decoded
and checked by `swimnet.ipam` when used, where a bad one is dropped with a warning).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from swimnet import values
from swimnet.agent.daemon.state_store import StateDir, corrupt
from swimnet.agent.domain.ports import SavedIpam

IPAM_FILE = "ipam.json"


class IpamFile:
    """`ipam.json` of a state directory (implements `domain.ports.IpamStore`)."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self._networks: dict[str, SavedIpam] = {}
        self._left = False

    def load_ipam(self) -> tuple[dict[str, SavedIpam], bool]:
        where = os.path.join(self.state.path, IPAM_FILE)
        doc = self.state.read_doc(IPAM_FILE)
        if doc is None:
            return {}, False
        left = doc.get("left", False)
        if type(left) is not bool:
            raise corrupt("left", "expected a boolean", where)
        networks = doc.get("networks", {})
        if type(networks) is not dict:
            raise corrupt("networks", "expected an object", where)
        out = {}
        for name, item in networks.items():
            field = f"networks.{name}"
            try:
                values.name(name, field)
            except values.InvalidValue as exc:
                raise corrupt(exc.field, exc.reason, where) from None
            out[name] = _network_from_json(item, field, where)
        self._networks, self._left = dict(out), left
        return out, left

    def save_ipam(self, network: str, saved: SavedIpam | None) -> None:
        networks = dict(self._networks)
        if saved is None:
            networks.pop(network, None)
        else:
            networks[network] = saved
        self._save(networks, self._left)
        self._networks = networks

    def save_ipam_left(self, left: bool) -> None:
        self._save(self._networks, left)
        self._left = left

    def _save(self, networks: dict[str, SavedIpam], left: bool) -> None:
        doc = {"left": left, "networks": {n: _network_to_json(s) for n, s in sorted(networks.items())}}
        self.state.write_doc(IPAM_FILE, doc)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _network_to_json(saved: SavedIpam) -> dict[str, Any]:
    return {
        "subnet": saved.subnet,
        "gateway": saved.gateway,
        "record": _b64(saved.record),
        "memory": _b64(saved.memory),
        "reserved": list(saved.reserved),
    }


def _bytes(value: Any, field: str, where: str) -> bytes | None:
    if value is None:
        return None
    if type(value) is not str:
        raise corrupt(field, "expected a base64 string or null", where)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise corrupt(field, f"not base64 ({exc})", where) from None


def _network_from_json(item: Any, field: str, where: str) -> SavedIpam:
    if type(item) is not dict:
        raise corrupt(field, "expected an object", where)
    unknown = sorted(set(item) - {"subnet", "gateway", "record", "memory", "reserved"})
    if unknown:
        raise corrupt(f"{field}.{unknown[0]}", "unknown field", where)
    reserved = item.get("reserved", [])
    if type(reserved) is not list:
        raise corrupt(f"{field}.reserved", "expected a list", where)
    try:
        subnet = values.subnet(item.get("subnet", ""), f"{field}.subnet")
        gateway = item.get("gateway")
        if gateway is not None:
            gateway = values.address(gateway, f"{field}.gateway")
        addresses = tuple(values.address(a, f"{field}.reserved[{i}]") for i, a in enumerate(reserved))
    except values.InvalidValue as exc:
        raise corrupt(exc.field, exc.reason, where) from None
    return SavedIpam(
        subnet=str(subnet),
        gateway=gateway,
        record=_bytes(item.get("record"), f"{field}.record", where),
        memory=_bytes(item.get("memory"), f"{field}.memory", where),
        reserved=addresses,
    )
