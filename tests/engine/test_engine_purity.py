"""The sans-IO layers stay pure: no clock, no sockets, no event loop, no ambient randomness.

DESIGN.md: `wire`, `security`, `membership`, `tables`, `topology` and `engine` never import
trio, `time`, sockets, asyncio, `os.urandom` or the module-level `random` functions; time
comes in as `now`, randomness as an injected `random.Random`. Checked on the syntax tree
(`ast`), so comments and docstrings that merely mention these names do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import swimnet

ROOT = Path(swimnet.__file__).resolve().parent
PURE_PACKAGES = ["wire", "membership", "tables", "topology", "security"]
FORBIDDEN_MODULES = {"trio", "socket", "time", "asyncio", "secrets", "selectors", "threading"}
ALLOWED_RANDOM_ATTRIBUTES = {"Random"}
"""`random.Random` (the type, constructed with an explicit seed) is the only allowed use."""


def pure_modules() -> list[Path]:
    files = [ROOT / "engine.py"]
    for package in PURE_PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def violations(source: str) -> list[str]:
    """Every impure use in `source`, as 'line: what'."""
    tree = ast.parse(source)
    found: list[str] = []
    random_aliases: set[str] = set()
    os_aliases: set[str] = set()

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                bound = alias.asname or top
                if top in FORBIDDEN_MODULES:
                    found.append(f"{node.lineno}: import {alias.name}")
                if alias.name == "random":
                    random_aliases.add(bound)
                if alias.name == "os":
                    os_aliases.add(bound)
                if alias.name in ("nacl.utils",):
                    found.append(f"{node.lineno}: import {alias.name} (OS randomness)")
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            top = node.module.split(".")[0]
            imported = {a.name for a in node.names}
            if top in FORBIDDEN_MODULES:
                found.append(f"{node.lineno}: from {node.module} import ...")
            banned = imported - ALLOWED_RANDOM_ATTRIBUTES
            if node.module == "random" and banned:
                found.append(f"{node.lineno}: from random import {sorted(banned)}")
            if node.module == "os" and "urandom" in imported:
                found.append(f"{node.lineno}: from os import urandom")
            if node.module == "nacl.utils" and "random" in imported:
                found.append(f"{node.lineno}: from nacl.utils import random")
            if node.module == "nacl.bindings" and any(n.startswith("randombytes") for n in imported):
                found.append(f"{node.lineno}: from nacl.bindings import randombytes*")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner in random_aliases and attr not in ALLOWED_RANDOM_ATTRIBUTES:
                found.append(f"{node.lineno}: {owner}.{attr} (module-level random)")
            if owner in os_aliases and attr == "urandom":
                found.append(f"{node.lineno}: {owner}.urandom")
        if isinstance(node, ast.Call):
            func = node.func
            unseeded = not node.args and not node.keywords
            if (
                unseeded
                and isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in random_aliases
                and func.attr == "Random"
            ):
                found.append(f"{node.lineno}: {func.value.id}.Random() seeded from the OS")
    return found


def test_the_pure_layers_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in pure_modules()}
    assert {"engine.py", "membership/swim.py", "wire/codec.py"} <= names


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_is_pure(path: Path) -> None:
    assert violations(path.read_text()) == [], f"{path} breaks the sans-IO rules"


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import trio.lowlevel",
        "from socket import socket",
        "import asyncio as aio",
        "from time import monotonic",
        "import random\nx = random.random()",
        "import random\nx = random.choice([1, 2])",
        "import random as r\nr.shuffle([])",
        "import random\nrng = random.Random()",
        "import random\nrng = random.SystemRandom(1)",
        "from random import choice",
        "import os\nos.urandom(8)",
        "from os import urandom",
        "from nacl.utils import random",
    ],
)
def test_checker_catches(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize(
    "source",
    [
        "import random\ndef f(rng: random.Random) -> float:\n    return rng.random()",
        "import random\nrng = random.Random(42)",
        "from random import Random\nrng = Random(1)",
        '"""We never call time.time() or random.random() here."""',
        "import os\npath = os.path.join('a', 'b')",
        "from typing import Any",
    ],
)
def test_checker_allows(source: str) -> None:
    assert violations(source) == []
