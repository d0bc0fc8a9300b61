"""swimnet/ipam is pure decision code, like the tables it reads: it imports no I/O module,
none of swimnet's I/O packages (runtime, agent, datapath, sim) and only pure swimnet modules
(the rules of tests/structure/test_imports.py, applied to this package; nothing imported to
check it). Time and randomness come in as arguments: no `time`, no module-level `random`
calls."""

from __future__ import annotations

import ast
import importlib.util
import pathlib
from types import ModuleType

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
IPAM = ROOT / "swimnet" / "ipam"


def _structure() -> ModuleType:
    path = ROOT / "tests" / "structure" / "test_imports.py"
    spec = importlib.util.spec_from_file_location("structure_imports", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STRUCTURE = _structure()


@pytest.mark.parametrize("path", sorted(IPAM.glob("*.py")), ids=lambda p: p.name)
def test_ipam_imports_only_pure_modules(path: pathlib.Path) -> None:
    bad = []
    for target, line in STRUCTURE._imports(path):
        parts = target.split(".")
        io = parts[0] in STRUCTURE.IO_MODULES
        impure = parts[0] == "swimnet" and parts[1:2] != ["ipam"] and not STRUCTURE._is_pure(target)
        if io or (impure and target != "swimnet"):
            bad.append(f"{path.name}:{line}: imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(IPAM.glob("*.py")), ids=lambda p: p.name)
def test_ipam_draws_no_global_randomness(path: pathlib.Path) -> None:
    """`random` may appear only as the type of an injected generator (random.Random)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "random":
            assert node.attr == "Random", f"{path.name}:{node.lineno}: random.{node.attr}"
        if isinstance(node, ast.ImportFrom) and node.module == "random":
            pytest.fail(f"{path.name}:{node.lineno}: from random import ...")
