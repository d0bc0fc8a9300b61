"""The DNS package's shape: the decision modules are pure (no I/O, no trio), like the core,
and the package root exports only them."""

from __future__ import annotations

import ast
import pathlib

import pytest

import swimnet.dns

ROOT = pathlib.Path(swimnet.dns.__file__).resolve().parent
PURE = ["__init__", "names", "lookup", "answer", "fastpath", "exchange", "index", "metrics", "limits", "fuzz"]
IO = {
    "trio", "socket", "asyncio", "time", "os", "subprocess", "select", "selectors", "signal", "threading",
    "ssl", "http", "urllib", "shutil", "tempfile", "pathlib", "io", "fcntl", "pyroute2", "h11",
    "prometheus_client", "logging", "secrets", "dns.query", "dns.resolver", "dns.asyncquery",
}  # fmt: skip
IO_OWN = {"swimnet.runtime", "swimnet.agent", "swimnet.datapath", "swimnet.sim", "swimnet.io"}
IO_OWN |= {f"swimnet.dns.{m}" for m in ("server", "pool", "forward", "sandbox", "upstream")}


def imports(path: pathlib.Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
            out.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return out


@pytest.mark.parametrize("module", PURE)
def test_decision_modules_do_no_io(module: str) -> None:
    bad = []
    for name in imports(ROOT / f"{module}.py"):
        if module == "fastpath" and name in ("socket", "socket.inet_aton"):
            continue  # address packing only (inet_aton / inet_pton), never a socket
        top = name.split(".")[0]
        if top in IO or name in IO or any(name == p or name.startswith(p + ".") for p in IO_OWN):
            bad.append(name)
    assert not bad, f"swimnet/dns/{module}.py imports {bad}"


def test_fastpath_uses_socket_only_for_address_packing() -> None:
    tree = ast.parse((ROOT / "fastpath.py").read_text())
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "socket"
    }
    assert used == {"inet_aton", "inet_pton", "AF_INET6"}
