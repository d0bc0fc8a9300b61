"""The one exception tree of swimnet.

SwimnetError
  ConfigError            a configuration value is wrong (`field` and `reason` say which and why)
  LocalProtocolError     the caller misused the API (e.g. join after leave)
  JoinError              no seed could be reached
  RemoteProtocolError    a peer sent something we refuse
    DecodeError          bytes that are not a valid message
    AuthenticationError  a packet that fails key, label or tag checks
  DatapathError          the kernel refused a datapath change

Peer garbage (RemoteProtocolError) is counted and dropped by the runtime, never raised
out of it.
"""

from __future__ import annotations


class SwimnetError(Exception):
    """Base of every error swimnet raises on purpose."""


class ConfigError(SwimnetError, ValueError):
    """A configuration value is invalid.

    `field` names what is at fault (a setting, a key, a file path), `reason` says why and
    `where` (optional) where the value came from (a config file, "command line");
    `str()` is "field: reason", or "where: field: reason". Callers read `exc.field`, never
    parse the message.
    """

    def __init__(self, field: str, reason: str, where: str = "") -> None:
        super().__init__(field, reason, where)
        self.field = field
        self.reason = reason
        self.where = where

    def __str__(self) -> str:
        text = f"{self.field}: {self.reason}"
        return f"{self.where}: {text}" if self.where else text


class LocalProtocolError(SwimnetError):
    """The caller used the API in a way the protocol does not allow."""


class JoinError(SwimnetError):
    """None of the seeds given to join() could be reached."""


class RemoteProtocolError(SwimnetError):
    """A peer sent input we refuse."""


class DecodeError(RemoteProtocolError):
    """Bytes from a peer are not a valid message (type, bound or structure)."""


class AuthenticationError(RemoteProtocolError):
    """A sealed packet failed its checks; `reason` says which (for counters)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class DatapathError(SwimnetError):
    """The kernel refused a datapath change."""
