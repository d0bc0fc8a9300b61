"""The agent datapath tests reuse the datapath tests' 3-host namespace lab (tests/datapath)."""

from __future__ import annotations

import sys
from pathlib import Path

_LAB = str(Path(__file__).resolve().parent.parent / "datapath")
if _LAB not in sys.path:
    sys.path.insert(0, _LAB)
