"""What watchers see: state-derived changes of the visible entries.

Rules: a change describes the visible state (live entries whose owner is not failed), not the
wire message that caused it: a tombstone for an unknown key is no change, an update that keeps
value and owner is no change, a failed owner's entries are DELETED and CREATED again if it
returns. DELETED carries the last visible value and owner.
"""

from __future__ import annotations

import enum

import attrs


class ChangeKind(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@attrs.frozen
class TableChange:
    kind: ChangeKind
    network: str
    table: str
    key: str
    value: bytes
    owner: str
