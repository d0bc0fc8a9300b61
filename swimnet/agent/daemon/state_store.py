"""The agent's state directory: who this node is, and the endpoints it owns.

Files (JSON documents with a "version" field):
- `node.json`: {"name", "incarnation"}: a restarted agent comes back as the same node with
  a higher incarnation (persisted + 1), so the cluster sees it return, not a stranger;
- `endpoints.json`: {"endpoints": [LocalEndpointSpec fields...], "networks": {name: base64 record}}:
  this agent's endpoints (re-published after a restart) and the records of their networks
  (the datapath needs them before the cluster has told us anything);
- `lock`: held with flock while an agent runs, so two agents never share a directory.

Rules: the directory is created with mode 0700; every write is atomic (temporary file in
the same directory, fsync, rename, fsync of the directory): a crash leaves the old file or
the new one. A file that cannot be read or parsed is a ConfigError naming it (the operator
must look at it; the agent never silently forgets its endpoints).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import tempfile
from typing import Any

import attrs

from swimnet.agent.errors import StartupError
from swimnet.errors import ConfigError, DecodeError
from swimnet.overlay import LocalEndpointSpec, NetworkRecord
from swimnet.wire.limits import MAX_INCARNATION

FORMAT_VERSION = 1
NODE_FILE = "node.json"
ENDPOINTS_FILE = "endpoints.json"
LOCK_FILE = "lock"


@attrs.frozen
class Identity:
    name: str
    incarnation: int


class StateDir:
    """One agent's state directory; `open()` creates and locks it, `close()` unlocks."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._lock_fd: int | None = None

    def open(self) -> None:
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(self.path, f"cannot use state directory: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StartupError(f"{self.path}: state directory is in use by another agent") from None
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- identity ---------------------------------------------------------------------------

    def load_identity(self) -> Identity | None:
        doc = self._read(NODE_FILE)
        if doc is None:
            return None
        name, incarnation = doc.get("name"), doc.get("incarnation")
        if type(name) is not str or not name or type(incarnation) is not int or incarnation < 0:
            raise self._corrupt(NODE_FILE, "expected a name and an incarnation")
        if incarnation >= MAX_INCARNATION:  # the agent starts one above it: that must fit the wire
            raise self._corrupt(NODE_FILE, f"incarnation {incarnation} is not below {MAX_INCARNATION}")
        return Identity(name, incarnation)

    def save_identity(self, identity: Identity) -> None:
        self._write(NODE_FILE, {"name": identity.name, "incarnation": identity.incarnation})

    # -- local endpoints ----------------------------------------------------------------------

    def load_endpoints(self) -> tuple[list[LocalEndpointSpec], dict[str, NetworkRecord]]:
        doc = self._read(ENDPOINTS_FILE)
        if doc is None:
            return [], {}
        try:
            specs = [_spec_from_json(item) for item in doc["endpoints"]]
            networks = {name: _record_from_json(rec) for name, rec in doc.get("networks", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._corrupt(ENDPOINTS_FILE, f"{type(exc).__name__}: {exc}") from None
        return specs, networks

    def save_endpoints(self, specs: list[LocalEndpointSpec], networks: dict[str, NetworkRecord]) -> None:
        self._write(
            ENDPOINTS_FILE,
            {
                "endpoints": [attrs.asdict(s) for s in sorted(specs, key=lambda s: s.endpoint_id)],
                "networks": {name: _record_to_json(rec) for name, rec in sorted(networks.items())},
            },
        )

    # -- files ------------------------------------------------------------------------------

    def _corrupt(self, name: str, reason: str) -> ConfigError:
        return ConfigError(os.path.join(self.path, name), f"corrupt state file: {reason}")

    def _read(self, name: str) -> dict[str, Any] | None:
        path = os.path.join(self.path, name)
        try:
            with open(path, encoding="utf-8") as handle:
                doc = json.load(handle)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(path, f"cannot read state file: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise self._corrupt(name, f"not JSON ({exc})") from None
        if type(doc) is not dict or doc.get("version") != FORMAT_VERSION:
            raise self._corrupt(name, f"expected a JSON object with version {FORMAT_VERSION}")
        return doc

    def _write(self, name: str, doc: dict[str, Any]) -> None:
        data = json.dumps({"version": FORMAT_VERSION, **doc}, indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, os.path.join(self.path, name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _spec_from_json(item: Any) -> LocalEndpointSpec:
    if type(item) is not dict:
        raise TypeError("an endpoint must be an object")
    spec = LocalEndpointSpec(**item)
    for field in ("endpoint_id", "network", "name", "ip", "mac", "ifname"):
        if type(getattr(spec, field)) is not str:
            raise TypeError(f"endpoint {field} must be a string")
    if spec.netns is not None and type(spec.netns) is not str:
        raise TypeError("endpoint netns must be a string")
    if spec.pid is not None and type(spec.pid) is not int:
        raise TypeError("endpoint pid must be an integer")
    return spec


def _record_to_json(record: NetworkRecord) -> str:
    """The record's own encoding (unknown newer fields included), base64."""
    return base64.b64encode(record.encode()).decode("ascii")


def _record_from_json(item: Any) -> NetworkRecord:
    if type(item) is not str:
        raise TypeError("a network must be a base64 string")
    try:
        return NetworkRecord.decode(base64.b64decode(item, validate=True))
    except (DecodeError, binascii.Error) as exc:
        raise ValueError(str(exc)) from None
