"""SecurityPolicy / protect / unprotect: every drop reason, the four-step
plaintext -> encrypted rolling upgrade and an install -> use -> remove key rotation with
zero rejected packets, and properties over arbitrary policies and bytes."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import AuthenticationError, ConfigError, LocalProtocolError
from swimnet.security import (
    DROP_REASONS,
    LABEL_HEADER,
    OVERHEAD,
    VERSION,
    Keyring,
    SecurityPolicy,
    looks_sealed,
    protect,
    protect_overhead,
    seal,
    unprotect,
)

A, B = bytes([1]) * 32, bytes([2]) * 32
PAYLOAD = b"\x02plaintext wire packet"  # starts like a plaintext protocol-version byte
source = random.Random(7).randbytes


def sealed_with(keyring: Keyring, label: str = "") -> bytes:
    return seal(keyring, label, PAYLOAD, source)


def labelled(label: bytes) -> bytes:
    return bytes([LABEL_HEADER, len(label)]) + label + PAYLOAD


# (policy, packet, reason): one row at least per reason in DROP_REASONS
DROP_CASES: list[tuple[SecurityPolicy, Callable[[], bytes], str]] = [
    (SecurityPolicy(Keyring([A])), lambda: sealed_with(Keyring([A]))[: OVERHEAD - 1], "truncated"),
    (SecurityPolicy(None, "lab"), lambda: bytes([LABEL_HEADER]), "truncated"),
    (SecurityPolicy(None, "lab"), lambda: bytes([LABEL_HEADER, 5]) + b"lab", "truncated"),
    (SecurityPolicy(Keyring([B])), lambda: sealed_with(Keyring([A])), "unknown_key"),
    (SecurityPolicy(Keyring([A]), "x"), lambda: sealed_with(Keyring([A]), "y"), "auth_failed"),
    (SecurityPolicy(None), lambda: sealed_with(Keyring([A])), "no_keyring"),
    (SecurityPolicy(Keyring([A])), lambda: PAYLOAD, "plaintext_refused"),
    (SecurityPolicy(Keyring([A]), "lab"), lambda: labelled(b"lab"), "plaintext_refused"),
    (SecurityPolicy(None, "lab"), lambda: labelled(b"other"), "label_mismatch"),
    (SecurityPolicy(None), lambda: labelled(b"lab"), "label_mismatch"),
    (SecurityPolicy(Keyring([A]), "lab", verify_incoming=False), lambda: labelled(b"x"), "label_mismatch"),
    (SecurityPolicy(None, "lab"), lambda: PAYLOAD, "missing_label"),
    (SecurityPolicy(None, "lab"), lambda: bytes([LABEL_HEADER, 0]) + PAYLOAD, "bad_label"),
]


@pytest.mark.parametrize(("policy", "make", "reason"), DROP_CASES)
def test_drop_reason(policy: SecurityPolicy, make: Callable[[], bytes], reason: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        unprotect(policy, make())
    assert info.value.reason == reason


def test_bad_version_reason() -> None:
    # unprotect routes by the version byte, so bad_version is open_sealed's alone
    from swimnet.security import open_sealed

    with pytest.raises(AuthenticationError) as info:
        open_sealed(Keyring([A]), "", b"\x00" * 64)
    assert info.value.reason == "bad_version"


def test_every_drop_reason_is_tested_and_snake_case() -> None:
    covered = {reason for _, _, reason in DROP_CASES} | {"bad_version"}
    assert covered == set(DROP_REASONS)
    assert len(DROP_REASONS) == len(set(DROP_REASONS))
    for reason in DROP_REASONS:
        assert reason.isascii() and reason == reason.lower() and " " not in reason


def test_plaintext_without_label() -> None:
    policy = SecurityPolicy(None)
    assert protect(policy, PAYLOAD, source) == PAYLOAD
    assert unprotect(policy, PAYLOAD) == PAYLOAD
    assert unprotect(policy, b"") == b""
    assert protect_overhead(policy) == 0


def test_plaintext_with_label_header() -> None:
    policy = SecurityPolicy(None, "prod")
    packet = protect(policy, PAYLOAD, source)
    assert packet == bytes([0xF4, 4]) + b"prod" + PAYLOAD
    assert unprotect(policy, packet) == PAYLOAD
    assert protect_overhead(policy) == 6


def test_sealed_output_carries_no_label_header() -> None:
    policy = SecurityPolicy(Keyring([A]), "prod")
    packet = protect(policy, PAYLOAD, source)
    assert looks_sealed(packet) and b"prod" not in packet
    assert len(packet) == len(PAYLOAD) + OVERHEAD == len(PAYLOAD) + protect_overhead(policy)
    assert unprotect(policy, packet) == PAYLOAD


def test_keyring_without_encrypt_outgoing_sends_plaintext() -> None:
    policy = SecurityPolicy(Keyring([A]), "prod", encrypt_outgoing=False)
    assert protect(policy, PAYLOAD, source) == labelled(b"prod")


def test_unlabelled_plaintext_with_reserved_first_byte_is_refused() -> None:
    for first in (VERSION, LABEL_HEADER):
        with pytest.raises(LocalProtocolError, match="reserved"):
            protect(SecurityPolicy(None), bytes([first]) + b"abc", source)
    # behind a label header or sealed, any payload is fine
    for policy in (SecurityPolicy(None, "l"), SecurityPolicy(Keyring([A]))):
        packet = protect(policy, bytes([VERSION]) + b"abc", source)
        assert unprotect(policy, packet) == bytes([VERSION]) + b"abc"


def test_label_is_validated() -> None:
    with pytest.raises(ConfigError):
        SecurityPolicy(None, "x" * 256)
    assert SecurityPolicy(None, "x" * 255).label == "x" * 255


def test_policy_repr_hides_keys() -> None:
    text = repr(SecurityPolicy(Keyring([A]), "prod"))
    assert "prod" in text and Keyring.id_of(A) in text and A.hex() not in text


def exchange_all(policies: list[SecurityPolicy]) -> None:
    """Every node sends one packet to every other; all must be accepted."""
    for sender in policies:
        for receiver in policies:
            assert unprotect(receiver, protect(sender, PAYLOAD, source)) == PAYLOAD


def test_rolling_upgrade_plaintext_to_encrypted_drops_nothing() -> None:
    n = 4
    nodes = [SecurityPolicy(None, "prod") for _ in range(n)]
    steps: list[Callable[[SecurityPolicy], SecurityPolicy]] = [
        lambda p: SecurityPolicy(Keyring([A]), p.label, verify_incoming=False, encrypt_outgoing=False),
        lambda p: SecurityPolicy(p.keyring, p.label, verify_incoming=False),
        lambda p: SecurityPolicy(p.keyring, p.label),
    ]
    exchange_all(nodes)
    for step in steps:
        for i in range(n):  # one node at a time, traffic after every change
            nodes[i] = step(nodes[i])
            exchange_all(nodes)
    assert all(p.seals_outgoing and not p.accepts_plaintext for p in nodes)


def test_key_rotation_install_use_remove_drops_nothing() -> None:
    n = 4
    rings = [Keyring([A]) for _ in range(n)]
    nodes = [SecurityPolicy(ring, "prod") for ring in rings]
    exchange_all(nodes)
    for op in (lambda r: r.install(B), lambda r: r.use(B), lambda r: r.remove(Keyring.id_of(A))):
        for ring in rings:
            op(ring)
            exchange_all(nodes)
    assert all(ring.keys() == (B,) for ring in rings)


keyrings = st.one_of(
    st.none(), st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=2, unique=True).map(Keyring)
)
policies = st.builds(SecurityPolicy, keyrings, st.text(max_size=20), st.booleans(), st.booleans())


@given(policy=policies, payload=st.binary(max_size=300))
def test_protect_unprotect_round_trip(policy: SecurityPolicy, payload: bytes) -> None:
    if not policy.seals_outgoing and not policy.label:
        payload = b"\x02" + payload
    if not policy.seals_outgoing and not policy.accepts_plaintext:
        return  # a node in this state refuses its own plaintext by design
    packet = protect(policy, payload, source)
    assert len(packet) == len(payload) + protect_overhead(policy)
    assert unprotect(policy, packet) == payload


@given(
    policy=policies,
    packet=st.one_of(
        st.binary(max_size=120),
        st.binary(max_size=120).map(lambda b: bytes([VERSION]) + b),
        st.binary(max_size=120).map(lambda b: bytes([LABEL_HEADER]) + b),
    ),
)
def test_unprotect_raises_only_authentication_error(policy: SecurityPolicy, packet: bytes) -> None:
    try:
        unprotect(policy, packet)
    except AuthenticationError as exc:
        assert exc.reason in DROP_REASONS
