"""Wire format: message values and their strict msgpack codec."""

from swimnet.wire.codec import (
    decode_packet,
    decode_stream,
    encode_message,
    encode_packet,
    encode_stream,
    pack_packet,
    packet_size,
    register,
)
from swimnet.wire.messages import (
    Ack,
    Address,
    Alive,
    Dead,
    IndirectPing,
    MemberState,
    Nack,
    Ping,
    PushPull,
    State,
    Suspect,
    WireMessage,
)

__all__ = [
    "Ack",
    "Address",
    "Alive",
    "Dead",
    "IndirectPing",
    "MemberState",
    "Nack",
    "Ping",
    "PushPull",
    "State",
    "Suspect",
    "WireMessage",
    "decode_packet",
    "decode_stream",
    "encode_message",
    "encode_packet",
    "encode_stream",
    "pack_packet",
    "packet_size",
    "register",
]

from swimnet.wire import keys as keys
from swimnet.wire import tables as tables
from swimnet.wire import topology as topology
