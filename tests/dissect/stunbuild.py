"""A tiny STUN/TURN message builder for tests (RFC 8489 layout, XOR addresses, FINGERPRINT)."""

from __future__ import annotations

import ipaddress
import os
import struct
import zlib

COOKIE = 0x2112A442
CLASSES = {"request": 0x000, "indication": 0x010, "success": 0x100, "error": 0x110}
METHODS = {"Binding": 1, "Allocate": 3, "Refresh": 4, "Send": 6, "Data": 7, "CreatePermission": 8, "ChannelBind": 9}


def msg_type(method: str, cls: str) -> int:
    m = METHODS[method]
    return (m & 0xF) | ((m & 0x70) << 1) | ((m & 0xF80) << 2) | CLASSES[cls]


def attr(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value + b"\0" * ((-len(value)) % 4)


def xor_addr(code: int, ip: str, port: int, tid: bytes) -> bytes:
    a = ipaddress.ip_address(ip)
    xport = port ^ (COOKIE >> 16)
    if a.version == 4:
        return attr(code, struct.pack("!BBHI", 0, 1, xport, int(a) ^ COOKIE))
    key = int.from_bytes(struct.pack("!I", COOKIE) + tid, "big")
    return attr(code, struct.pack("!BBH", 0, 2, xport) + (int(a) ^ key).to_bytes(16, "big"))


def message(
    method: str, cls: str, attrs: list[bytes] | None = None, tid: bytes | None = None, fingerprint: bool = True
) -> bytes:
    tid = tid or os.urandom(12)
    body = b"".join(attrs or [])
    if fingerprint:
        head = struct.pack("!HHI", msg_type(method, cls), len(body) + 8, COOKIE) + tid
        crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", msg_type(method, cls), len(body), COOKIE) + tid + body


def channeldata(channel: int, data: bytes, pad: bool = False) -> bytes:
    out = struct.pack("!HH", channel, len(data)) + data
    return out + b"\0" * ((-len(out)) % 4) if pad else out


def rtp(seq: int, ts: int, ssrc: int, pt: int = 111, payload: bytes = b"\xaa" * 40) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
