"""Structured log records: a message plus named fields, for any swimnet logger.

    event(log, "network created", event="network_created", network="web", vni=4242)

Rules: the fields ride on the record under `FIELDS_ATTR` (a dict); formatters that know it
print them (the agent's text format as k=v pairs, its JSON format as keys), any other
handler just shows the message. Nothing here configures logging.
"""

from __future__ import annotations

import logging
from typing import Any

FIELDS_ATTR = "swimnet_fields"


def event(logger: logging.Logger, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log `message` with structured fields (shown as k=v in text, keys in JSON)."""
    logger.log(level, message, extra={FIELDS_ATTR: fields})
