"""Completion events the engine announces (in the manner of aioquic's `HandshakeCompleted`),
drained with `engine.events()` beside membership events and table changes.

Rule: every operation a caller may wait for ends with exactly one of these; the runtime
wakes its waiters when it drains them, so nothing polls.
"""

from __future__ import annotations

import attrs

from swimnet.security.keyops import KeyOpResult


@attrs.frozen
class KeyOpFinished:
    """A cluster-wide key operation started here has its answers (or timed out)."""

    op_id: int
    result: KeyOpResult


@attrs.frozen
class SyncFinished:
    """A table sync conversation started here about `network` with `peer` ended.

    ok=False: the stream failed (no answer, refused); the tables' own timers retry later.
    """

    network: str
    peer: str
    ok: bool
