"""Benchmark: fuzz every decoder of peer input with generated and mutated encodings.

Targets (each a decoder of bytes a peer controls; allowed failures in brackets):
- datagram: `wire.decode_packet` (membership, table and key messages) [DecodeError]
- stream: `wire.decode_stream` (push-pull, pings, key ops, keyring state; plain and
  zlib-compressed frames) [DecodeError]
- sealed: `security.unprotect` under three policies (keyring + label, keyring alone,
  label-only plaintext), and the authenticated stream header and first chunk
  (`security.streamauth.open_header` / `check_chunk`) [AuthenticationError]
- tables: the table messages of `wire/tables.py` (network and entry events in datagrams;
  sync requests/replies and attachment state in stream frames) through both decoders
  [DecodeError]
- overlay: the table values of `overlay/model.py` (network, endpoint and service
  documents) through all three record decoders [DecodeError]
- agent_body: the control API's JSON request bodies (network, endpoint and service
  creation) through the routes' parsers in `agent/http/requests.py` [OperationError]
- state_line: the agent state directory's journal lines through the store's reader
  (`agent/daemon/state_store.py`, what a restart replays) [ConfigError]

Inputs: one in ten is a freshly generated valid encoding (it must decode); the others are
a valid encoding mutated 1-3 times: bit flips, byte overwrites, truncation, extension,
deletion, duplication, splicing with another valid encoding, msgpack length fields set to
extremes (bin/str/array/map headers, the compressed frame's plain size, the
authenticated header's length), msgpack type swaps (a marker byte replaced, or a decoded
value replaced by one of another type and re-encoded; compressed frames are inflated,
mutated and re-compressed so the mutation reaches the decoder behind the inflater).
Any exception outside the allowed family is an "unexpected" failure: it is counted, its
input saved (results/fuzz_failures/), and the run goes on.

Memory: RSS (from /proc) at the start, after warm-up and after each target; tracemalloc
current and peak over a traced sample of every target at the end (tracing slows Python
down, so inputs/s come from the untraced part); the occupancy of the codec's bounded
caches (decoded messages and members by their bytes, 32,768 each, cleared when full):
RSS grows while they fill, then stays flat. Writes `fuzz.json`; `python -m benchmarks fuzz` or
`nox -s bench -- fuzz`. Nothing here asserts a speed; tests/wire/test_wire_fuzz.py runs
the same harness on a few thousand inputs and asserts zero unexpected failures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import random
import sys
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import msgpack

from swimnet.agent.daemon import state_store
from swimnet.agent.errors import OperationError
from swimnet.agent.http import requests
from swimnet.errors import AuthenticationError, ConfigError, DecodeError
from swimnet.overlay.model import EndpointRecord, NetworkRecord, ServiceRecord
from swimnet.security import streamauth
from swimnet.security.keyring import Keyring
from swimnet.security.seal import SecurityPolicy, protect, unprotect
from swimnet.wire import codec
from swimnet.wire.codec import COMPRESSED, decode_packet, decode_stream, encode_packet, encode_stream
from swimnet.wire.keys import KeyOp, KeyOpAck, KeyringState
from swimnet.wire.limits import MAX_DATAGRAM
from swimnet.wire.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    PushPull,
    State,
    Suspect,
    WireMessage,
)
from swimnet.wire.tables import (
    DENSE_HASHES,
    AttachmentRecord,
    AttachmentState,
    EntryRecord,
    NetworkEvent,
    Region,
    SyncReply,
    SyncRequest,
    SyncSection,
    TableEvent,
)

TOTAL = 1_000_000
SHARES = {
    "datagram": 0.3,
    "stream": 0.2,
    "sealed": 0.15,
    "tables": 0.15,
    "overlay": 0.1,
    "agent_body": 0.05,
    "state_line": 0.05,
}
TRACED_SHARE = 0.05
"""Share of each target's inputs run under tracemalloc (after the untraced part)."""
WARMUP_SHARE = 0.05
MAX_SAVED_FAILURES = 20


# -- valid encodings -------------------------------------------------------------------------


