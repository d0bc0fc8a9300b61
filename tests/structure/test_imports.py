"""The shape of swimnet/'s imports: no cycles between modules (TYPE_CHECKING and function-level
imports included), and the pure layers never reach for I/O.

Read from the source with `ast`, so nothing is imported to check it. An import of a package
(`from swimnet.x import y`) points at the submodule `y` when there is one, else at the
package's `__init__`.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "swimnet"

PURE_PACKAGES = ("wire", "security", "membership", "tables", "topology", "overlay", "layers")
PURE_MODULES = ("engine", "config", "errors", "values")
"""The sans-IO core and what it stands on: these never do I/O."""

IO_MODULES = frozenset(
    {
        "trio", "socket", "asyncio", "time", "os", "subprocess", "select", "selectors", "signal",
        "threading", "ssl", "http", "urllib", "shutil", "tempfile", "pathlib", "io", "fcntl",
        "pyroute2", "h11", "prometheus_client", "logging",
    }
)  # fmt: skip
IO_PACKAGES = ("runtime", "agent", "datapath", "sim")
"""swimnet's own I/O side: the pure core never imports them."""


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _imports(path: pathlib.Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, wherever it stands."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full if full in MODULES else node.module, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _ in _imports(path):
            while target not in MODULES and "." in target and target.startswith("swimnet."):
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_pure(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and (parts[1] in PURE_PACKAGES or (len(parts) == 2 and parts[1] in PURE_MODULES))


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (TYPE_CHECKING imports included):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _is_pure(n)))
def test_pure_module_imports_no_io(name: str) -> None:
    bad = []
    for target, line in _imports(MODULES[name]):
        top = target.split(".")[0]
        own = target.split(".")[1] if top == "swimnet" and "." in target else None
        if top in IO_MODULES or own in IO_PACKAGES or (top == "swimnet" and own and not _is_pure(target)
                                                        and target not in ("swimnet",)):
            bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{line}: imports {target}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_cycle_and_an_io_import() -> None:
    """The checks above can fail: a made-up graph with a cycle is reported."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _is_pure("swimnet.engine") and _is_pure("swimnet.tables.state")
    assert not _is_pure("swimnet.runtime.node") and not _is_pure("swimnet.io.keyfile")
