"""The agent datapath tests reuse the datapath tests' 3-host namespace lab (tests/datapath)
and the DNS tests' stub upstream resolver (tests/dns)."""

from __future__ import annotations

import sys
from pathlib import Path

for _dir in ("datapath", "dns"):
    _LAB = str(Path(__file__).resolve().parent.parent / _dir)
    if _LAB not in sys.path:
        sys.path.insert(0, _LAB)