def _name(r: random.Random) -> str:
    roll = r.random()
    if roll < 0.8:
        return f"node-{r.randrange(10_000)}"
    if roll < 0.9:
        return "é" * r.randint(1, 63)  # multi-byte UTF-8, at the 255-byte bound
    return "n" * r.randint(1, 255)


def _addr(r: random.Random) -> tuple[str, int]:
    if r.random() < 0.9:
        return (f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(256)}", r.randrange(65_536))
    return (f"fd00::{r.randrange(65_536):x}", r.randrange(65_536))


def _blob(r: random.Random, most: int) -> bytes:
    n = r.choice((0, r.randint(0, 16), r.randint(0, most)))
    return r.randbytes(n) if r.random() < 0.5 else bytes(r.choices(b"abcd", k=n))


def _u32(r: random.Random) -> int:
    return r.choice((0, 1, r.randrange(2**32)))


def _u64(r: random.Random) -> int:
    return r.choice((0, 1, r.randrange(2**64)))


def _membership(r: random.Random) -> WireMessage:
    kind = r.randrange(7)
    if kind == 0:
        return Ping(_u32(r), _name(r), _name(r))
    if kind == 1:
        return IndirectPing(_u32(r), _name(r), _addr(r), _name(r), r.random() < 0.5)
    if kind == 2:
        return Ack(_u32(r), _blob(r, 1024))
    if kind == 3:
        return Nack(_u32(r))
    if kind == 4:
        return Alive(_u32(r), _name(r), _addr(r), _blob(r, 512), (2, 2, 2))
    if kind == 5:
        return Suspect(_u32(r), _name(r), _name(r))
    return Dead(_u32(r), _name(r), _name(r))


def _key_message(r: random.Random) -> WireMessage:
    if r.random() < 0.5:
        action = r.choice(("install", "use", "remove"))
        return KeyOp(
            r.randrange(2**63),
            _name(r),
            _u32(r),
            action,
            r.randbytes(4),
            r.randbytes(32 if action == "install" else 0),
            tuple(r.randbytes(32) for _ in range(r.randint(1, 4))),  # the keyring it results in
        )
    return KeyOpAck(_u32(r), _name(r), r.random() < 0.5, "" if r.random() < 0.5 else "no such key")


def _network_event(r: random.Random) -> NetworkEvent:
    return NetworkEvent(_u64(r), _name(r), f"net{r.randrange(100)}", r.random() < 0.3, _u32(r))


def _table_event(r: random.Random) -> TableEvent:
    return TableEvent(
        _u64(r), _name(r), f"net{r.randrange(100)}", "endpoints", f"ep{r.randrange(10**6)}", _blob(r, 2048),
        r.random() < 0.3, _u32(r),
    )  # fmt: skip


def _packet(r: random.Random, make: Callable[[random.Random], WireMessage]) -> bytes:
    while True:
        data = encode_packet([make(r) for _ in range(r.randint(1, 12))])
        if len(data) <= MAX_DATAGRAM:
            return data


def datagram_seed(r: random.Random) -> bytes:
    def any_message(r: random.Random) -> WireMessage:
        roll = r.random()
        if roll < 0.7:
            return _membership(r)
        if roll < 0.85:
            return _key_message(r)
        return _network_event(r) if roll < 0.92 else _table_event(r)

    return _packet(r, any_message)


def _member(r: random.Random) -> MemberState:
    return MemberState(_name(r), _addr(r), _blob(r, 512), _u32(r), r.choice(tuple(State)), (2, 2, 2))


def stream_seed(r: random.Random) -> bytes:
    roll = r.random()
    if roll < 0.6:
        members = tuple(_member(r) for _ in range(r.choice((0, r.randint(1, 8), r.randint(20, 150)))))
        message: WireMessage = PushPull(r.random() < 0.5, members, _blob(r, 4096))
    elif roll < 0.75:
        message = KeyringState(r.randrange(2**63), tuple(r.randbytes(32) for _ in range(r.randint(1, 4))))
    elif roll < 0.9:
        message = _key_message(r)
    else:
        message = _membership(r)
    return encode_stream(message)


