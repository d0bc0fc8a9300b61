"""The Docker plugin tests reuse the agent tests' in-process helpers (tests/agent)."""

from __future__ import annotations

import sys
from pathlib import Path

_AGENT = str(Path(__file__).resolve().parent.parent / "agent")
if _AGENT not in sys.path:
    sys.path.insert(0, _AGENT)
