"""Table values as versioned msgpack documents.

Rules: a document is a msgpack map with string keys and a schema version "v"; decoding
checks the fields this version knows (types, bounds) and keeps every other field as is, so
a node running an older swimnet re-publishes newer documents without losing what it does
not understand. Decoding raises only DecodeError.
"""

from __future__ import annotations

from typing import Any

import msgpack

from swimnet.errors import DecodeError

SCHEMA_VERSION = 1
MAX_DOCUMENT = 8 * 1024


def encode_document(fields: dict[str, Any], extra: dict[str, Any]) -> bytes:
    doc = {**extra, **fields, "v": max(SCHEMA_VERSION, int(extra.get("v", 0)))}
    data: bytes = msgpack.packb(doc, use_bin_type=True)
    if len(data) > MAX_DOCUMENT:
        raise ValueError(f"document larger than {MAX_DOCUMENT} bytes")
    return data


def decode_document(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_DOCUMENT:
        raise DecodeError(f"{what}: larger than {MAX_DOCUMENT} bytes")
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
    except Exception as exc:
        raise DecodeError(f"{what}: not msgpack ({type(exc).__name__})") from None
    if type(doc) is not dict or type(doc.get("v")) is not int or doc["v"] < 1:
        raise DecodeError(f"{what}: expected a map with a schema version")
    return doc


def take(doc: dict[str, Any], key: str, kind: type, what: str, *, optional: bool = False) -> Any:
    """Pop a known field, checking its type (None allowed when optional)."""
    value = doc.pop(key, None)
    if value is None and optional:
        return None
    if type(value) is not kind:
        raise DecodeError(f"{what}.{key}: expected {kind.__name__}")
    return value