def _section(r: random.Random) -> SyncSection:
    network = f"net{r.randrange(1000)}"
    hashes = []
    if r.random() < 0.3:
        if r.random() < 0.5:
            data = r.randbytes(DENSE_HASHES)
        else:
            idx = sorted(r.sample(range(256), r.randint(1, 20)))
            data = b"".join(bytes([i]) + r.randbytes(8) for i in idx)
        hashes.append(Region(r.randint(0, 1), 0, data))
    summaries = (
        [Region(2, r.randrange(65_536), r.randbytes(24 * r.randint(0, 10)))] if r.random() < 0.3 else []
    )
    entries = tuple(
        EntryRecord(
            "endpoints",
            f"ep{r.randrange(10**6)}",
            _blob(r, 200),
            _name(r),
            _u64(r),
            r.random() < 0.2,
            _u32(r),
        )
        for _ in range(r.choice((0, r.randint(1, 30))))
    )
    attachments = tuple(
        AttachmentRecord(_name(r), network, _u64(r), r.random() < 0.2, _u32(r))
        for _ in range(r.randint(0, 5))
    )
    return SyncSection(
        network,
        r.choice((None, _u64(r))),
        attachments,
        r.random() < 0.5,
        tuple(hashes),
        tuple(summaries),
        entries,
        r.randbytes(8 * r.randint(0, 8)),
        r.random() < 0.2,
    )


def tables_seed(r: random.Random) -> bytes:
    roll = r.random()
    if roll < 0.3:
        return _packet(r, lambda r: _network_event(r) if r.random() < 0.4 else _table_event(r))
    if roll < 0.5:
        records = tuple(
            AttachmentRecord(_name(r), f"net{r.randrange(50)}", _u64(r), r.random() < 0.2, _u32(r))
            for _ in range(r.randint(0, 60))
        )
        return encode_stream(AttachmentState(records))
    sections = {s.network: s for s in (_section(r) for _ in range(r.randint(0, 4)))}
    cls = SyncRequest if roll < 0.75 else SyncReply
    return encode_stream(cls(_name(r), _u32(r), tuple(sections.values())))


def overlay_seed(r: random.Random) -> bytes:
    extra: dict[str, Any] = {"future": r.randrange(100)} if r.random() < 0.2 else {}
    kind = r.randrange(3)
    if kind == 0:
        subnet = f"10.{r.randrange(256)}.{r.randrange(256)}.0/24"
        gateway = subnet.replace(".0/24", ".1") if r.random() < 0.5 else None
        vni = r.choice((None, r.randint(1, 2**24 - 1)))
        options = {"com.docker.network.driver.mtu": "1450"} if r.random() < 0.3 else {}
        record: Any = NetworkRecord(
            f"net{r.randrange(1000)}", subnet, vni, gateway, r.randint(576, 9000), options, _u64(r), extra
        )
    elif kind == 1:
        octets = (r.randrange(256), r.randrange(256), r.randint(2, 254))
        ip = "10.{}.{}.{}".format(*octets)
        mac = "02:42:" + ":".join(f"{b:02x}" for b in r.randbytes(4))
        vtep = f"192.168.{r.randrange(256)}.{r.randint(1, 254)}"  # VTEPs are IPv4 unicast hosts
        record = EndpointRecord(f"web-{r.randrange(10**6)}", f"{ip}/24", mac, vtep, extra)
    else:
        mode = r.choice(("vip", "dnsrr"))
        vip = f"10.0.{r.randrange(256)}.{r.randint(2, 254)}" if mode == "vip" else None
        ports = tuple(
            (r.choice(("tcp", "udp")), r.randint(1, 65535), r.randint(1, 65535))
            for _ in range(r.randint(0, 3))
        )
        backends = tuple(hashlib.sha256(r.randbytes(8)).hexdigest() for _ in range(r.randint(0, 5)))
        record = ServiceRecord(f"svc{r.randrange(1000)}", vip, mode, ports, backends, extra)
    data: bytes = record.encode()
    return data


