"""`python -m swimnet.agent ...` is `swimnet-agent ...`."""

from __future__ import annotations

import sys

from swimnet.agent.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
