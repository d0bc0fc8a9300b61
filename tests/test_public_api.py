"""The README's code samples use only names the `swimnet` package exports."""

from __future__ import annotations

import re
from pathlib import Path

import swimnet

README = Path(swimnet.__file__).resolve().parent.parent / "README.md"


def test_every_swimnet_name_in_the_readme_is_exported() -> None:
    # a file name such as /run/docker/plugins/swimnet.sock is not a Python name
    used = set(re.findall(r"(?<![/\w.-])swimnet\.([A-Za-z_]\w*)", README.read_text()))
    modules = {"config", "sim", "agent", "datapath", "io"}
    missing = sorted(name for name in used - modules if name not in swimnet.__all__)
    assert not missing, f"README uses swimnet.{missing[0]}, which swimnet does not export"
    for name in swimnet.__all__:
        assert hasattr(swimnet, name), name