# sealed: fixed keys and policies, so that what one seed seals another decoder can open
_KEYS = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
_POLICIES = [
    SecurityPolicy(Keyring(_KEYS[:2]), "lab"),
    SecurityPolicy(Keyring([_KEYS[1], _KEYS[2]]), ""),
    SecurityPolicy(None, "lab"),
]
_NOW = 1_700_000_000


def sealed_seed(r: random.Random) -> bytes:
    plaintext = stream_seed(r) if r.random() < 0.3 else datagram_seed(r)
    if r.random() < 0.25:  # an authenticated stream frame: header, then chunk 0 and its tag
        ring = Keyring(_KEYS[:2])
        payload = protect(_POLICIES[0], plaintext, r.randbytes)
        head, header = streamauth.make_header(ring, "lab", len(payload), _NOW - r.randint(0, 10), r.randbytes)
        chunk = payload[: streamauth.CHUNK_SIZE]
        return head + chunk + streamauth.chunk_tag(header, 0, chunk)
    return protect(r.choice(_POLICIES[:3]), plaintext, r.randbytes)


def decode_sealed(data: bytes) -> None:
    """Opened by one of the policies, or an authentic stream header and first chunk."""
    if data[:1] == bytes([streamauth.MARKER]):
        header = streamauth.open_header(Keyring(_KEYS[:2]), "lab", data[: streamauth.HEADER_SIZE], _NOW, 30.0)
        end = streamauth.HEADER_SIZE + min(header.length, streamauth.CHUNK_SIZE)
        streamauth.check_chunk(
            header, 0, data[streamauth.HEADER_SIZE : end], data[end : end + streamauth.TAG_SIZE]
        )
        return
    reasons = []
    for policy in _POLICIES:
        try:
            unprotect(policy, data)
            return
        except AuthenticationError as exc:  # kept as text: a kept exception would keep this frame
            reasons.append((exc.reason, str(exc)))
    raise AuthenticationError(*reasons[0])


def decode_tables(data: bytes) -> None:
    """Decoded as a datagram or as a stream frame (table messages travel in both)."""
    errors = []
    for decode in (decode_packet, decode_stream):
        try:
            decode(data)
            return
        except DecodeError as exc:  # kept as text: a kept exception would keep this frame
            errors.append(str(exc))
    raise DecodeError(errors[1 if data[:1] == bytes([COMPRESSED]) or len(data) > MAX_DATAGRAM else 0])


def decode_overlay(data: bytes) -> None:
    """Decoded as one of the three records (a table value is one of them)."""
    errors = []
    for cls in (NetworkRecord, EndpointRecord, ServiceRecord):
        try:
            cls.decode(data)
            return
        except DecodeError as exc:
            errors.append(str(exc))
    raise DecodeError(errors[0])


# agent: the control API's request bodies (JSON), each parsed as the routes parse them

_BODY_NAMES = ("web", "db-1", "a.b_c", "x" * 64)


def agent_body_seed(r: random.Random) -> bytes:
    kind = r.randrange(3)
    name = r.choice(_BODY_NAMES)
    doc: dict[str, Any]
    if kind == 0:
        doc = {"kind": "network", "name": name, "subnet": f"10.{r.randrange(256)}.{r.randrange(256)}.0/24"}
        if r.random() < 0.5:
            doc["options"] = {"vxlan_port": str(r.randint(1, 65535))}
        if r.random() < 0.3:
            doc["mtu"] = r.randint(576, 9000)
    elif kind == 1:
        doc = {"kind": "endpoint", "name": name, "ip": f"10.0.{r.randrange(256)}.{r.randint(1, 254)}/24"}
        if r.random() < 0.5:
            doc["mac"] = "02:42:" + ":".join(f"{b:02x}" for b in r.randbytes(4))
        if r.random() < 0.3:
            doc["netns"] = "ctr" + str(r.randrange(100))
    else:
        doc = {"kind": "service", "name": name, "vip": f"10.0.0.{r.randint(2, 254)}", "mode": "vip"}
        ports = [(r.choice(("tcp", "udp")), r.randint(1, 65535), r.randint(1, 65535)) for _ in range(3)]
        doc["ports"] = [
            {"protocol": proto, "published": published, "target": target}
            for proto, published, target in ports[: r.randint(0, 3)]
        ]
        doc["backends"] = [hashlib.sha256(r.randbytes(8)).hexdigest()[:12] for _ in range(r.randint(0, 3))]
    return json.dumps(doc).encode()


