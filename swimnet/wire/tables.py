"""Wire messages of the replicated tables (codes 32-63) and their strict decoders.

Gossip (datagrams): `NetworkEvent` (a node joins/leaves a network), `TableEvent` (one entry).
Push-pull user state: `AttachmentState` (every known attachment).
Anti-entropy stream (one round trip per stream): `SyncRequest` -> `SyncReply`, each a list of
per-network `SyncSection`s (see `swimnet.tables.sync` for the protocol).

Rules:
- every name, key, value, list and blob is bounded here (protocol constants below); decoders
  raise only `DecodeError`;
- Lamport times are uint64, residual reap times are whole seconds (uint32);
- digest blobs are fixed-record byte strings, checked for shape here: child hashes are
  either dense (256 x 8-byte sums) or sparse (strictly increasing 1-byte index + 8-byte sum
  records, fewer than dense would take); summaries are 24-byte records
  (key hash, ltime, version hash); wants are 8-byte key hashes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from swimnet.errors import DecodeError
from swimnet.wire import fields as f
from swimnet.wire.codec import register
from swimnet.wire.limits import MAX_LTIME, MAX_UINT32, MAX_UINT64
from swimnet.wire.messages import WireMessage

MAX_NETWORK = 255
"""Network ids, in bytes of UTF-8."""
MAX_TABLE = 255
MAX_KEY = 512
MAX_VALUE = 8 * 1024
MAX_ATTACHMENTS = 200_000
"""Attachments in one push-pull user state (the stream decoder's list bound)."""
MAX_SYNC_SECTIONS = 4_096
MAX_SECTION_ENTRIES = 100_000
MAX_SECTION_ATTACHMENTS = 100_000
FANOUT = 256
"""Children per digest region; level 0 = the whole network, 1 = 256 buckets, 2 = 65,536 leaves."""
LEVELS = 3
MAX_REGIONS = 1 + FANOUT + FANOUT * FANOUT
DENSE_HASHES = FANOUT * 8
SPARSE_RECORD = 9
SUMMARY_RECORD = 24
MAX_SUMMARY_BYTES = SUMMARY_RECORD * MAX_SECTION_ENTRIES
MAX_WANTS = 100_000


@attrs.frozen
class NetworkEvent(WireMessage):
    """`node` joined (or, with `leaving`, left) `network` at network-clock `ltime`.

    `residual` is the seconds left before a leaving attachment is forgotten (0 for joins).
    """

    CODE: ClassVar[int] = 32
    ltime: int
    node: str
    network: str
    leaving: bool = False
    residual: int = 0


@attrs.frozen
class TableEvent(WireMessage):
    """One entry version: `owner` wrote (or, with `deleted`, deleted) `key` at table-clock `ltime`.

    `residual` is the seconds left before a tombstone is reaped (0 for live entries).
    """

    CODE: ClassVar[int] = 33
    ltime: int
    owner: str
    network: str
    table: str
    key: str
    value: bytes
    deleted: bool = False
    residual: int = 0


@attrs.frozen
class AttachmentRecord:
    """One (node, network) attachment as carried in push-pull and sync."""

    node: str
    network: str
    ltime: int
    leaving: bool
    residual: int = 0


@attrs.frozen
class AttachmentState(WireMessage):
    """Every attachment a node knows: the tables' push-pull user state."""

    CODE: ClassVar[int] = 34
    attachments: tuple[AttachmentRecord, ...]


@attrs.frozen
class EntryRecord:
    """One entry version inside a sync section (the network is the section's)."""

    table: str
    key: str
    value: bytes
    owner: str
    ltime: int
    deleted: bool
    residual: int = 0


@attrs.frozen
class Region:
    """A digest region with its payload: child hashes or entry summaries (see module doc)."""

    level: int
    index: int
    data: bytes = b""


@attrs.frozen
class SyncSection:
    """One network's part of a sync message.

    `attach_hash` (only in a section that starts a digest round) asks the peer for its full
    attachment set of the network if the hashes differ; `attachments_full` says that
    `attachments` is the sender's full set (the receiver answers with what the sender lacks).
    `more` says the sender had to leave things out: the initiator starts a new round.
    """

    network: str
    attach_hash: int | None = None
    attachments: tuple[AttachmentRecord, ...] = ()
    attachments_full: bool = False
    hashes: tuple[Region, ...] = ()
    summaries: tuple[Region, ...] = ()
    entries: tuple[EntryRecord, ...] = ()
    wants: bytes = b""
    more: bool = False

    def is_empty(self) -> bool:
        return not (
            self.attach_hash is not None
            or self.attachments
            or self.hashes
            or self.summaries
            or self.entries
            or self.wants
            or self.more
        )


@attrs.frozen
class SyncRequest(WireMessage):
    """Anti-entropy request from `sender`; `round` counts requests in one conversation."""

    CODE: ClassVar[int] = 35
    sender: str
    round: int
    sections: tuple[SyncSection, ...]


@attrs.frozen
class SyncReply(WireMessage):
    """Answer to a `SyncRequest` (same `round`)."""

    CODE: ClassVar[int] = 36
    sender: str
    round: int
    sections: tuple[SyncSection, ...]


# -- field checkers ---------------------------------------------------------------------


def network_name(value: Any, field: str) -> str:
    return f.text(value, field, MAX_NETWORK)


def table_name(value: Any, field: str) -> str:
    return f.text(value, field, MAX_TABLE)


def entry_key(value: Any, field: str) -> str:
    return f.text(value, field, MAX_KEY)


def _list(value: Any, field: str, maximum: int, width: int | None = None) -> list[Any]:
    if type(value) is not list or len(value) > maximum:
        raise DecodeError(f"{field}: expected a list of at most {maximum}")
    if width is not None:
        for item in value:
            if type(item) is not list or len(item) != width:
                raise DecodeError(f"{field}: expected items of {width} fields")
    return value


def check_child_hashes(data: bytes, field: str) -> bytes:
    """Dense (FANOUT sums) or sparse (increasing index + sum records, smaller than dense)."""
    if len(data) == DENSE_HASHES:
        return data
    if len(data) % SPARSE_RECORD or len(data) >= DENSE_HASHES:
        raise DecodeError(f"{field}: not a child hash list")
    last = -1
    for pos in range(0, len(data), SPARSE_RECORD):
        if data[pos] <= last:
            raise DecodeError(f"{field}: sparse indices not increasing")
        last = data[pos]
    return data


def _region(value: Any, field: str, hashes: bool) -> Region:
    level = f.uint(value[0], f"{field}.level", LEVELS - (2 if hashes else 1))
    index = f.uint(value[1], f"{field}.index", FANOUT**level - 1)
    if hashes:
        data = check_child_hashes(f.blob(value[2], f"{field}.data", DENSE_HASHES), f"{field}.data")
    else:
        data = f.blob(value[2], f"{field}.data", MAX_SUMMARY_BYTES)
        if len(data) % SUMMARY_RECORD:
            raise DecodeError(f"{field}.data: not a list of summaries")
    return Region(level, index, data)


def _attachment(value: Any, network: str, field: str) -> AttachmentRecord:
    return AttachmentRecord(
        f.name(value[0], f"{field}.node"),
        network,
        f.uint(value[1], f"{field}.ltime", MAX_LTIME),
        f.boolean(value[2], f"{field}.leaving"),
        f.uint(value[3], f"{field}.residual", MAX_UINT32),
    )


def _entry(value: Any, field: str) -> EntryRecord:
    return EntryRecord(
        table_name(value[0], f"{field}.table"),
        entry_key(value[1], f"{field}.key"),
        f.blob(value[2], f"{field}.value", MAX_VALUE),
        f.name(value[3], f"{field}.owner"),
        f.uint(value[4], f"{field}.ltime", MAX_LTIME),
        f.boolean(value[5], f"{field}.deleted"),
        f.uint(value[6], f"{field}.residual", MAX_UINT32),
    )


def _section(value: Any) -> SyncSection:
    field = "sync.section"
    if type(value) is not list or len(value) != 9:
        raise DecodeError(f"{field}: expected 9 fields")
    network = network_name(value[0], f"{field}.network")
    attach_hash = None if value[1] is None else f.uint(value[1], f"{field}.attach_hash", MAX_UINT64)
    atts = _list(value[2], f"{field}.attachments", MAX_SECTION_ATTACHMENTS, 4)
    hashes = _list(value[4], f"{field}.hashes", MAX_REGIONS, 3)
    summaries = _list(value[5], f"{field}.summaries", MAX_REGIONS, 3)
    entries = _list(value[6], f"{field}.entries", MAX_SECTION_ENTRIES, 7)
    wants = f.blob(value[7], f"{field}.wants", 8 * MAX_WANTS)
    if len(wants) % 8:
        raise DecodeError(f"{field}.wants: not a list of key hashes")
    return SyncSection(
        network,
        attach_hash,
        tuple(_attachment(a, network, f"{field}.attachment") for a in atts),
        f.boolean(value[3], f"{field}.attachments_full"),
        tuple(_region(r, f"{field}.hashes", True) for r in hashes),
        tuple(_region(r, f"{field}.summaries", False) for r in summaries),
        tuple(_entry(e, f"{field}.entry") for e in entries),
        wants,
        f.boolean(value[8], f"{field}.more"),
    )


def _sections(value: Any) -> tuple[SyncSection, ...]:
    sections = tuple(_section(s) for s in _list(value, "sync.sections", MAX_SYNC_SECTIONS))
    if len({s.network for s in sections}) != len(sections):
        raise DecodeError("sync.sections: a network appears twice")
    return sections


# -- encoders ---------------------------------------------------------------------------


def _enc_section(s: SyncSection) -> list[Any]:
    return [
        s.network,
        s.attach_hash,
        [[a.node, a.ltime, a.leaving, a.residual] for a in s.attachments],
        s.attachments_full,
        [[r.level, r.index, r.data] for r in s.hashes],
        [[r.level, r.index, r.data] for r in s.summaries],
        [[e.table, e.key, e.value, e.owner, e.ltime, e.deleted, e.residual] for e in s.entries],
        s.wants,
        s.more,
    ]


# -- decoders ---------------------------------------------------------------------------


def _dec_network_event(v: list[Any]) -> NetworkEvent:
    f.fields(v, 5, "network_event")
    return NetworkEvent(
        f.uint(v[1], "network_event.ltime", MAX_LTIME),
        f.name(v[2], "network_event.node"),
        network_name(v[3], "network_event.network"),
        f.boolean(v[4], "network_event.leaving"),
        f.uint(v[5], "network_event.residual", MAX_UINT32),
    )


def _dec_table_event(v: list[Any]) -> TableEvent:
    f.fields(v, 8, "table_event")
    return TableEvent(
        f.uint(v[1], "table_event.ltime", MAX_LTIME),
        f.name(v[2], "table_event.owner"),
        network_name(v[3], "table_event.network"),
        table_name(v[4], "table_event.table"),
        entry_key(v[5], "table_event.key"),
        f.blob(v[6], "table_event.value", MAX_VALUE),
        f.boolean(v[7], "table_event.deleted"),
        f.uint(v[8], "table_event.residual", MAX_UINT32),
    )


def _dec_attachment_state(v: list[Any]) -> AttachmentState:
    f.fields(v, 1, "attachment_state")
    items = _list(v[1], "attachment_state.attachments", MAX_ATTACHMENTS, 5)
    return AttachmentState(
        tuple(
            AttachmentRecord(
                f.name(a[0], "attachment.node"),
                network_name(a[1], "attachment.network"),
                f.uint(a[2], "attachment.ltime", MAX_LTIME),
                f.boolean(a[3], "attachment.leaving"),
                f.uint(a[4], "attachment.residual", MAX_UINT32),
            )
            for a in items
        )
    )


def _dec_sync_request(v: list[Any]) -> SyncRequest:
    f.fields(v, 3, "sync_request")
    return SyncRequest(
        f.name(v[1], "sync_request.sender"), f.uint(v[2], "sync_request.round"), _sections(v[3])
    )


def _dec_sync_reply(v: list[Any]) -> SyncReply:
    f.fields(v, 3, "sync_reply")
    return SyncReply(f.name(v[1], "sync_reply.sender"), f.uint(v[2], "sync_reply.round"), _sections(v[3]))


register(NetworkEvent, lambda m: [m.ltime, m.node, m.network, m.leaving, m.residual], _dec_network_event)
register(
    TableEvent,
    lambda m: [m.ltime, m.owner, m.network, m.table, m.key, m.value, m.deleted, m.residual],
    _dec_table_event,
)
register(
    AttachmentState,
    lambda m: [[[a.node, a.network, a.ltime, a.leaving, a.residual] for a in m.attachments]],
    _dec_attachment_state,
)
register(SyncRequest, lambda m: [m.sender, m.round, [_enc_section(s) for s in m.sections]], _dec_sync_request)
register(SyncReply, lambda m: [m.sender, m.round, [_enc_section(s) for s in m.sections]], _dec_sync_reply)
