"""Capture files as editable lists of records, and back to bytes: classic pcap records and pcapng
blocks (packet data inside enhanced/simple packet blocks), so packets can be mutated one by one and
the file structure damaged on purpose. Only for the fuzzer: the analyzer's reader is capture/."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass, field

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
SHB, IDB, SPB, EPB = 0x0A0D0D0A, 1, 3, 6


@dataclass
class Record:
    """One packet: its link type and bytes, and what its container needs besides (header fields)."""

    linktype: int
    data: bytes
    head: tuple = ()  # pcap: (sec, frac, orig_len); pcapng EPB: (iface, ts_hi, ts_lo, orig_len, options)
    block: int = 0  # pcapng block type (EPB or SPB); 0 for pcap


@dataclass
class Capture:
    """A capture split into records; pcapng keeps every non-packet block in place (as `None` records
    in `items`, with the raw block beside it)."""

    kind: str  # 'pcap' | 'pcapng'
    endian: str
    header: bytes = b""  # pcap global header
    items: list = field(default_factory=list)  # Record, or raw bytes of a non-packet pcapng block

    @property
    def records(self) -> list[Record]:
        return [r for r in self.items if isinstance(r, Record)]


def load(raw: bytes) -> Capture | None:
    """Split a pcap or pcapng file (gzip undone); None when it is neither."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] in PCAP_MAGICS:
        return _load_pcap(raw)
    if len(raw) >= 12 and struct.unpack_from("<I", raw)[0] == SHB:
        return _load_pcapng(raw)
    return None


def _load_pcap(raw: bytes) -> Capture:
    e = PCAP_MAGICS[raw[:4]]
    linktype = struct.unpack_from(e + "I", raw, 20)[0] & 0x0FFFFFFF
    cap = Capture("pcap", e, raw[:24])
    off = 24
    while off + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack_from(e + "IIII", raw, off)
        data = raw[off + 16 : off + 16 + incl]
        cap.items.append(Record(linktype, data, (sec, frac, orig)))
        off += 16 + incl
    return cap


def _load_pcapng(raw: bytes) -> Capture:
    e = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    cap = Capture("pcapng", e)
    links: list[int] = []
    off = 0
    while off + 12 <= len(raw):
        btype = struct.unpack_from(e + "I", raw, off)[0]
        if btype == SHB:
            e = "<" if raw[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack_from(e + "I", raw, off + 4)[0]
        if blen < 12 or off + blen > len(raw):
            break
        body = raw[off + 8 : off + blen - 4]
        if btype == IDB and len(body) >= 2:
            links.append(struct.unpack_from(e + "H", body)[0])
        if btype == EPB and len(body) >= 20:
            iface, hi, lo, caplen, orig = struct.unpack_from(e + "IIIII", body)
            lt = links[iface] if iface < len(links) else 1
            data = body[20 : 20 + caplen]
            opts = body[20 + caplen + (-caplen % 4) :]
            cap.items.append(Record(lt, data, (iface, hi, lo, orig, opts), EPB))
        elif btype == SPB and len(body) >= 4:
            orig = struct.unpack_from(e + "I", body)[0]
            cap.items.append(Record(links[0] if links else 1, body[4 : 4 + orig], (orig,), SPB))
        else:
            cap.items.append(raw[off : off + blen])
        off += blen
    return cap


def dump(cap: Capture) -> bytes:
    """The capture as file bytes, every length field consistent with the (mutated) record data."""
    e = cap.endian
    out = [cap.header] if cap.kind == "pcap" else []
    for it in cap.items:
        if not isinstance(it, Record):
            out.append(it)
        elif cap.kind == "pcap":
            sec, frac, orig = it.head
            out.append(struct.pack(e + "IIII", sec, frac, len(it.data), max(orig, len(it.data))) + it.data)
        elif it.block == EPB:
            iface, hi, lo, orig, opts = it.head
            pad = b"\0" * (-len(it.data) % 4)
            body = struct.pack(e + "IIIII", iface, hi, lo, len(it.data), max(orig, len(it.data))) + it.data + pad
            out.append(_block(e, EPB, body + opts))
        else:
            pad = b"\0" * (-len(it.data) % 4)
            out.append(_block(e, SPB, struct.pack(e + "I", len(it.data)) + it.data + pad))
    return b"".join(out)


def _block(e: str, btype: int, body: bytes) -> bytes:
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)
