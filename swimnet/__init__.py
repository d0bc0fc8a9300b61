"""swimnet: a SWIM + Lifeguard gossip control plane for VXLAN overlay networks.

The library surface: `Config` (memberlist's presets), `Keyring` (encrypted gossip),
membership values and events, and the error tree. The trio runtime adds `open_node` and
`serve_node`; the simulator lives in `swimnet.sim`.
"""

from swimnet.config import Config
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
from swimnet.membership.events import (
    MemberEvent,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
)
from swimnet.membership.member import Member
from swimnet.runtime import Node, Subscription, Table, open_node, serve_node
from swimnet.security.keyops import KeyOpResult
from swimnet.security.keyring import Keyring
from swimnet.wire.messages import State

__all__ = [
    "AuthenticationError",
    "Config",
    "ConfigError",
    "DatapathError",
    "DecodeError",
    "JoinError",
    "KeyOpResult",
    "Keyring",
    "LocalProtocolError",
    "Member",
    "MemberEvent",
    "MemberFailed",
    "MemberJoined",
    "MemberLeft",
    "MemberSuspected",
    "MemberUpdated",
    "Node",
    "RemoteProtocolError",
    "State",
    "Subscription",
    "SwimnetError",
    "Table",
    "open_node",
    "serve_node",
]
