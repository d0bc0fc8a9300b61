"""The hand-rolled netlink encoder and dump decoder, on bytes (no kernel needed)."""

from __future__ import annotations

import socket
import struct

from swimnet.datapath import kdump, nlmsg
from swimnet.datapath import netlink as nl


def reference_encode_fdb(
    ifindex: int, mac: str, vtep: str | None, msg_type: int, flags: int, seq: int
) -> bytes:
    """The encoder of the reference study, verbatim in layout."""
    body = struct.pack("BxxxiHBB", 7, ifindex, 0xC0, 0x02, 0)
    body += struct.pack("HH6sxx", 10, 2, bytes.fromhex(mac.replace(":", "")))
    if vtep:
        body += struct.pack("HH4s", 8, 1, socket.inet_aton(vtep))
    return struct.pack("IHHII", 16 + len(body), msg_type, flags, seq, 0) + body


def framed(request: nl.Request, seq: int = 1) -> bytes:
    kind, flags, body = request
    return nlmsg.HDR.pack(16 + len(body), kind, flags, seq, 0) + body


def test_fdb_requests_match_the_reference_layout() -> None:
    mac, vtep = "02:42:0a:01:00:02", "192.0.2.12"
    assert framed(nl.fdb_request(nl.REPLACE, 5, mac, vtep), 9) == reference_encode_fdb(
        5, mac, vtep, 28, 0x505, 9
    )
    assert framed(nl.fdb_request(nl.DELETE, 5, mac, vtep), 3) == reference_encode_fdb(
        5, mac, vtep, 29, 0x5, 3
    )
    kind, flags, _ = nl.fdb_request(nl.APPEND, 5, "00:00:00:00:00:00", vtep)
    assert (kind, flags) == (nl.RTM_NEWNEIGH, 0xC05)


def test_neighbour_request_layout() -> None:
    kind, flags, body = nl.neigh_request(nl.REPLACE, 7, "10.1.0.2", "02:42:0a:01:00:02")
    assert (kind, flags) == (nl.RTM_NEWNEIGH, 0x505)
    family, ifindex, state, ntf, _ = nl.NDMSG.unpack_from(body)
    assert (family, ifindex, state, ntf) == (socket.AF_INET, 7, nl.NUD_PERMANENT, 0)
    assert body[12:20] == struct.pack("=HH4s", 8, nl.NDA_DST, socket.inet_aton("10.1.0.2"))
    assert body[20:32] == struct.pack("=HH6sxx", 10, nl.NDA_LLADDR, bytes.fromhex("02420a010002"))
    kind, flags, body = nl.neigh_request(nl.DELETE, 7, "10.1.0.2", None)
    assert (kind, flags, len(body)) == (nl.RTM_DELNEIGH, 0x5, 20)


def _dump_msg(family: int, ifindex: int, state: int, flags: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = nl.NDMSG.pack(family, ifindex, state, flags, 0)
    for atype, value in attrs:
        body += struct.pack("=HH", 4 + len(value), atype) + value + b"\0" * (-len(value) % 4)
    return nlmsg.HDR.pack(16 + len(body), nl.RTM_NEWNEIGH, 2, 1, 0) + body


MAC = bytes.fromhex("02420a010002")
CACHEINFO = (3, b"\0" * 16)


def test_fdb_dump_decoding_splits_self_entries_and_learned_rows() -> None:
    datagram = b"".join(
        [
            _dump_msg(
                7,
                4,
                0xC0,
                nl.NTF_SELF,
                [(nl.NDA_LLADDR, MAC), (nl.NDA_DST, socket.inet_aton("192.0.2.12")), CACHEINFO],
            ),
            _dump_msg(
                7,
                4,
                0x80,
                nl.NTF_SELF,
                [(nl.NDA_LLADDR, bytes(6)), (nl.NDA_DST, socket.inet_aton("192.0.2.13"))],
            ),
            _dump_msg(
                7, 4, 0x02, 0, [(nl.NDA_LLADDR, bytes.fromhex("02420a010003")), (9, struct.pack("=I", 2))]
            ),
            _dump_msg(7, 4, 0x80, 0, [(nl.NDA_LLADDR, bytes.fromhex("aabbccddeeff"))]),  # the port's own MAC
            _dump_msg(
                7, 9, 0xC0, nl.NTF_SELF, [(nl.NDA_LLADDR, MAC), (nl.NDA_DST, socket.inet_aton("192.0.2.99"))]
            ),
        ]
    )
    done = nlmsg.HDR.pack(20, nlmsg.NLMSG_DONE, 2, 1, 0) + b"\0" * 4
    fdb, learned = kdump.fdb_entries([datagram, done], 4)
    assert fdb == {("02:42:0a:01:00:02", "192.0.2.12"), ("00:00:00:00:00:00", "192.0.2.13")}
    assert learned == {"02:42:0a:01:00:03"}


def test_neighbour_dump_decoding_keeps_permanent_entries_of_the_device() -> None:
    ip = socket.inet_aton
    datagram = b"".join(
        [
            _dump_msg(
                2, 4, nl.NUD_PERMANENT, 0, [(nl.NDA_DST, ip("10.1.0.2")), (nl.NDA_LLADDR, MAC), CACHEINFO]
            ),
            _dump_msg(2, 4, 0x02, 0, [(nl.NDA_DST, ip("10.1.0.3")), (nl.NDA_LLADDR, MAC)]),
            _dump_msg(2, 5, nl.NUD_PERMANENT, 0, [(nl.NDA_DST, ip("10.1.0.4")), (nl.NDA_LLADDR, MAC)]),
        ]
    )
    assert kdump.neighbours([datagram], 4) == {"10.1.0.2": "02:42:0a:01:00:02"}


def test_extended_ack_message_is_read() -> None:
    text = b"FDB entry already exists\0"
    tlv = struct.pack("=HH", 4 + len(text), nlmsg.NLMSGERR_ATTR_MSG) + text + b"\0" * (-len(text) % 4)
    body = struct.pack("=i", -17) + nlmsg.HDR.pack(40, 28, 0x505, 7, 0) + tlv
    flags = nlmsg.NLM_F_CAPPED | nlmsg.NLM_F_ACK_TLVS
    buf = bytearray(nlmsg.HDR.pack(16 + len(body), nlmsg.NLMSG_ERROR, flags, 7, 0) + body)
    assert nlmsg.ack_text(buf, 0, len(buf), flags) == "FDB entry already exists"
    assert nlmsg.ack_text(buf, 0, len(buf), 0) == ""


def test_malformed_framing_ends_the_walk() -> None:
    """A header or attribute shorter than itself stops the reading (no loop, no error)."""
    good = nlmsg.HDR.pack(20, 16, 0, 1, 0) + b"\0" * 4
    short = nlmsg.HDR.pack(8, 16, 0, 2, 0)
    data = good + short + good
    assert [seq for _, _, _, _, seq in nlmsg.messages(data, len(data))] == [1]
    attrs = nlmsg.attr(1, b"ab") + struct.pack("=HH", 2, 2) + nlmsg.attr(3, b"c")
    assert nlmsg.walk(attrs, 0, len(attrs)) == [(1, 4, 6)]
    nested = nlmsg.attr(5 | nlmsg.NLA_F_NESTED, b"xyz")
    assert nlmsg.attributes(nested, 0, len(nested)) == {5: b"xyz"}
