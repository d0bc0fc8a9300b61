"""Field checkers for decoding peer input: each returns the value or raises DecodeError.

Rules: checks are exact (`type(x) is int`, so bool is not an int and str subclasses are
refused), bounds are inclusive, and the error message names the field.
"""

from __future__ import annotations

from typing import Any

from swimnet.errors import DecodeError
from swimnet.wire.limits import MAX_HOST, MAX_NAME, MAX_UINT32

Address = tuple[str, int]


def uint(value: Any, field: str, maximum: int = MAX_UINT32) -> int:
    if type(value) is not int or value < 0 or value > maximum:
        raise DecodeError(f"{field}: expected an integer in 0..{maximum}")
    return value


def boolean(value: Any, field: str) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"{field}: expected a boolean")
    return value


def text(value: Any, field: str, max_bytes: int, *, empty: bool = False) -> str:
    if type(value) is not str:
        raise DecodeError(f"{field}: expected a string")
    # len(str) <= len(utf-8) <= 4 * len(str): check cheaply first, exactly when needed.
    if len(value) > max_bytes or (len(value) * 4 > max_bytes and len(value.encode()) > max_bytes):
        raise DecodeError(f"{field}: longer than {max_bytes} bytes")
    if not empty and not value:
        raise DecodeError(f"{field}: empty")
    return value


SHORT_NAME = MAX_NAME // 4
"""A name of at most this many characters surely fits MAX_NAME bytes of UTF-8 (the fast
path of `name`, and of the codec's inline ping check)."""


def name(value: Any, field: str = "name") -> str:
    if type(value) is str and 0 < len(value) <= SHORT_NAME:  # fast path: surely short enough
        return value
    return text(value, field, MAX_NAME)


def blob(value: Any, field: str, max_bytes: int) -> bytes:
    if type(value) is not bytes:
        raise DecodeError(f"{field}: expected bytes")
    if len(value) > max_bytes:
        raise DecodeError(f"{field}: longer than {max_bytes} bytes")
    return value


def address(value: Any, field: str = "addr") -> Address:
    if type(value) is not list or len(value) != 2:
        raise DecodeError(f"{field}: expected [host, port]")
    host, port = value
    # fast path for the common case, same checks as text() and uint()
    if type(host) is str and 0 < len(host) <= MAX_HOST // 4 and type(port) is int and 0 <= port <= 65_535:
        return (host, port)
    return (text(host, f"{field}.host", MAX_HOST), uint(port, f"{field}.port", 65_535))


_CURRENT_VSN = [2, 2, 2]
_CURRENT_VSN_TUPLE = (2, 2, 2)


def vsn(value: Any, field: str = "vsn") -> tuple[int, int, int]:
    if value == _CURRENT_VSN and type(value) is list and all(type(v) is int for v in value):
        return _CURRENT_VSN_TUPLE
    if type(value) is not list or len(value) != 3:
        raise DecodeError(f"{field}: expected [min, max, cur]")
    lo, hi, cur = (uint(v, field, 255) for v in value)
    if not lo <= cur <= hi:
        raise DecodeError(f"{field}: current version outside [min, max]")
    return (lo, hi, cur)


def fields(value: Any, count: int, what: str) -> list[Any]:
    """The list of `count` fields of a message (after its code)."""
    if len(value) != count + 1:
        raise DecodeError(f"{what}: expected {count} fields, got {len(value) - 1}")
    return value  # type: ignore[no-any-return]
