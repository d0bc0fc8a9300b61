"""swimnet: a SWIM + Lifeguard gossip control plane for VXLAN overlay networks."""

from swimnet.errors import (
    AuthenticationError,
    ConfigError,
    DatapathError,
    DecodeError,
    JoinError,
    LocalProtocolError,
    RemoteProtocolError,
    SwimnetError,
)

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "DatapathError",
    "DecodeError",
    "JoinError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SwimnetError",
]
