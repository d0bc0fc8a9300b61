"""libnftables (libnftables.so.1, Debian's `libnftables1`) through ctypes.

Rules:
- a context's netlink socket is opened by `nft_ctx_new`, in the network namespace of the
  calling thread, and stays there: make and use contexts inside the namespace (see
  swimnet.datapath.nsthread; libnftables also opens rtnetlink sockets of its own, in the
  calling thread's namespace, to name interfaces); swimnet.datapath.lb.linux keeps one
  context per namespace and says when it is closed;
- `nft_ctx_new` calls exit() when it cannot open that socket (nf_tables missing): a
  NETLINK_NETFILTER socket is tried first, and its failure raised as NftUnavailable;
- scripts go in as text: nft 1.0.6's JSON parser refuses our backend maps ("Invalid map
  type 'ipv4_addr . inet_service'", benchmarks/bench_services.py), and with an earlier
  `typeof` layout it crashed the process (SIGSEGV) on the `dnat ... map` rule, which
  in-process would take the agent down; listings come out as JSON (`-j -t list ruleset
  ip`: terse, so no set elements: ~1 ms however many there are);
- libnftables keeps some global state (its interface cache): every call holds one lock;
- a script runs as one transaction (nft's batch): NftError carries nft's error text and
  nothing of the script happened.
"""

from __future__ import annotations

import ctypes
import json
import socket
import threading
from types import TracebackType
from typing import Any

from swimnet.errors import DatapathError

SONAME = "libnftables.so.1"
NETLINK_NETFILTER = 12
OUTPUT_JSON = 1 << 4
OUTPUT_TERSE = 1 << 11

_lock = threading.Lock()
_library: ctypes.CDLL | None = None


class NftUnavailable(DatapathError):
    """libnftables or the kernel's nf_tables is missing."""


class NftError(DatapathError):
    """nft refused a script; the message is nft's."""


def library() -> ctypes.CDLL:
    global _library
    with _lock:
        if _library is None:
            try:
                lib = ctypes.CDLL(SONAME)
            except OSError as exc:
                raise NftUnavailable(f"{SONAME} cannot be loaded (install libnftables1): {exc}") from None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
                getattr(lib, name).argtypes = [ctypes.c_void_p]
                getattr(lib, name).restype = ctypes.c_char_p
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            _library = lib
        return _library


def problem() -> str | None:
    """None when libnftables and nf_tables can be used from this process, else why not."""
    try:
        library()
        _check_netlink()
    except NftUnavailable as exc:
        return str(exc)
    return None


def _check_netlink() -> None:
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER).close()
    except OSError as exc:
        raise NftUnavailable(f"no nf_tables netlink socket: {exc}") from None


class Nft:
    """One libnftables context in the calling thread's network namespace."""

    def __init__(self) -> None:
        self._lib = library()
        _check_netlink()
        with _lock:
            ctx = self._lib.nft_ctx_new(0)
            if not ctx:
                raise NftUnavailable("nft_ctx_new failed")
            self._ctx: int | None = ctx
            self._lib.nft_ctx_buffer_output(ctx)
            self._lib.nft_ctx_buffer_error(ctx)

    def run(self, script: str, *, flags: int = 0) -> str:
        """Run a script (one transaction); its output. NftError when nft refuses it."""
        if self._ctx is None:
            raise DatapathError("libnftables context is closed")
        with _lock:
            self._lib.nft_ctx_output_set_flags(self._ctx, flags)
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            out = self._lib.nft_ctx_get_output_buffer(self._ctx) or b""
            err = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
            self._lib.nft_ctx_output_set_flags(self._ctx, 0)
        if rc != 0:
            raise NftError(err.decode(errors="replace").strip() or f"nft failed ({rc})")
        return out.decode(errors="replace")

    def listing(self) -> dict[str, Any]:
        """`nft -j -t list ruleset ip`: every IPv4 table, chain, set and rule, no elements."""
        data = json.loads(self.run("list ruleset ip", flags=OUTPUT_JSON | OUTPUT_TERSE) or '{"nftables": []}')
        if not isinstance(data, dict):
            raise NftError("nft listing is not a JSON object")
        return data

    def close(self) -> None:
        if self._ctx is not None:
            with _lock:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
