"""The one exception tree of swimnet.

SwimnetError
  ConfigError            a configuration value is wrong (the message names the field)
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
    """A configuration value is invalid; the message names the field."""


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
