"""The control API's error value: what a request did wrong, as the client will see it.

Rules: `ApiError(status, message, field)` is raised by the agent's operations before they
change anything (validation first, then the change), so a refused request leaves no trace;
the HTTP layer turns it into `{"error": message, "field": field}` with that status.
"""

from __future__ import annotations

from swimnet.errors import SwimnetError


class StartupError(SwimnetError):
    """The agent cannot start: its socket, address or state directory is taken (exit 1)."""


class ApiError(Exception):
    """A refused control request: HTTP status, a message that says what is wrong, the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, str | None]:
        return {"error": self.message, "field": self.field}


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field)


def not_found(message: str, field: str | None = None) -> ApiError:
    return ApiError(404, message, field)


def conflict(message: str, field: str | None = None) -> ApiError:
    return ApiError(409, message, field)
