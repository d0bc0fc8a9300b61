"""The agent's error values: what an operation refuses (and why), and a daemon that cannot start.

Rules:
- `OperationError(kind, message, field)` is raised by the domain's operations (and by the
  value checks in `checks` and `fields`): `kind` says what went wrong, `field` names the
  argument at fault (None: the request as a whole), the message says what is wrong and
  starts with the field's name when there is one;
- kinds: INVALID (a value is malformed or does not fit: a bad address, an IP outside the
  subnet, a backend that is not an endpoint), NOT_FOUND (no such network, endpoint, service
  or key), CONFLICT (the request contradicts the current state: a name or address in use, a
  resource still in use, not the owner, a feature that is off), FAILED (the datapath or the
  state directory failed while applying it), UNAVAILABLE (it cannot be done now, nothing
  is wrong with it: an address allocation that waited for other agents' votes and gave
  up, naming them; try again once they are back);
- an operation checks before it changes anything and undoes its own earlier steps when a
  later one fails: after an OperationError nothing is half-applied;
- front ends translate the kind and nothing else (the HTTP routes: 400, 404, 409, 500, 503) and
  show the message and field unchanged;
- `StartupError`: the daemon cannot start (its socket, address or state directory is
  taken): exit code 1.
"""

from __future__ import annotations

import enum

from swimnet.errors import SwimnetError


class StartupError(SwimnetError):
    """The agent cannot start: its socket, address or state directory is taken (exit 1)."""


class ErrorKind(enum.Enum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"


class OperationError(SwimnetError):
    """A refused or failed operation: its kind, a message that says what is wrong, the field."""

    def __init__(self, kind: ErrorKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"OperationError({self.kind.value}, {self.message!r}, field={self.field!r})"


def invalid(message: str, field: str | None = None) -> OperationError:
    return OperationError(ErrorKind.INVALID, message, field)


def not_found(message: str, field: str | None = None) -> OperationError:
    return OperationError(ErrorKind.NOT_FOUND, message, field)


def conflict(message: str, field: str | None = None) -> OperationError:
    return OperationError(ErrorKind.CONFLICT, message, field)


def failed(message: str, field: str | None = None) -> OperationError:
    return OperationError(ErrorKind.FAILED, message, field)


def unavailable(message: str, field: str | None = None) -> OperationError:
    return OperationError(ErrorKind.UNAVAILABLE, message, field)


bad_request = invalid
"""The name `checks` and `fields` raise through (an INVALID OperationError)."""
