"""A plan as nft script text: what libnftables runs as one transaction.

Rules:
- one command per line, all naming `table ip swimnet` explicitly; libnftables sends the
  whole buffer as one batch, so the plan commits whole or not at all;
- `DeleteTable` is rendered `add table` + `delete table`: deleting a table that is not
  there would fail the batch, and adding an existing table is a no-op;
- elements are written ELEMENTS_PER_LINE to a line (nft's speed is the same from 100 to
  unlimited, measured; shorter lines keep nft's error messages readable); the batch is
  still one.
"""

from __future__ import annotations

from collections.abc import Sequence

from swimnet.datapath.lb.ops import (
    AddChain,
    AddRule,
    AddSet,
    AddTable,
    Command,
    DeleteChain,
    DeleteElements,
    DeleteSet,
    DeleteTable,
    FlushChain,
)
from swimnet.datapath.lb.table import FAMILY, TABLE, element_text, key_text

ELEMENTS_PER_LINE = 500
_T = f"{FAMILY} {TABLE}"


def render(plan: Sequence[Command]) -> str:
    lines: list[str] = []
    for command in plan:
        lines.extend(_lines(command))
    return "\n".join(lines) + "\n"


def _lines(c: Command) -> list[str]:
    if isinstance(c, AddTable):
        return [f"add table {_T}"]
    if isinstance(c, DeleteTable):
        return [f"add table {_T}", f"delete table {_T}"]
    if isinstance(c, AddSet):
        return [f"add {c.kind} {_T} {c.name} {{ {c.decl.text} }}"]
    if isinstance(c, DeleteSet):
        return [f"delete set {_T} {c.name}"]
    if isinstance(c, AddChain):
        body = f" {{ {c.decl.text} }}" if c.decl.text else ""
        return [f"add chain {_T} {c.name}{body}"]
    if isinstance(c, FlushChain):
        return [f"flush chain {_T} {c.name}"]
    if isinstance(c, DeleteChain):
        return [f"delete chain {_T} {c.name}"]
    if isinstance(c, AddRule):
        return [f"add rule {_T} {c.chain} {c.rule.text}"]
    if isinstance(c, DeleteElements):
        texts = [key_text(c.set, key) for key in c.keys]
        return _grouped(f"delete element {_T} {c.set}", texts)
    texts = [element_text(c.set, key, data) for key, data in c.items]
    return _grouped(f"add element {_T} {c.set}", texts)


def _grouped(head: str, texts: list[str]) -> list[str]:
    return [
        f"{head} {{ {', '.join(texts[i : i + ELEMENTS_PER_LINE])} }}"
        for i in range(0, len(texts), ELEMENTS_PER_LINE)
    ]
