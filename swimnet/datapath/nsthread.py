"""Run a function inside another network namespace, on a short-lived thread.

Rules:
- only the helper thread enters the namespace (setns(2) of the network namespace alone:
  unlike `ip netns exec`, the mount namespace and /sys stay as they are); the caller's
  threads never change namespace;
- everything the function opens (sockets, a libnftables context) belongs to that namespace
  for its whole life, whichever thread uses it later;
- the function's result is returned, its exception re-raised in the caller's thread;
  a namespace that does not exist raises FileNotFoundError before anything runs;
- the target being the caller's own namespace, no setns happens (still on a helper thread,
  so the behaviour does not depend on where the caller stands).
Costs ~0.1-0.2 ms per call (thread start + two setns), measured in benchmarks/bench_services.py.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from swimnet.datapath.netns import CLONE_NEWNET

T = TypeVar("T")
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns({what}): {os.strerror(code)}")


def run_in(path: str, fn: Callable[[], T], *, name: str = "swimnet-netns") -> T:
    """fn() called on a thread inside the network namespace at `path` (see the rules)."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # FileNotFoundError: no namespace
    result: list[T] = []
    failure: list[BaseException] = []

    def inside() -> None:
        try:
            here = os.stat("/proc/thread-self/ns/net")
            there = os.fstat(target)
            if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
                _setns(target, path)  # the thread ends after fn: no way back is needed
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    try:
        helper = threading.Thread(target=inside, name=name, daemon=True)
        helper.start()
        helper.join()
    finally:
        os.close(target)
    if failure:
        raise failure[0]
    return result[0]
