"""The Docker plugin tests reuse the agent tests' in-process helpers (tests/agent), the
datapath tests' namespace lab (tests/datapath) and the pets demo's runner
(tests/agent_datapath)."""

from __future__ import annotations

import sys
from pathlib import Path

for _folder in ("agent", "datapath", "agent_datapath"):
    _path = str(Path(__file__).resolve().parent.parent / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)