def decode_agent_body(data: bytes) -> object:
    """The route's parse of a request body; the `kind` field (when it survives) picks which
    parser, else all three run; only the agent's typed INVALID error may come out."""
    kind = b"network" if b'"network"' in data else b"endpoint" if b'"endpoint"' in data else b"service"
    body = data.replace(b'"kind": "' + kind + b'", ', b"", 1)
    if kind == b"network":
        return requests.network_create(body)
    if kind == b"endpoint":
        return requests.endpoint_create(body)
    return requests.service_fields(body, creating=True)


# agent: its state directory's journal lines (one change per line, JSON), as a restart reads them

def state_line_seed(r: random.Random) -> bytes:
    kind = r.randrange(3)
    if kind == 0:
        ip = f"10.1.0.{r.randint(2, 254)}/24"
        spec = {
            "endpoint_id": hashlib.sha256(r.randbytes(8)).hexdigest()[:12],
            "network": "ovnet",
            "name": r.choice(_BODY_NAMES),
            "ip": ip,
            "mac": "02:42:" + ":".join(f"{b:02x}" for b in r.randbytes(4)),
            "netns": "ctr1" if r.random() < 0.5 else None,
            "pid": None,
            "ifname": "eth0",
        }
        record = NetworkRecord("ovnet", "10.1.0.0/24", r.randint(1, 2**24 - 1), None, 1450, {}, 1, {})
        return json.dumps({"add": spec, "network": base64.b64encode(record.encode()).decode()}).encode()
    if kind == 1:
        return json.dumps({"remove": hashlib.sha256(r.randbytes(8)).hexdigest()[:12]}).encode()
    return json.dumps({"networks": {}}).encode()


def decode_state_line(data: bytes) -> object:
    """One journal line through the state store's own reader (a restart's path)."""
    saved = state_store._Saved()  # the reader's target: what a restart rebuilds
    state_store._apply_line(data, "journal[0]", "fuzz", saved)
    return saved


@dataclass
class Target:
    name: str
    seed: Callable[[random.Random], bytes]
    decode: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    body: int | None
    """Offset of the msgpack body in a plain encoding (None: not msgpack, e.g. sealed)."""


TARGETS = [
    Target("datagram", datagram_seed, decode_packet, (DecodeError,), 1),
    Target("stream", stream_seed, decode_stream, (DecodeError,), 1),
    Target("sealed", sealed_seed, decode_sealed, (AuthenticationError,), None),
    Target("tables", tables_seed, decode_tables, (DecodeError,), 1),
    Target("overlay", overlay_seed, decode_overlay, (DecodeError,), 0),
    Target("agent_body", agent_body_seed, decode_agent_body, (OperationError,), None),
    Target("state_line", state_line_seed, decode_state_line, (ConfigError,), None),
]


# -- mutations -------------------------------------------------------------------------------

_LENGTH_MARKERS = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}
_TYPE_MARKERS = bytes(
    [0xC0, 0xC1, 0xC2, 0xC3, 0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD3, 0xCA, 0xCB, 0xC4, 0xD9,
     0x90, 0x9F, 0x80, 0xD4, 0xC7, 0xDC, 0xDE, 0xA0, 0xBF, 0x00, 0x7F, 0xE0, 0xFF]
)  # fmt: skip
_INTERESTING = bytes(
    [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC1, 0x90, 0x9F, 0xDD, 0xDF, 0xE1, 0xF4, 0xE5, 0x12, 0x02]
)


