"""The state file's incarnation is checked on load (issue 16): the agent starts one above the
persisted value, and that must fit the wire (uint32), or peers could never decode it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swimnet.agent.daemon.state_store import Identity, StateDir
from swimnet.errors import ConfigError


@pytest.mark.parametrize("incarnation", [2**32 - 1, 2**32, 2**64])
def test_an_incarnation_the_agent_could_not_start_above_is_refused(tmp_path: Path, incarnation: int) -> None:
    store = StateDir(str(tmp_path / "st"))
    store.open()
    try:
        (tmp_path / "st" / "node.json").write_text(
            json.dumps({"version": 1, "name": "a", "incarnation": incarnation})
        )
        with pytest.raises(ConfigError, match=r"node.json: incarnation: corrupt state file"):
            store.load_identity()
    finally:
        store.close()


def test_the_last_incarnation_that_leaves_room_is_accepted(tmp_path: Path) -> None:
    store = StateDir(str(tmp_path / "st"))
    store.open()
    try:
        store.save_identity(Identity("a", 2**32 - 2))
        assert store.load_identity() == Identity("a", 2**32 - 2)
    finally:
        store.close()
