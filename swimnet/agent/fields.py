"""Request bodies: a JSON object read field by field, with types checked.

Rules: the body must be a JSON object (an empty body counts as `{}`); a body that is not
JSON, not UTF-8 or nested deeper than the parser's recursion limit is an INVALID
OperationError (HTTP 400), never an exception escaping to the server (a 500); a missing
required field, a wrong type or an unknown field is INVALID naming the field; `done()` must
be called after the last field is read, so a typo in a field name is reported instead of
silently ignored. Booleans are never accepted as integers.
"""

from __future__ import annotations

import json
from typing import Any

from swimnet.agent.errors import bad_request

MISSING: Any = object()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise bad_request("request body: not UTF-8") from None
    except ValueError as exc:
        raise bad_request(f"request body: malformed JSON: {exc}") from None
    except RecursionError:
        raise bad_request("request body: JSON nested too deeply") from None


class Body:
    """A JSON object body, consumed field by field."""

    def __init__(self, raw: bytes) -> None:
        data = parse_json(raw)
        if type(data) is not dict:
            raise bad_request(f"request body: expected a JSON object, got {_kind(data)}")
        self._data: dict[str, Any] = data
        self._read: set[str] = set()

    def _get(self, key: str, required: bool) -> Any:
        self._read.add(key)
        value = self._data.get(key)
        if value is None:
            if required:
                raise bad_request(f"{key}: required", key)
            return MISSING
        return value

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def text(self, key: str, *, required: bool = False, max_len: int = 4096) -> str | None:
        value = self._get(key, required)
        if value is MISSING:
            return None
        if type(value) is not str:
            raise bad_request(f"{key}: expected a string, got {_kind(value)}", key)
        if not value or len(value) > max_len:
            raise bad_request(f"{key}: must be 1..{max_len} characters", key)
        return value

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._get(key, required)
        if value is MISSING:
            return None
        if type(value) is not int:
            raise bad_request(f"{key}: expected an integer, got {_kind(value)}", key)
        return value

    def texts(self, key: str, *, required: bool = False, max_items: int = 1024) -> list[str] | None:
        value = self._get(key, required)
        if value is MISSING:
            return None
        if type(value) is not list or not all(type(v) is str and v for v in value):
            raise bad_request(f"{key}: expected an array of non-empty strings", key)
        if len(value) > max_items:
            raise bad_request(f"{key}: at most {max_items} items", key)
        return list(value)

    def string_map(self, key: str) -> dict[str, str] | None:
        value = self._get(key, False)
        if value is MISSING:
            return None
        if type(value) is not dict or not all(type(v) is str for v in value.values()):
            raise bad_request(f"{key}: expected an object of strings", key)
        return dict(value)

    def objects(self, key: str, *, max_items: int = 256) -> list[dict[str, Any]] | None:
        value = self._get(key, False)
        if value is MISSING:
            return None
        if type(value) is not list or not all(type(v) is dict for v in value):
            raise bad_request(f"{key}: expected an array of objects", key)
        if len(value) > max_items:
            raise bad_request(f"{key}: at most {max_items} items", key)
        return list(value)

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise bad_request(f"{unknown[0]}: unknown field", unknown[0])