def _flip(r: random.Random, d: bytearray) -> None:
    for _ in range(r.randint(1, 8)):
        i = r.randrange(len(d))
        d[i] ^= 1 << r.randrange(8)


def _overwrite(r: random.Random, d: bytearray) -> None:
    for _ in range(r.randint(1, 4)):
        d[r.randrange(len(d))] = r.choice(_INTERESTING) if r.random() < 0.5 else r.randrange(256)


def _truncate(r: random.Random, d: bytearray) -> None:
    del d[r.randrange(len(d)) :]


def _extend(r: random.Random, d: bytearray) -> None:
    d += r.randbytes(r.choice((1, r.randint(1, 64))))


def _delete(r: random.Random, d: bytearray) -> None:
    i = r.randrange(len(d))
    del d[i : i + r.randint(1, 16)]


def _duplicate(r: random.Random, d: bytearray) -> None:
    i = r.randrange(len(d))
    piece = d[i : i + r.randint(1, 64)]
    d[i:i] = piece


def _length_extreme(r: random.Random, d: bytearray, known: list[tuple[int, int]]) -> None:
    spots = [(i + 1, _LENGTH_MARKERS[b]) for i, b in enumerate(d) if b in _LENGTH_MARKERS] + known
    if not spots:
        i = r.randrange(len(d))
        d[i] = (d[i] & 0xF0) | 0x0F
        return
    pos, width = r.choice(spots)
    top = (1 << (8 * width)) - 1
    value = r.choice((0, 1, top, top - 1, top // 2 + 1, r.randrange(top + 1)))
    d[pos : pos + width] = value.to_bytes(width, "big")


def _marker_swap(r: random.Random, d: bytearray) -> None:
    spots = [i for i, b in enumerate(d) if b >= 0x80] or [r.randrange(len(d))]
    d[r.choice(spots)] = r.choice(_TYPE_MARKERS)


_SWAPS: list[Any] = [
    None, True, 0, -1, 2**64 - 1, -(2**63), 1.5, "", "x" * 300, b"", b"\0" * 300, [], [[[[]]]], {},
    {"k": 1}, msgpack.ExtType(1, b"x"),
]  # fmt: skip


def _swap_value(r: random.Random, value: Any, depth: int = 0) -> Any:
    """`value` with one node somewhere inside replaced by a value of another type."""
    if isinstance(value, list) and value and (depth < 6 and r.random() < 0.8):
        i = r.randrange(len(value))
        value[i] = _swap_value(r, value[i], depth + 1)
        return value
    if isinstance(value, dict) and value and (depth < 6 and r.random() < 0.8):
        key = r.choice(list(value))
        value[key] = _swap_value(r, value[key], depth + 1)
        return value
    choices = [s for s in _SWAPS if type(s) is not type(value)]
    if isinstance(value, list) and r.random() < 0.3:
        return value + value[:1] * r.randint(1, 3)  # an item too many
    return r.choice(choices)


def _structural(r: random.Random, d: bytearray, body: int | None) -> None:
    if body is None:
        _marker_swap(r, d)
        return
    compressed = d[:1] == bytes([COMPRESSED])
    try:
        raw = zlib.decompress(bytes(d[5:])) if compressed else bytes(d[body:])
        value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        packed = msgpack.packb(_swap_value(r, value), use_bin_type=True)
    except Exception:
        _marker_swap(r, d)
        return
    if compressed:
        d[:] = bytes([COMPRESSED]) + len(packed).to_bytes(4, "big") + zlib.compress(packed, 1)
    else:
        d[body:] = packed


MUTATIONS = (
    "flip",
    "overwrite",
    "truncate",
    "extend",
    "delete",
    "duplicate",
    "splice",
    "length",
    "marker",
    "structural",
)


def mutate(r: random.Random, data: bytes, other: bytes, target: Target, used: Counter[str]) -> bytes:
    d = bytearray(data)
    for _ in range(r.choice((1, 1, 2, 3))):
        if not d:
            d += r.randbytes(r.randint(1, 8))
        kind = r.choice(MUTATIONS)
        used[kind] += 1
        if kind == "flip":
            _flip(r, d)
        elif kind == "overwrite":
            _overwrite(r, d)
        elif kind == "truncate":
            _truncate(r, d)
        elif kind == "extend":
            _extend(r, d)
        elif kind == "delete":
            _delete(r, d)
        elif kind == "duplicate":
            _duplicate(r, d)
        elif kind == "splice":
            d = d[: r.randrange(len(d) + 1)] + other[r.randrange(len(other) + 1) :]
        elif kind == "length":
            known = [(1, 4)] if d[:1] == bytes([COMPRESSED]) else []
            if d[:1] == bytes([streamauth.MARKER]):
                known.append((25, 4))  # the authenticated header's length
            _length_extreme(r, d, known)
        elif kind == "marker":
            _marker_swap(r, d)
        else:
            _structural(r, d, target.body)
    return bytes(d)


# -- the harness -----------------------------------------------------------------------------


def _rss_kb() -> int:
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass
class TargetResult:
    inputs: int = 0
    generated: int = 0
    accepted: int = 0
    refused: int = 0
    unexpected: int = 0
    seconds_untraced: float = 0.0
    inputs_untraced: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, str]] = field(default_factory=list)
    generated_refused: int = 0

    def summary(self) -> dict[str, Any]:
        rate = self.inputs_untraced / self.seconds_untraced if self.seconds_untraced else 0.0
        return {
            "inputs": self.inputs,
            "generated_valid": self.generated,
            "generated_refused": self.generated_refused,
            "accepted": self.accepted,
            "refused": self.refused,
            "unexpected": self.unexpected,
            "inputs_per_second": round(rate),
            "refusals": dict(self.refusals.most_common(12)),
            "mutations": dict(sorted(self.mutations.items())),
            "failures": self.failures,
        }


