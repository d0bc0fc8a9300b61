"""`python -m examples.pets`: the narrated pets lab (see examples/pets/__init__.py)."""

from __future__ import annotations

import sys

from examples.pets.demo import main

if __name__ == "__main__":
    sys.exit(main())
