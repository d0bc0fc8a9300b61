"""Keyring: construction rules, rotation operations, ids, repr hygiene, and a
RuleBasedStateMachine against a plain-list model."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from swimnet.errors import ConfigError, LocalProtocolError
from swimnet.security import Keyring, key_id

A, B, C = (bytes([n]) * 32 for n in (1, 2, 3))


def colliding_keys() -> tuple[bytes, bytes]:
    """Two different keys with the same 4-byte id (a birthday search, ~1e5 hashes)."""
    seen: dict[bytes, bytes] = {}
    for n in itertools.count():
        key = n.to_bytes(32, "big")
        raw = key_id(key)
        if raw in seen:
            return seen[raw], key
        seen[raw] = key
    raise AssertionError("unreachable")


def test_key_id_is_blake2b_prefix() -> None:
    assert key_id(A) == hashlib.blake2b(A).digest()[:4]
    assert Keyring.id_of(A) == key_id(A).hex()
    assert len(Keyring.id_of(A)) == 8


def test_first_key_is_primary_and_order_is_kept() -> None:
    ring = Keyring([B, A, C])
    assert ring.primary == B
    assert ring.primary_id == key_id(B).hex()
    assert ring.primary_raw_id == key_id(B)
    assert ring.keys() == (B, A, C)
    assert list(ring) == [B, A, C]
    assert ring.ids() == [key_id(k).hex() for k in (B, A, C)]
    assert len(ring) == 3
    assert A in ring
    assert b"x" not in ring
    assert ring.generation == 0


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ([], "at least one key"),
        ([b"short"], "32 bytes, got 5"),
        ([A + b"x"], "32 bytes, got 33"),
        ([A, B, A], "listed twice"),
        (["not bytes"], "must be bytes"),
    ],
)
def test_constructor_refuses(keys: list[bytes], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Keyring(keys)


def test_colliding_ids_are_refused() -> None:
    first, second = colliding_keys()
    assert first != second
    with pytest.raises(ConfigError, match="share the id"):
        Keyring([first, second])
    ring = Keyring([first])
    with pytest.raises(ConfigError, match="share the id"):
        ring.install(second)
    assert ring.keys() == (first,)
    assert ring.generation == 0


def test_key_for_id() -> None:
    ring = Keyring([A, B])
    assert ring.key_for_id(key_id(B)) == B
    assert ring.key_for_id(key_id(C)) is None
    assert ring.key_for_id(b"") is None


def test_install_use_remove_rotation() -> None:
    ring = Keyring([A])
    ring.install(B)
    assert ring.keys() == (A, B) and ring.generation == 1
    ring.install(B)  # idempotent, no change
    assert ring.keys() == (A, B) and ring.generation == 1
    ring.use(B)
    assert ring.primary == B and ring.keys() == (B, A) and ring.generation == 2
    ring.use(Keyring.id_of(B))  # already primary: no change
    assert ring.generation == 2
    ring.remove(Keyring.id_of(A).upper())  # ids are case-insensitive
    assert ring.keys() == (B,) and ring.generation == 3
    assert ring.key_for_id(key_id(A)) is None


def test_use_by_id_and_remove_by_key() -> None:
    ring = Keyring([A, B, C])
    ring.use(Keyring.id_of(C))
    assert ring.keys() == (C, A, B)
    ring.remove(A)
    assert ring.keys() == (C, B)


def test_remove_primary_is_refused() -> None:
    ring = Keyring([A, B])
    with pytest.raises(LocalProtocolError, match="primary"):
        ring.remove(A)
    with pytest.raises(LocalProtocolError, match="primary"):
        ring.remove(Keyring.id_of(A))
    assert ring.keys() == (A, B) and ring.generation == 0


@pytest.mark.parametrize("op", ["use", "remove"])
def test_unknown_key_is_refused(op: str) -> None:
    ring = Keyring([A, B])
    with pytest.raises(LocalProtocolError, match="not installed"):
        getattr(ring, op)(C)
    with pytest.raises(LocalProtocolError, match=f"no installed key has id {Keyring.id_of(C)}"):
        getattr(ring, op)(Keyring.id_of(C))
    assert ring.generation == 0


@pytest.mark.parametrize("bad", ["", "abc", "zzzzzzzz", "0011223344", b"short"])
def test_malformed_key_or_id_is_config_error(bad: str | bytes) -> None:
    ring = Keyring([A])
    with pytest.raises(ConfigError):
        ring.use(bad)
    with pytest.raises(ConfigError):
        ring.remove(bad)


def test_repr_shows_ids_never_keys() -> None:
    key = bytes(range(32))
    ring = Keyring([key, A])
    for text in (repr(ring), str(ring)):
        assert Keyring.id_of(key) in text
        assert Keyring.id_of(A) in text
        assert key.hex() not in text
        assert repr(key) not in text
        assert "\\x01\\x01" not in text


def test_errors_never_quote_key_material() -> None:
    ring = Keyring([A])
    with pytest.raises(LocalProtocolError) as info:
        ring.remove(A)
    assert A.hex() not in str(info.value) and repr(A) not in str(info.value)


POOL = [random.Random(n).randbytes(32) for n in range(6)]


class KeyringMachine(RuleBasedStateMachine):
    """Install/use/remove in any order, compared with a list model (primary first)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = [POOL[0]]
        self.ring = Keyring([POOL[0]])
        self.generation = 0

    def _ref(self, key: bytes, by_id: bool) -> bytes | str:
        return Keyring.id_of(key) if by_id else key

    @rule(key=st.sampled_from(POOL))
    def install(self, key: bytes) -> None:
        self.ring.install(key)
        if key not in self.model:
            self.model.append(key)
            self.generation += 1

    @rule(key=st.sampled_from(POOL), by_id=st.booleans())
    def use(self, key: bytes, by_id: bool) -> None:
        if key not in self.model:
            with pytest.raises(LocalProtocolError):
                self.ring.use(self._ref(key, by_id))
            return
        self.ring.use(self._ref(key, by_id))
        if self.model[0] != key:
            self.model.remove(key)
            self.model.insert(0, key)
            self.generation += 1

    @rule(key=st.sampled_from(POOL), by_id=st.booleans())
    def remove(self, key: bytes, by_id: bool) -> None:
        if key not in self.model or key == self.model[0]:
            with pytest.raises(LocalProtocolError):
                self.ring.remove(self._ref(key, by_id))
            return
        self.ring.remove(self._ref(key, by_id))
        self.model.remove(key)
        self.generation += 1

    @invariant()
    def matches_model(self) -> None:
        assert self.ring.keys() == tuple(self.model)
        assert self.ring.primary == self.model[0]
        assert self.ring.primary_id == Keyring.id_of(self.model[0])
        assert self.ring.primary_raw_id == key_id(self.model[0])
        assert self.ring.ids() == [Keyring.id_of(k) for k in self.model]
        assert self.ring.generation == self.generation
        for key in POOL:
            expected = key if key in self.model else None
            assert self.ring.key_for_id(key_id(key)) == expected


TestKeyringMachine = KeyringMachine.TestCase