class Fuzzer:
    def __init__(self, seed: int, failures_dir: pathlib.Path | None) -> None:
        self.rng = random.Random(seed)
        self.failures_dir = failures_dir

    def _corpus(self, target: Target, size: int = 64) -> list[bytes]:
        return [target.seed(self.rng) for _ in range(size)]

    def run_target(self, target: Target, count: int, result: TargetResult, traced: bool) -> None:
        r = self.rng
        corpus = self._corpus(target)
        decode, allowed = target.decode, target.allowed
        start = time.perf_counter()
        for n in range(count):
            if n % 512 == 511:  # fresh valid encodings now and then
                corpus[r.randrange(len(corpus))] = target.seed(r)
            generated = r.random() < 0.1
            if generated:
                data = target.seed(r)
            else:
                data = mutate(r, r.choice(corpus), r.choice(corpus), target, result.mutations)
            result.inputs += 1
            result.generated += generated
            try:
                decode(data)
            except allowed as exc:
                result.refused += 1
                result.generated_refused += generated
                result.refusals[_reason(exc)] += 1
            except Exception as exc:  # the point of the exercise: anything else is a bug
                result.unexpected += 1
                self._save(target, data, exc, result)
            else:
                result.accepted += 1
        if not traced:
            result.seconds_untraced += time.perf_counter() - start
            result.inputs_untraced += count

    def _save(self, target: Target, data: bytes, exc: Exception, result: TargetResult) -> None:
        if len(result.failures) >= MAX_SAVED_FAILURES:
            return
        digest = hashlib.sha256(data).hexdigest()[:16]
        entry = {"error": f"{type(exc).__name__}: {exc}"[:300], "input_sha256_16": digest}
        if self.failures_dir is not None:
            self.failures_dir.mkdir(parents=True, exist_ok=True)
            path = self.failures_dir / f"{target.name}-{digest}.bin"
            path.write_bytes(data)
            entry["saved"] = str(path)
        else:
            entry["input_hex"] = data[:512].hex()
        result.failures.append(entry)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AuthenticationError):
        return exc.reason
    text = str(exc)
    return text.split(":")[0][:40] if text else type(exc).__name__


