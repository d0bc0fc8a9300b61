"""The agent's state directory: who this node is, and the endpoints it owns.

Files (JSON with a "version" field):
- `node.json`: {"name", "incarnation"}: a restarted agent comes back as the same node with
  a higher incarnation (persisted + 1), so the cluster sees it return, not a stranger;
- `endpoints.json`, the base: {"endpoints": [LocalEndpointSpec fields...], "networks":
  {name: base64 record}}: this agent's endpoints (re-published after a restart) and the
  records of their networks (the datapath needs them before the cluster has told us
  anything); a network's record is kept while the agent has an endpoint there;
- `endpoints.journal`: the changes since the base, one JSON object a line:
  {"add": spec fields, "network": base64 record} | {"remove": endpoint id} |
  {"networks": {name: base64 record}}. A change costs one appended line, whatever the
  number of endpoints; the journal is folded into a new base when it has more lines than
  there are endpoints (at least JOURNAL_MIN) and at every start;
- `ipam.json`: this agent's IPAM records and what it knows of the others' claims, per
  network (`ipam_state`, written through `write_doc` before a record is published);
- `lock`: held with flock while an agent runs, so two agents never share a directory.

Rules:
- writes: a base or node.json is written atomically (temporary `.NAME-*.tmp` in the same
  directory, fsync, rename, fsync of the directory): a crash leaves the old file or the new
  one. A journal line is appended and fsynced before the change counts (the agent
  publishes only after); an append that fails is cut off again (the journal holds whole
  lines) and raises OSError with nothing changed. Replaying a line sets or removes one
  endpoint or record, so replaying lines already folded into the base (a crash between
  writing a new base and emptying the journal) changes nothing;
- the journal's last line without its newline is a write a crash interrupted (never
  acknowledged): dropped, with a warning naming the file;
- reads are checked with `swimnet.values` (the one home of value parsing): a file that
  cannot be read, is not JSON or holds a bad value is a ConfigError naming the file
  (`where`), the field (`endpoints[3].ip`, `line 7: add.mac`) and what is wrong; the daemon
  reads every file before it opens its node (exit 2, nothing joined);
- `remove_leftovers()` deletes the temporary files a crash left behind, one log line each;
  the base is written at the first start, so a missing base where the node ran before
  (node.json present) was lost: `load_endpoints` says so in a warning naming the file and
  starts without local endpoints (the journal, if any, is still replayed).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from swimnet import values
from swimnet.agent.errors import StartupError
from swimnet.agent.logs import LOGGER, event
from swimnet.errors import ConfigError, DecodeError
from swimnet.overlay import LocalEndpointSpec, NetworkRecord
from swimnet.wire.limits import MAX_INCARNATION

log = logging.getLogger(LOGGER)

FORMAT_VERSION = 1
NODE_FILE = "node.json"
ENDPOINTS_FILE = "endpoints.json"
JOURNAL_FILE = "endpoints.journal"
LOCK_FILE = "lock"
JOURNAL_MIN = 256
"""The journal is folded into the base past max(JOURNAL_MIN, endpoints) lines."""

T = TypeVar("T")
_SPEC_FIELDS = ("endpoint_id", "network", "name", "ip", "mac", "netns", "pid", "ifname", "handoff")


@attrs.frozen
class Identity:
    name: str
    incarnation: int


class StateDir:
    """One agent's state directory; `open()` creates and locks it, `close()` unlocks."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._lock_fd: int | None = None
        self._saved: _Saved | None = None
        """What the files hold (None: not loaded yet)."""
        self._journal_lines = 0
        self._journal_torn = False
        """The journal ends in an unfinished line (a failed append that could not be cut
        off, or a crash): fold before the next append."""

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

    def remove_leftovers(self) -> list[str]:
        """Delete the temporary files a crash left (`.node.json-*.tmp`,
        `.endpoints.json-*.tmp`), one log line each; their paths."""
        removed = []
        ours = tuple(f".{name}-" for name in (NODE_FILE, ENDPOINTS_FILE))
        for name in sorted(os.listdir(self.path)):
            if name.startswith(ours) and name.endswith(".tmp"):
                path = os.path.join(self.path, name)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
                    event(
                        log, "removed a temporary file left by a crash", event="state_tmp_removed", file=path
                    )
        return removed

    # -- identity ---------------------------------------------------------------------------

    def load_identity(self) -> Identity | None:
        where = os.path.join(self.path, NODE_FILE)
        doc = self._read(NODE_FILE)
        if doc is None:
            return None
        incarnation = doc.get("incarnation")
        if type(incarnation) is not int or incarnation < 0:
            raise corrupt("incarnation", "expected an integer >= 0", where)
        if incarnation >= MAX_INCARNATION:  # the agent starts one above it: that must fit the wire
            raise corrupt("incarnation", f"{incarnation} is not below {MAX_INCARNATION}", where)
        return Identity(_checked(values.node_name, doc.get("name"), "name", where), incarnation)

    def save_identity(self, identity: Identity) -> None:
        self._write(NODE_FILE, {"name": identity.name, "incarnation": identity.incarnation})

    # -- local endpoints ----------------------------------------------------------------------

    def load_endpoints(self) -> tuple[list[LocalEndpointSpec], dict[str, NetworkRecord]]:
        """The saved endpoints and their networks' records (the base, then the journal),
        checked; then the journal is folded into a new base (see the module rules)."""
        base_path = os.path.join(self.path, ENDPOINTS_FILE)
        doc = self._read(ENDPOINTS_FILE)
        saved = _Saved()
        if doc is None:
            if os.path.exists(os.path.join(self.path, NODE_FILE)):
                event(
                    log,
                    "endpoints file missing: starting without local endpoints",
                    level=logging.WARNING,
                    event="state_missing",
                    file=base_path,
                )
        else:
            _base_from_json(doc, base_path, saved)
        self._journal_lines, self._journal_torn = self._replay(saved)
        self._saved = saved
        try:
            self._fold()
        except OSError as exc:  # the journal still holds everything: fold at a later change
            event(
                log,
                "cannot fold the journal into the endpoints file",
                level=logging.WARNING,
                event="state_error",
                file=base_path,
                error=str(exc),
            )
        return sorted(saved.specs.values(), key=lambda s: s.endpoint_id), dict(saved.networks)

    def save_endpoints(self, specs: list[LocalEndpointSpec], networks: dict[str, NetworkRecord]) -> None:
        """Replace everything saved by `specs` and `networks` (a new base, empty journal)."""
        saved = _Saved()
        for spec in specs:
            saved.add(spec, networks.get(spec.network))
        self._saved = saved
        self._fold()

    def add_endpoint(self, spec: LocalEndpointSpec, network: NetworkRecord) -> None:
        """Save a new endpoint and its network's record (OSError: nothing saved)."""
        saved = self._loaded()
        self._append({"add": attrs.asdict(spec), "network": _record_to_json(network)})
        saved.add(spec, network)
        self._after_append()

    def remove_endpoint(self, endpoint_id: str) -> None:
        """Forget an endpoint (and its network's record with its last endpoint there)."""
        saved = self._loaded()
        self._append({"remove": endpoint_id})
        saved.remove(endpoint_id)
        self._after_append()

    def save_networks(self, records: Mapping[str, NetworkRecord]) -> None:
        """Update the saved records of networks with a local endpoint (others are ignored)."""
        saved = self._loaded()
        records = {n: r for n, r in records.items() if saved.counts[n]}
        if records:
            self._append({"networks": {n: _record_to_json(r) for n, r in sorted(records.items())}})
            saved.update_networks(records)
            self._after_append()

    # -- the journal ------------------------------------------------------------------------

    def _loaded(self) -> _Saved:
        if self._saved is None:
            self.load_endpoints()
        assert self._saved is not None
        return self._saved

    def _replay(self, saved: _Saved) -> tuple[int, bool]:
        """Apply the journal to `saved`: (whole lines, whether an unfinished one ends it)."""
        path = os.path.join(self.path, JOURNAL_FILE)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return 0, False
        except OSError as exc:
            raise ConfigError(path, f"cannot read state file: {exc.strerror or exc}") from None
        lines = data.split(b"\n")
        if lines[-1]:
            event(
                log,
                "dropped an unfinished last line of the journal (a crash interrupted the write)",
                level=logging.WARNING,
                event="state_torn_write",
                file=path,
            )
        for number, line in enumerate(lines[:-1], start=1):
            _apply_line(line, f"line {number}", path, saved)
        return len(lines) - 1, bool(lines[-1])

    def _append(self, doc: dict[str, Any]) -> None:
        if self._journal_torn:
            self._fold()
        data = json.dumps(doc, sort_keys=True).encode() + b"\n"
        path = os.path.join(self.path, JOURNAL_FILE)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                os.write(fd, data)
                os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    self._journal_torn = True
                raise
        finally:
            os.close(fd)
        self._journal_lines += 1

    def _after_append(self) -> None:
        if self._journal_lines > max(JOURNAL_MIN, len(self._loaded().specs)):
            with contextlib.suppress(OSError):  # the journal holds the change: fold later
                self._fold()

    def _fold(self) -> None:
        """Write the base from what is saved, then empty the journal."""
        saved = self._saved if self._saved is not None else _Saved()
        self._write(
            ENDPOINTS_FILE,
            {
                "endpoints": [attrs.asdict(s) for _, s in sorted(saved.specs.items())],
                "networks": {name: _record_to_json(rec) for name, rec in sorted(saved.networks.items())},
            },
        )
        with contextlib.suppress(FileNotFoundError):
            os.truncate(os.path.join(self.path, JOURNAL_FILE), 0)
        self._journal_lines = 0
        self._journal_torn = False

    # -- files ------------------------------------------------------------------------------

    def read_doc(self, name: str) -> dict[str, Any] | None:
        """A JSON state file of this directory (None: absent); ConfigError naming it if it
        cannot be read, is not JSON or has another format version."""
        return self._read(name)

    def write_doc(self, name: str, doc: dict[str, Any]) -> None:
        """Replace a JSON state file atomically (see the module rules; OSError: unchanged)."""
        self._write(name, doc)

    def _read(self, name: str) -> dict[str, Any] | None:
        path = os.path.join(self.path, name)
        try:
            with open(path, encoding="utf-8") as handle:
                doc = json.load(handle)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(path, f"cannot read state file: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:
            raise ConfigError(path, f"corrupt state file: not JSON ({exc})") from None
        if type(doc) is not dict or doc.get("version") != FORMAT_VERSION:
            reason = f"corrupt state file: expected a JSON object with version {FORMAT_VERSION}"
            raise ConfigError(path, reason)
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


class _Saved:
    """Endpoints and the records of their networks, as the files hold them."""

    def __init__(self) -> None:
        self.specs: dict[str, LocalEndpointSpec] = {}
        self.networks: dict[str, NetworkRecord] = {}
        self.counts: Counter[str] = Counter()
        """Network -> endpoints there."""

    def add(self, spec: LocalEndpointSpec, network: NetworkRecord | None) -> None:
        self.remove(spec.endpoint_id)
        self.specs[spec.endpoint_id] = spec
        self.counts[spec.network] += 1
        if network is not None:
            self.networks[spec.network] = network

    def remove(self, endpoint_id: str) -> None:
        spec = self.specs.pop(endpoint_id, None)
        if spec is None:
            return
        self.counts[spec.network] -= 1
        if not self.counts[spec.network]:
            del self.counts[spec.network]
            self.networks.pop(spec.network, None)

    def update_networks(self, records: Mapping[str, NetworkRecord]) -> None:
        self.networks.update({n: r for n, r in records.items() if self.counts[n]})


# -- reading and checking -------------------------------------------------------------------


def corrupt(field: str, reason: str, where: str) -> ConfigError:
    """A ConfigError for a bad value of a state file (`field` in file `where`)."""
    return ConfigError(field, f"corrupt state file: {reason}", where)


def _checked(parse: Callable[[Any, str], T], value: Any, field: str, where: str) -> T:
    """`parse(value, field)`, its InvalidValue (or a wrong type) as a ConfigError."""
    if value is None:
        raise corrupt(field, "required", where)
    try:
        return parse(value, field)
    except values.InvalidValue as exc:
        raise corrupt(exc.field, exc.reason, where) from None


def _spec_from_json(item: Any, field: str, where: str) -> LocalEndpointSpec:
    if type(item) is not dict:
        raise corrupt(field, "expected an object", where)
    unknown = sorted(set(item) - set(_SPEC_FIELDS))
    if unknown:
        raise corrupt(f"{field}.{unknown[0]}", "unknown field", where)
    netns, pid, handoff = item.get("netns"), item.get("pid"), item.get("handoff")
    if netns is not None and pid is not None:
        raise corrupt(f"{field}.netns", "give either netns or pid, not both", where)
    return LocalEndpointSpec(
        endpoint_id=_checked(values.name, item.get("endpoint_id"), f"{field}.endpoint_id", where),
        network=_checked(values.name, item.get("network"), f"{field}.network", where),
        name=_checked(values.name, item.get("name"), f"{field}.name", where),
        ip=str(_checked(values.host_interface, item.get("ip"), f"{field}.ip", where)),
        mac=_checked(values.mac, item.get("mac"), f"{field}.mac", where),
        netns=None if netns is None else _checked(values.netns_name, netns, f"{field}.netns", where),
        pid=None if pid is None else _checked(values.pid, pid, f"{field}.pid", where),
        ifname=_checked(values.ifname, item.get("ifname", "eth0"), f"{field}.ifname", where),
        handoff=None if handoff is None else _checked(values.ifname, handoff, f"{field}.handoff", where),
    )


def _record_to_json(record: NetworkRecord) -> str:
    """The record's own encoding (unknown newer fields included), base64."""
    return base64.b64encode(record.encode()).decode("ascii")


def _record_from_json(name: Any, item: Any, field: str, where: str) -> NetworkRecord:
    _checked(values.name, name, field, where)
    if type(item) is not str:
        raise corrupt(field, "expected a base64 string", where)
    try:
        record = NetworkRecord.decode(base64.b64decode(item, validate=True))
    except (DecodeError, binascii.Error, ValueError) as exc:
        raise corrupt(field, str(exc), where) from None
    if record.name != name:
        raise corrupt(field, f"the record is network {record.name!r}", where)
    return record


def _records_from_json(doc: Any, field: str, where: str) -> dict[str, NetworkRecord]:
    if type(doc) is not dict:
        raise corrupt(field, "expected an object", where)
    return {name: _record_from_json(name, item, f"{field}.{name}", where) for name, item in doc.items()}


def _base_from_json(doc: dict[str, Any], where: str, saved: _Saved) -> None:
    items = doc.get("endpoints")
    if type(items) is not list:
        raise corrupt("endpoints", "expected a list", where)
    networks = _records_from_json(doc.get("networks", {}), "networks", where)
    for index, item in enumerate(items):
        spec = _spec_from_json(item, f"endpoints[{index}]", where)
        if spec.endpoint_id in saved.specs:
            raise corrupt(f"endpoints[{index}].endpoint_id", f"{spec.endpoint_id!r} appears twice", where)
        saved.add(spec, networks.get(spec.network))


def _apply_line(line: bytes, field: str, where: str, saved: _Saved) -> None:
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise corrupt(field, f"not JSON ({exc})", where) from None
    if type(doc) is not dict or len(doc) not in (1, 2):
        raise corrupt(field, "expected one change", where)
    if "add" in doc and set(doc) == {"add", "network"}:
        spec = _spec_from_json(doc["add"], f"{field}: add", where)
        saved.add(spec, _record_from_json(spec.network, doc["network"], f"{field}: network", where))
    elif set(doc) == {"remove"}:
        saved.remove(_checked(values.name, doc["remove"], f"{field}: remove", where))
    elif set(doc) == {"networks"}:
        saved.update_networks(_records_from_json(doc["networks"], f"{field}: networks", where))
    else:
        raise corrupt(field, f"unknown change {sorted(doc)}", where)
