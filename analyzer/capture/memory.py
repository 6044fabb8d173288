"""Handing freed heap back to the system between stages.

glibc keeps freed blocks in its arenas, and numpy's per-chunk temporaries and pandas' table building
free tens of megabytes in pieces it does not return on its own; the resident set then keeps the high
water mark of every stage added up instead of the largest one. `malloc_trim(0)` returns them (a few
milliseconds). Elsewhere (musl, macOS) it is a no-op."""

from __future__ import annotations

import ctypes
import ctypes.util

_trim = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = getattr(_libc, "malloc_trim", None)
except OSError:  # no C library to speak to
    _trim = None


def give_back_memory() -> None:
    """Return the free heap pages to the system, where the C library can."""
    if _trim is not None:
        _trim(0)