def fuzz(
    total: int = TOTAL, seed: int = 1, failures_dir: pathlib.Path | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Run every target on its share of `total` inputs; the results (see the module doc)."""
    fuzzer = Fuzzer(seed, failures_dir)
    results = {t.name: TargetResult() for t in TARGETS}
    rss = {"start": _rss_kb()}
    counts = {t.name: max(10, round(total * SHARES[t.name])) for t in TARGETS}
    # warm-up: every target a little (the allocator, the codec's bounded caches)
    for target in TARGETS:
        fuzzer.run_target(
            target, max(1, round(counts[target.name] * WARMUP_SHARE)), results[target.name], False
        )
    rss["after_warmup"] = _rss_kb()
    for target in TARGETS:
        n = counts[target.name] - results[target.name].inputs - round(counts[target.name] * TRACED_SHARE)
        fuzzer.run_target(target, max(0, n), results[target.name], False)
        now_kb = rss[f"after_{target.name}"] = _rss_kb()
        if not quiet:
            print(
                f"  {target.name:<9} {results[target.name].inputs:>9,} inputs, RSS {now_kb:,} kB", flush=True
            )
    tracemalloc.start()
    traced_after: dict[str, int] = {}
    for target in TARGETS:
        n = counts[target.name] - results[target.name].inputs
        fuzzer.run_target(target, max(0, n), results[target.name], True)
        traced_after[target.name] = tracemalloc.get_traced_memory()[0] // 1024
    traced_end, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss["end"] = _rss_kb()
    targets = {name: result.summary() for name, result in results.items()}
    seconds = sum(r.seconds_untraced for r in results.values())
    untraced = sum(r.inputs_untraced for r in results.values())
    return {
        "benchmark": "fuzz",
        "seed": seed,
        "total_inputs": sum(r.inputs for r in results.values()),
        "unexpected": sum(r.unexpected for r in results.values()),
        "inputs_per_second": round(untraced / seconds) if seconds else 0,
        "targets": targets,
        "memory": {
            "rss_kb": rss,
            "tracemalloc_kb_after_each_target": traced_after,
            "tracemalloc_kb_end": traced_end // 1024,
            "tracemalloc_kb_peak": traced_peak // 1024,
            "traced_inputs": sum(r.inputs - r.inputs_untraced for r in results.values()),
            "codec_cache_entries": {
                "messages": len(codec._message_cache),
                "members": len(codec._member_cache),
                "bound_each": codec._CACHE_MAX,
            },
        },
        "allowed_failures": {t.name: [e.__name__ for e in t.allowed] for t in TARGETS},
    }


def run(out_dir: pathlib.Path, total: int = TOTAL, seed: int = 1) -> dict[str, Any]:
    """Fuzz, print a summary, write `out_dir/fuzz.json` (failing inputs in fuzz_failures/)."""
    from benchmarks.common import write_json

    print(f"fuzz: {total:,} inputs over {len(TARGETS)} decoders (seed {seed})")
    results = fuzz(total, seed, out_dir / "fuzz_failures")
    for name, row in results["targets"].items():
        print(
            f"  {name:<9} {row['inputs']:>9,} inputs {row['inputs_per_second']:>8,}/s"
            f"  accepted {row['accepted']:>8,}  refused {row['refused']:>8,}  unexpected {row['unexpected']}"
        )
    mem = results["memory"]
    rss = mem["rss_kb"]
    print(
        f"  total {results['total_inputs']:,} inputs, {results['inputs_per_second']:,}/s, "
        f"unexpected {results['unexpected']}\n"
        f"  RSS kB: " + ", ".join(f"{k} {v:,}" for k, v in rss.items()) + "\n"
        f"  tracemalloc over {mem['traced_inputs']:,} traced inputs: current after each target "
        + ", ".join(f"{k} {v:,}" for k, v in mem["tracemalloc_kb_after_each_target"].items())
        + f" kB, peak {mem['tracemalloc_kb_peak']:,} kB; codec caches {mem['codec_cache_entries']}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json("fuzz", results, out_dir)
    return results


if __name__ == "__main__":
    run(pathlib.Path(__file__).resolve().parent / "results")
