"""Small capture writers for tests: pcap and pcapng laid out byte by byte, so every variant the reader
must handle (byte orders, resolutions, interfaces, damage) can be produced on purpose."""

from __future__ import annotations

import struct
from collections.abc import Iterable


def pcap_bytes(
    packets: Iterable[tuple[int, bytes]],
    linktype: int = 1,
    *,
    big: bool = False,
    nano: bool = False,
    snaplen: int = 65535,
    origlens: dict[int, int] | None = None,
) -> bytes:
    """A classic pcap file. packets: (ts_ns, data). origlens: record index -> original length."""
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, (ts, data) in enumerate(packets):
        sec, ns = divmod(ts, 1_000_000_000)
        frac = ns if nano else ns // 1000
        orig = (origlens or {}).get(i, len(data))
        out.append(struct.pack(e + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


def _opt(e: str, code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * pad


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * ((-len(body)) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def shb(big: bool = False) -> bytes:
    e = ">" if big else "<"
    return _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(e, 0, b""))


def idb(linktype: int, *, big: bool = False, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    e = ">" if big else "<"
    opts = b""
    if tsresol is not None:
        opts += _opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += _opt(e, 0, b"")
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, 0) + opts)


def epb(iface: int, ts_units: int, data: bytes, *, big: bool = False, origlen: int | None = None) -> bytes:
    e = ">" if big else "<"
    hi, lo = ts_units >> 32, ts_units & 0xFFFFFFFF
    return _block(e, 6, struct.pack(e + "IIIII", iface, hi, lo, len(data), origlen or len(data)) + data)


def spb(data: bytes, *, big: bool = False) -> bytes:
    e = ">" if big else "<"
    return _block(e, 3, struct.pack(e + "I", len(data)) + data)


def unknown_block(btype: int = 0x0BAD0001, body: bytes = b"opaque!!", *, big: bool = False) -> bytes:
    return _block(">" if big else "<", btype, body)
