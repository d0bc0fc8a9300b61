"""Bounds on everything a peer can send; the decoder enforces every one of them.

These are protocol constants, not tunables: two nodes must agree on them.
"""

from __future__ import annotations

PROTOCOL_VERSION = 2
"""First byte of every plaintext datagram and stream frame."""
PROTOCOL_MIN = 2
PROTOCOL_MAX = 2

MAX_DATAGRAM = 65_507
"""Largest UDP payload over IPv4."""
MAX_MESSAGES_PER_PACKET = 255
MAX_NAME = 255
"""Node names, in bytes of UTF-8."""
MAX_HOST = 255
MAX_META = 512
MAX_PAYLOAD = 1_024
"""Ack payloads (e.g. a network coordinate)."""
MAX_PUSH_PULL_MEMBERS = 200_000
MAX_STREAM_FRAME = 64 * 1024 * 1024
"""A push-pull of MAX_PUSH_PULL_MEMBERS members fits with room to spare."""
MAX_USER_STATE = 48 * 1024 * 1024
MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1
MAX_INCARNATION = MAX_UINT32
"""Incarnation numbers are uint32 on the wire: the decoder refuses more and the encoder
refuses to send more (LocalProtocolError), so a node can never announce a number its peers
cannot decode; membership never refutes past it (`membership.incarnation`)."""
MAX_LTIME = MAX_UINT64
"""Lamport times of the tables layer are uint64 on the wire (encoder, decoder and clocks)."""
