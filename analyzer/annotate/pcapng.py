"""pcapng block layouts, for writing: each block's fixed part declared once, options encoded by one helper.

Only what the annotated copy needs: a section header, an interface description, an enhanced packet, and
adding options (packet comments) to a block read from a file. Reading stays in capture/formats.py.
"""

from __future__ import annotations

import struct
from typing import NamedTuple


class Layout(NamedTuple):
    """A block's type code, its fixed fields (struct format, byte order left out) and where options start
    in the body when the block has no variable data before them."""

    btype: int
    fixed: str
    options_at: int | None


SHB = Layout(0x0A0D0D0A, "IHHq", 16)  # byte-order magic, major, minor, section length
IDB = Layout(0x00000001, "HHI", 8)  # link type, reserved, snap length
EPB = Layout(0x00000006, "IIIII", None)  # interface, ts high, ts low, captured length, original length
PB = Layout(0x00000002, "HHIIII", None)  # obsolete packet block: interface, drops, ts high/low, lengths
SPB = Layout(0x00000003, "I", None)  # simple packet: original length; no options
BOM = 0x1A2B3C4D
UNKNOWN_SECTION_LENGTH = -1

# option codes (pcapng draft, section 3.5 and the per-block option tables)
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_TSRESOL = 9
PACKET_BLOCKS = {EPB.btype: 28, PB.btype: 28}  # type -> header size before the packet data (with type+length)


def pad4(n: int) -> int:
    return (-n) % 4


def option(code: int, value: bytes, e: str = "<") -> bytes:
    """One option: code, length, value padded to 32 bits."""
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * pad4(len(value))


def comment_options(comments: list[str], e: str = "<") -> bytes:
    """One opt_comment per comment (UTF-8, as the format requires), in the given order."""
    return b"".join(option(OPT_COMMENT, c.encode("utf-8"), e) for c in comments)


def block(layout: Layout, fields: tuple, tail: bytes = b"", e: str = "<") -> bytes:
    """A whole block: type, total length, fixed fields, then `tail` (data and options) padded to 32 bits."""
    body = struct.pack(e + layout.fixed, *fields) + tail + b"\0" * pad4(len(tail))
    n = len(body) + 12
    return struct.pack(e + "II", layout.btype, n) + body + struct.pack(e + "I", n)


def section_header(options: bytes = b"", e: str = "<") -> bytes:
    return block(SHB, (BOM, 1, 0, UNKNOWN_SECTION_LENGTH), _closed(options, e), e)


def interface(linktype: int, snaplen: int, tsresol: int, e: str = "<") -> bytes:
    return block(IDB, (linktype & 0xFFFF, 0, snaplen), _closed(option(IF_TSRESOL, bytes([tsresol]), e), e), e)


def _closed(options: bytes, e: str) -> bytes:
    return options + option(OPT_ENDOFOPT, b"", e) if options else b""


def options_offset(raw: bytes | memoryview, e: str) -> int | None:
    """Where a block's options start (from the block start), or None when the block cannot carry them."""
    btype, length = struct.unpack(e + "II", raw[:8])
    if btype == SHB.btype:
        return 8 + SHB.options_at
    if btype == IDB.btype:
        return 8 + IDB.options_at
    if btype in PACKET_BLOCKS and length >= 32:
        (caplen,) = struct.unpack(e + "I", raw[20:24])
        at = PACKET_BLOCKS[btype] + caplen + pad4(caplen)
        return at if at <= length - 4 else None
    return None


def with_options(raw: bytes | memoryview, extra: bytes, e: str) -> bytes | None:
    """The block `raw` with the options `extra` added after its own (before opt_endofopt). None when the
    block carries no options or its option list is damaged: then nothing is changed."""
    at = options_offset(raw, e)
    if at is None:
        return None
    raw = bytes(raw)
    end = len(raw) - 4
    kept, i = [], at
    while i + 4 <= end:
        code, olen = struct.unpack(e + "HH", raw[i : i + 4])
        if code == OPT_ENDOFOPT:
            break
        step = 4 + olen + pad4(olen)
        if i + step > end:
            return None
        kept.append(raw[i : i + step])
        i += step
    else:
        if i != end:
            return None
    body = raw[8:at] + b"".join(kept) + extra + option(OPT_ENDOFOPT, b"", e)
    if raw[:4] == struct.pack(e + "I", SHB.btype):  # blocks change size: the section length is unknown now
        body = body[:8] + struct.pack(e + "q", UNKNOWN_SECTION_LENGTH) + body[16:]
    n = len(body) + 12
    return raw[:4] + struct.pack(e + "I", n) + body + struct.pack(e + "I", n)


def unknown_section_length(raw: bytes | memoryview, e: str) -> bytes:
    """A section header as read, its section length set to 'not given' (the copy changes block sizes)."""
    raw = bytes(raw)
    return raw[:16] + struct.pack(e + "q", UNKNOWN_SECTION_LENGTH) + raw[24:]
