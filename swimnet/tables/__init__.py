"""NetworkDB-style replicated tables as a pure state machine (see `state.TableState`).

The engine drives a `TableState`: local API calls, gossip messages, push-pull user state,
sync streams, membership events and the reap timer; every call takes `now` and returns the
`TableChange`s it caused.
"""

from swimnet.tables.changes import ChangeKind, TableChange
from swimnet.tables.config import TablesConfig
from swimnet.tables.state import TableState

__all__ = ["ChangeKind", "TableChange", "TableState", "TablesConfig"]
