"""Key files on disk, and fresh keys: the I/O side of ``swimnet.security``.

Rules:
- ``load_keyring_file`` refuses (ConfigError naming the path and the mode) a file that
  group or others may read, write or execute (``mode & 0o077``), like ssh does with
  private keys. The mode is read from the open descriptor, so the file checked is the
  file read. Every error (missing file, not UTF-8, parse error) is a ConfigError whose
  field is the path (so its message starts with it).
- ``save_keyring_file`` is atomic: it writes a mode-0600 temporary file in the same
  directory, fsyncs it, renames it over ``path`` and fsyncs the directory. Readers see the
  old file or the new one, never a mix; on failure the temporary file is removed and the
  OSError propagates.
- ``generate_key`` is the one place swimnet makes key material (``os.urandom``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from swimnet.errors import ConfigError
from swimnet.security.keyfile import format_keyring, parse_keyring
from swimnet.security.keyring import KEY_SIZE, Keyring

__all__ = ["generate_key", "load_keyring_file", "save_keyring_file"]

StrPath = str | os.PathLike[str]


def generate_key() -> bytes:
    """A fresh random 32-byte key from the OS CSPRNG."""
    return os.urandom(KEY_SIZE)


def load_keyring_file(path: StrPath) -> Keyring:
    """The Keyring in the key file at ``path``; ConfigError if unsafe or invalid."""
    name = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO planted at `path` must not hang us before the S_ISREG check.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(name, f"cannot open key file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(name, "key file is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                name, f"key file mode {mode:04o} lets group or others access it; run chmod 600 {name}"
            )
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(name, "key file is not UTF-8 text") from None
    try:
        return parse_keyring(text)
    except ConfigError as exc:
        raise ConfigError(name, str(exc)) from None


def save_keyring_file(path: StrPath, keyring: Keyring) -> None:
    """Write ``keyring`` to ``path`` atomically with mode 0600."""
    name = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(name))
    data = format_keyring(keyring).encode("ascii")
    fd, tmp = tempfile.mkstemp(prefix=".keyring-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
