"""Agent logging: one line per membership change and per administrative action.

    event(log, "network created", event="network_created", network="web", vni=4242)

Rules: `event` (from `swimnet.logfields`) puts the fields on the record; every record
carries the node name (a filter adds it to every record of every logger, swimnet's own
included); `text` format is
`2024-05-01T12:00:00.123Z INFO a: network created event=network_created network=web`;
`json` format is one JSON object per line with the keys time, level, node, logger, msg,
the event fields, and `exc` when there is a traceback. Logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from swimnet.logfields import FIELDS_ATTR, event

__all__ = ["LOGGER", "JsonFormatter", "NodeFilter", "TextFormatter", "event", "setup_logging"]

LOGGER = "swimnet.agent"


class NodeFilter(logging.Filter):
    """Stamps every record with the node name (set once it is known)."""

    def __init__(self, node: str = "-") -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS_ATTR, None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        node = getattr(record, "node", "-")
        pairs = " ".join(f"{k}={_show(v)}" for k, v in _fields(record).items())
        line = f"{_timestamp(record)} {record.levelname} {node}: {record.getMessage()}"
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "node": getattr(record, "node", "-"),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, sort_keys=False)


def _show(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text


def setup_logging(fmt: str, level: str, stream: TextIO | None = None) -> NodeFilter:
    """Route the root logger to `stream` (stderr) in the given format; returns the node filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    node_filter = NodeFilter()
    handler.addFilter(node_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    return node_filter
