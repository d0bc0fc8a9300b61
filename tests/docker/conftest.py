"""The Docker plugin tests reuse the agent tests' in-process helpers (tests/agent) and the
datapath tests' namespace lab (tests/datapath)."""

from __future__ import annotations

import sys
from pathlib import Path

for _folder in ("agent", "datapath"):
    _path = str(Path(__file__).resolve().parent.parent / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)
