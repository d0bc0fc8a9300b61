"""swimnet: a SWIM + Lifeguard gossip control plane for VXLAN overlay networks.

The library surface: `Config` (memberlist's presets), `Keyring` (encrypted gossip) with
`generate_key` and key files (`load_keyring_file`, `save_keyring_file`), membership values
and events, the replicated tables' `TablesConfig` and change values (`TableChange`,
`ChangeKind`), and the error tree. The trio runtime adds `open_node` and `serve_node`; the
simulator lives in `swimnet.sim`. Every name the README's examples use is exported here.
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
from swimnet.io.keyfile import generate_key, load_keyring_file, save_keyring_file
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
from swimnet.tables.changes import ChangeKind, TableChange
from swimnet.tables.config import TablesConfig
from swimnet.wire.messages import State

__all__ = [
    "AuthenticationError",
    "ChangeKind",
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
    "TableChange",
    "TablesConfig",
    "generate_key",
    "load_keyring_file",
    "open_node",
    "save_keyring_file",
    "serve_node",
]
