"""The overlay domain records and VNI assignment."""

from __future__ import annotations

import contextlib
import random

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import DecodeError
from swimnet.overlay import (
    EndpointRecord,
    NetworkRecord,
    ServiceRecord,
    assign_vnis,
    mac_from_ip,
)
from swimnet.overlay.model import VNI_MIN


def test_mac_is_derived_from_the_ip_like_docker() -> None:
    assert mac_from_ip("10.1.0.2") == "02:42:0a:01:00:02"
    assert mac_from_ip("192.168.255.1/24") == "02:42:c0:a8:ff:01"


@pytest.mark.parametrize(
    "record",
    [
        NetworkRecord("ov", "10.1.0.0/24", vni=4097, gateway="10.1.0.1", options={"a": "b"}, created=7),
        NetworkRecord("ov2", "10.2.0.0/16"),
        EndpointRecord("web", "10.1.0.2/24", "02:42:0A:01:00:02", "192.0.2.11"),
        ServiceRecord("db", "10.1.0.100", "vip", (("tcp", 5432, 5432),), ("ep1", "ep2")),
        ServiceRecord("cache", None, "dnsrr"),
    ],
)
def test_records_round_trip(record: NetworkRecord | EndpointRecord | ServiceRecord) -> None:
    assert type(record).decode(record.encode()) == record


def test_unknown_fields_of_newer_documents_survive_a_round_trip() -> None:
    doc = msgpack.unpackb(EndpointRecord("web", "10.1.0.2/24", mac_from_ip("10.1.0.2"), "192.0.2.1").encode())
    doc["v"] = 3
    doc["labels"] = {"tier": "front"}
    record = EndpointRecord.decode(msgpack.packb(doc))
    again = msgpack.unpackb(record.encode())
    assert again["labels"] == {"tier": "front"} and again["v"] == 3


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: NetworkRecord("ov", "10.1.0.1/24"), "host bits"),
        (lambda: NetworkRecord("ov", "10.1.0.0/24", gateway="10.2.0.1"), "gateway"),
        (lambda: NetworkRecord("_x", "10.1.0.0/24"), "name"),
        (lambda: NetworkRecord("ov", "10.1.0.0/24", vni=2**24), "vni"),
        (lambda: EndpointRecord("w", "10.1.0.0/24", "02:42:0a:01:00:00", "192.0.2.1"), "or broadcast"),
        (lambda: EndpointRecord("w", "10.1.0.255/24", "02:42:0a:01:00:ff", "192.0.2.1"), "or broadcast"),
        (lambda: EndpointRecord("w", "10.1.0.2/24", "03:42:0a:01:00:02", "192.0.2.1"), "multicast"),
        (lambda: EndpointRecord("w", "10.1.0.2/24", "zz", "192.0.2.1"), "mac"),
        (lambda: ServiceRecord("s", None, "vip"), "vip"),
        (lambda: ServiceRecord("s", "10.1.0.9", "bogus"), "mode"),
    ],
)
def test_invalid_records_are_refused_with_the_field_named(factory: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        factory()  # type: ignore[operator]


@given(st.binary(max_size=200))
def test_decoding_garbage_raises_only_decode_error(data: bytes) -> None:
    for cls in (NetworkRecord, EndpointRecord, ServiceRecord):
        with contextlib.suppress(DecodeError):
            cls.decode(data)


@given(
    st.dictionaries(
        st.sampled_from(["v", "name", "ip", "mac", "vtep", "subnet", "mtu", "created", "x"]),
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.none(), st.binary(max_size=8)),
    )
)
def test_decoding_wrong_field_types_raises_only_decode_error(doc: dict[str, object]) -> None:
    data = msgpack.packb(doc)
    for cls in (NetworkRecord, EndpointRecord, ServiceRecord):
        with contextlib.suppress(DecodeError):
            cls.decode(data)


def test_vni_assignment_is_deterministic_and_order_independent() -> None:
    nets = [NetworkRecord(f"net{i}", f"10.{i}.0.0/24", created=i % 5) for i in range(50)]
    nets.append(NetworkRecord("pinned", "10.200.0.0/24", vni=4097, created=1))
    first, _ = assign_vnis(nets)
    for seed in range(5):
        shuffled = nets[:]
        random.Random(seed).shuffle(shuffled)
        assert assign_vnis(shuffled)[0] == first
    assert first["pinned"] == 4097
    assert len(set(first.values())) == len(nets)
    assert all(v >= VNI_MIN for v in first.values())


def test_a_contested_vni_stays_with_the_older_network() -> None:
    old = NetworkRecord("old", "10.1.0.0/24", vni=5000, created=3)
    new = NetworkRecord("new", "10.2.0.0/24", vni=5000, created=9)
    vnis, collisions = assign_vnis([new, old])
    assert vnis["old"] == 5000 and vnis["new"] != 5000
    assert collisions == ["new"]
