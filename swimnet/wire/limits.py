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

MAX_MEMBER_ENCODED = 1 + (2 + MAX_NAME) + (1 + (2 + MAX_HOST) + 3) + (3 + MAX_META) + 5 + 1 + (1 + 3 * 2)
"""Largest msgpack encoding of one push-pull member: [name, [host, port], meta, incarnation
(uint32), state, [min, max, cur]] with every field at its bound (1,047 bytes)."""
MAX_PUSH_PULL_ENCODED = 1 + 1 + 1 + 1 + 5 + MAX_PUSH_PULL_MEMBERS * MAX_MEMBER_ENCODED + 5 + MAX_USER_STATE
"""Largest plain push-pull frame: version, [code, join, members, user] (~260 MB)."""
MAX_INFLATED = min(MAX_STREAM_FRAME, MAX_PUSH_PULL_ENCODED)
"""Largest plain frame a compressed stream frame may declare. A legitimate push-pull (the
largest message: MAX_PUSH_PULL_MEMBERS members of up to MAX_MEMBER_ENCODED bytes plus
MAX_USER_STATE; a table sync reply can be as large) can fill a whole stream frame, so the
frame limit is what binds; the per-frame ratio and the per-peer allowance (see
`swimnet.wire.inflate`) are what keep inflation proportionate."""
MAX_INFLATE_RATIO = 32
"""A compressed stream frame may declare at most this many plain bytes per compressed byte.
zlib reaches ~1,032:1 (64 MiB of zeros in 65 KB); swimnet's real frames compress 2-7:1
(push-pull ~7, table sync ~2.3, tombstones and attachments ~7), so 32 leaves a wide margin.
The encoder sends a frame uncompressed rather than above this ratio."""
