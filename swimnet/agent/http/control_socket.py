"""The control socket: a Unix stream socket only the agent's user can use.

Rules: the socket is created with mode 0600 (umask 0177 while binding, then chmod, so there
is no moment it is open to others); its directory is created (0755) if missing; an existing
socket file nobody answers on is stale and replaced; one somebody answers on means another
agent runs there (StartupError); anything else at the path is refused. On shutdown the
socket file is removed if it is still ours (same inode).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

import trio

from swimnet.agent.errors import StartupError
from swimnet.errors import ConfigError

MAX_PATH = 107
"""sun_path is 108 bytes on Linux, NUL included."""


class ControlSocket:
    def __init__(self, path: str, listener: trio.SocketListener, inode: int) -> None:
        self.path = path
        self.listener = listener
        self.inode = inode

    def close(self) -> None:
        """Stop listening and remove the socket file if it is still ours (idempotent)."""
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        with contextlib.suppress(OSError):
            self.listener.socket.close()


def _clear_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise StartupError(f"{path}: exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        raise StartupError(f"{path}: cannot check the existing socket: {exc.strerror or exc}") from None
    finally:
        probe.close()
    raise StartupError(f"{path}: another agent is already listening on this socket")


async def open_control_socket(path: str, backlog: int = 64) -> ControlSocket:
    if len(os.fsencode(path)) > MAX_PATH:
        raise ConfigError("socket", f"path {path!r} is longer than {MAX_PATH} bytes")
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"{directory}: cannot create the socket directory: {exc.strerror or exc}"
        ) from None
    _clear_stale(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await sock.bind(path)
    except OSError as exc:
        sock.close()
        why = "address in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise StartupError(f"{path}: cannot create the control socket: {why}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(backlog)
    return ControlSocket(path, trio.SocketListener(sock), os.lstat(path).st_ino)
