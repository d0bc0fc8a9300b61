"""Key file text format (pure) and key files on disk (permissions, atomic save)."""

from __future__ import annotations

import base64
import os
import pathlib
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimnet.errors import ConfigError
from swimnet.io.keyfile import generate_key, load_keyring_file, save_keyring_file
from swimnet.security import Keyring, format_keyring, parse_keyring, parse_keys

A, B, C = (bytes([n]) * 32 for n in (1, 2, 3))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_parse_skips_blanks_and_comments() -> None:
    text = f"# header\n\n  {b64(B)}  \n   # another\n{b64(A)}\r\n\n"
    ring = parse_keyring(text)
    assert ring.keys() == (B, A)
    assert ring.primary == B


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f"# c\n{b64(A)}\nnot*base64\n", "line 3: not valid base64"),
        (f"{b64(A)}\n\n{b64(A)[:-4]}\n", "line 3: a key must be 32 bytes, got 30"),
        (f"{b64(A)}\n{b64(B)}\n{b64(A)}\n", "line 3: key .* repeats line 1"),
        (f"{b64(A)} # trailing\n", "line 1: not valid base64"),
        ("\n# only comments\n\n", "no keys"),
        ("", "no keys"),
        ("héllo\n", "line 1: not valid base64"),
    ],
)
def test_parse_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_keys(text)


def test_parse_errors_do_not_quote_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse_keys(f"{b64(A)}\n{b64(A)}\n")
    assert b64(A) not in str(info.value)


def test_format_layout() -> None:
    text = format_keyring(Keyring([B, A]))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == [b64(B), b64(A)]
    assert text.endswith("\n")


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=6, unique=True))
def test_format_parse_round_trip(keys: list[bytes]) -> None:
    ring = Keyring(keys)
    assert parse_keyring(format_keyring(ring)).keys() == ring.keys()


def test_generate_key() -> None:
    first, second = generate_key(), generate_key()
    assert len(first) == 32 and first != second


def test_save_then_load(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keyring"
    ring = Keyring([A, B, C])
    save_keyring_file(path, ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring_file(path).keys() == ring.keys()
    assert load_keyring_file(str(path)).keys() == ring.keys()
    assert os.listdir(tmp_path) == ["keyring"]  # no temporary file left behind


def test_save_replaces_a_loose_file_with_a_0600_one(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "keyring"
    path.write_text("old")
    os.chmod(path, 0o644)
    save_keyring_file(path, Keyring([A]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring_file(path).keys() == (A,)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o666, 0o777])
def test_load_refuses_group_or_other_access(tmp_path: pathlib.Path, mode: int) -> None:
    path = tmp_path / "keyring"
    save_keyring_file(path, Keyring([A]))
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as info:
        load_keyring_file(path)
    assert str(path) in str(info.value)
    assert f"{mode:04o}" in str(info.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only(tmp_path: pathlib.Path, mode: int) -> None:
    path = tmp_path / "keyring"
    save_keyring_file(path, Keyring([A]))
    os.chmod(path, mode)
    assert load_keyring_file(path).keys() == (A,)


def test_load_errors_name_the_path(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match=f"{missing}: cannot open"):
        load_keyring_file(missing)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_keyring_file(tmp_path)
    bad = tmp_path / "bad"
    bad.write_text(f"{b64(A)}\nxx\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigError, match=f"{bad}: key file line 2"):
        load_keyring_file(bad)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    os.chmod(binary, 0o600)
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_keyring_file(binary)
