"""IP addresses as two uint64 halves (IPv4 as ::ffff:a.b.c.d) and back to text."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import numpy as np

_V4_PREFIX = 0x0000FFFF00000000


@lru_cache(maxsize=1 << 17)
def addr_str(hi: int, lo: int) -> str:
    """Text form of an address stored as (hi, lo): dotted quad for IPv4, RFC 5952 for IPv6 (remembered:
    a capture names the same addresses again and again)."""
    hi, lo = int(hi), int(lo)
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    if hi == 0 and lo == 0:
        return ""
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def addr_halves(text: str) -> tuple[int, int]:
    """(hi, lo) of an address in text."""
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return 0, _V4_PREFIX | int(a)
    v = int(a)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF


def addr_strs(hi: np.ndarray, lo: np.ndarray) -> list[str]:
    """Text forms for arrays of halves, converting each distinct address once."""
    if hi.size == 0:
        return []
    pairs = np.stack([hi.astype(np.uint64), lo.astype(np.uint64)], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    names = [addr_str(h, lo_) for h, lo_ in uniq.tolist()]
    return [names[i] for i in inv.ravel().tolist()]
