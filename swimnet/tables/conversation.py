"""One anti-entropy conversation over streams: request -> reply, repeated until done.

Rules:
- the initiator's first request has, per network, a start section: its own attachment, its
  attachment hash and its level-0 description (`sync.describe`); a responder is stateless:
  every section it gets is answered from what the section says (`sync.Response`);
- per section, first attachments: a start section whose attachment hash differs is answered
  with the full set; a full set is answered with what the sender lacks; then entries are
  applied, and only then wants, summaries and hashes are answered, so an entry's owner is
  known before the entry is checked;
- a section is processed for entries only if this node has joined the network and the peer
  is attached to it (not leaving, not failed); otherwise only attachments flow;
- an entry a section brought that loses to a version we hold hidden (its owner failed, so
  it is out of our digest) is answered with that version: the peer holds what it superseded;
- newer entries a section brought are relayed by gossip when they are few
  (`sync_relay_max`): a write whose gossip was lost spreads at gossip speed once one
  member has it; a bulk catch-up (a late joiner) is not relayed;
- one budget (`sync_chunk_bytes`) caps each message; a section cut short says `more`; the
  responder echoes `more`; the initiator, once it has nothing else to say for a network
  marked `more`, starts a fresh digest round for it; `sync_max_rounds` ends a conversation.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import attrs

from swimnet.tables.attachments import Attachment, AttachmentTable
from swimnet.tables.changes import TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.digest import Digest
from swimnet.tables.entry import Entry
from swimnet.tables.sync import Budget, Response, describe, to_record
from swimnet.wire.messages import WireMessage
from swimnet.wire.tables import (
    MAX_SECTION_ATTACHMENTS,
    AttachmentRecord,
    EntryRecord,
    SyncReply,
    SyncRequest,
    SyncSection,
)


class TableState(Protocol):
    """What a conversation reads and merges (swimnet.tables.state.TableState provides it)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> TablesConfig: ...

    @property
    def stats(self) -> Counter[str]: ...

    @property
    def attachments(self) -> AttachmentTable: ...

    def is_joined(self, network: str) -> bool: ...

    def is_failed(self, name: str) -> bool: ...

    def digest(self, network: str) -> Digest: ...

    def apply_record(
        self, network: str, rec: EntryRecord, now: float, changes: list[TableChange]
    ) -> Entry | None: ...

    def attachment_record(self, network: str, node: str, a: Attachment, now: float) -> AttachmentRecord: ...

    def hidden_winner(self, network: str, rec: EntryRecord) -> Entry | None: ...

    def relay(self, network: str, e: Entry, now: float) -> None: ...

    def merge_attachment(
        self,
        network: str,
        node: str,
        ltime: int,
        leaving: bool,
        residual_s: int,
        now: float,
        changes: list[TableChange],
    ) -> bool: ...


def start(state: TableState, networks: list[str], now: float) -> SyncRequest | None:
    sections = tuple(start_section(state, n, now) for n in networks if state.is_joined(n))
    return SyncRequest(state.name, 0, sections) if sections else None


def answer(state: TableState, message: WireMessage, now: float) -> tuple[SyncReply, list[TableChange]]:
    changes: list[TableChange] = []
    if not isinstance(message, SyncRequest):
        state.stats["unexpected_message"] += 1
        return SyncReply(state.name, 0, ()), changes
    budget = Budget(state.config.sync_chunk_bytes)
    out = []
    for section in message.sections:
        reply = process(state, section, message.sender, budget, now, changes)
        if section.more and not reply.more:
            reply = attrs.evolve(reply, more=True)
        if not reply.is_empty():
            out.append(reply)
    return SyncReply(state.name, message.round, tuple(out)), changes


def follow_up(
    state: TableState, message: WireMessage, now: float
) -> tuple[SyncRequest | None, list[TableChange]]:
    changes: list[TableChange] = []
    if not isinstance(message, SyncReply):
        state.stats["unexpected_message"] += 1
        return None, changes
    budget = Budget(state.config.sync_chunk_bytes)
    out = []
    for section in message.sections:
        follow = process(state, section, message.sender, budget, now, changes)
        if section.more and state.is_joined(section.network):
            if follow.is_empty():
                follow = start_section(state, section.network, now)  # next round of a big transfer
            else:
                follow = attrs.evolve(follow, more=True)
        if not follow.is_empty():
            out.append(follow)
    if not out:
        return None, changes
    if message.round + 1 >= state.config.sync_max_rounds:
        state.stats["sync_round_limit"] += 1
        return None, changes
    return SyncRequest(state.name, message.round + 1, tuple(out)), changes


def start_section(state: TableState, network: str, now: float) -> SyncSection:
    hashes, summaries = describe(state.digest(network), 0, 0, state.config.summary_max)
    own = state.attachments.get(network, state.name)
    assert own is not None, "a joined network has our attachment"
    return SyncSection(
        network,
        attach_hash=state.attachments.attach_hash(network),
        attachments=(state.attachment_record(network, state.name, own, now),),
        hashes=tuple(hashes),
        summaries=tuple(summaries),
    )


def process(
    state: TableState, section: SyncSection, peer: str, budget: Budget, now: float, changes: list[TableChange]
) -> SyncSection:
    """Apply one received section and build our answer to it."""
    network = section.network
    for r in section.attachments:
        state.merge_attachment(network, r.node, r.ltime, r.leaving, r.residual, now, changes)
    mine = state.attachments.of_network(network)
    full = False
    if section.attachments_full:
        theirs = {r.node: (r.ltime, r.leaving) for r in section.attachments}
        send = [(n, a) for n, a in sorted(mine.items()) if n not in theirs or a.order() > theirs[n]]
    elif section.attach_hash is not None and section.attach_hash != state.attachments.attach_hash(network):
        send, full = sorted(mine.items()), True
    else:
        send = []
    atts = tuple(state.attachment_record(network, n, a, now) for n, a in send[:MAX_SECTION_ATTACHMENTS])
    if not state.is_joined(network):
        state.stats["sync_not_joined"] += 1
        return SyncSection(network, attachments=atts, attachments_full=full)
    if not state.attachments.active(network, peer) or state.is_failed(peer):
        state.stats["sync_peer_not_attached"] += 1
        return SyncSection(network, attachments=atts, attachments_full=full)
    applied: list[Entry] = []
    shadowed: list[Entry] = []  # our hidden versions that beat what the peer sent
    for rec in section.entries:
        if (e := state.apply_record(network, rec, now, changes)) is not None:
            applied.append(e)
        elif (w := state.hidden_winner(network, rec)) is not None:
            shadowed.append(w)
    if len(applied) <= state.config.sync_relay_max:
        for e in applied:
            state.relay(network, e, now)
    response = Response(state.digest(network), budget, state.config.summary_max)
    response.push(shadowed)
    response.run(section.wants, section.summaries, section.hashes)
    return SyncSection(
        network,
        attachments=atts,
        attachments_full=full,
        hashes=tuple(response.hashes),
        summaries=tuple(response.summaries),
        entries=tuple(to_record(e, now) for e in response.pushes.values()),
        wants=response.packed_wants(),
        more=response.truncated,
    )
