"""Fixtures for the agent tests: clusters of agent processes, always killed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster; agents are added by the test (`cluster.add(name)`)."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        left = c.close()
    assert not left, left
