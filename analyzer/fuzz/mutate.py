"""Packet and file mutators. Each takes a `random.Random` and returns new bytes; the protocol-aware
ones find the header they lie in (IP, UDP, TCP, then STUN/TURN, ChannelData, DTLS, RTP/RTCP by the
RFC 7983 first byte) and write a boundary value into one of its length or count fields."""

from __future__ import annotations

import random
import struct

from ..dissect.stun_tables import ATTRIBUTE_TABLE, MS_ATTRIBUTE_TABLE
from .containers import EPB, IDB, Capture, Record

BOUNDARY = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
U16 = (0, 1, 3, 4, 19, 20, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
ATTR_CODES = sorted(set(ATTRIBUTE_TABLE) | set(MS_ATTRIBUTE_TABLE))
LINK_OFFSET = {1: 14, 113: 16, 276: 20, 0: 4, 108: 4, 12: 0, 14: 0, 101: 0, 228: 0, 229: 0}


class Layers:
    """Offsets of the IP header, the transport header and the payload in a frame (None when absent)."""

    __slots__ = ("ip", "l4", "payload", "proto")

    def __init__(self, data: bytes, linktype: int) -> None:
        self.ip = self.l4 = self.payload = self.proto = None
        off = LINK_OFFSET.get(linktype)
        if off is None:
            return
        if linktype == 1:
            while len(data) >= off and data[off - 2 : off] in (b"\x81\x00", b"\x88\xa8"):
                off += 4
        if len(data) < off + 20:
            return
        v = data[off] >> 4
        if v == 4:
            ihl = (data[off] & 0x0F) * 4
            self.proto, l4 = data[off + 9], off + ihl
        elif v == 6 and len(data) >= off + 40:
            self.proto, l4 = data[off + 6], off + 40
        else:
            return
        self.ip = off
        if self.proto == 17 and len(data) >= l4 + 8:
            self.l4, self.payload = l4, l4 + 8
        elif self.proto == 6 and len(data) >= l4 + 20:
            self.l4, self.payload = l4, l4 + (data[l4 + 12] >> 4) * 4


def _put16(b: bytearray, at: int, value: int) -> None:
    if 0 <= at <= len(b) - 2:
        struct.pack_into("!H", b, at, value & 0xFFFF)


def _lie16(rng: random.Random, b: bytearray, at: int, honest: int) -> None:
    """A 16-bit length field set to a boundary value or one off the honest value."""
    _put16(b, at, rng.choice((*U16, honest - 1, honest + 1, honest + 4, honest * 2)))


def bit_flips(rng: random.Random, data: bytes, _lay: Layers) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def boundary_bytes(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    b = bytearray(data)
    start = lay.payload if lay.payload is not None and lay.payload < len(b) and rng.random() < 0.7 else 0
    for _ in range(rng.choice((1, 2, 4))):
        b[rng.randrange(start, len(b))] = rng.choice(BOUNDARY)
    return bytes(b)


def truncate(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    lo = lay.payload if lay.payload is not None and lay.payload < len(data) and rng.random() < 0.7 else 0
    return data[: rng.randrange(lo, len(data))]


def lying_ip(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    b = bytearray(data)
    if lay.ip is None:
        return bit_flips(rng, data, lay)
    ip = lay.ip
    if b[ip] >> 4 == 4:
        what = rng.randrange(4)
        if what == 0:
            _lie16(rng, b, ip + 2, len(b) - ip)  # total length
        elif what == 1:
            b[ip] = 0x40 | rng.choice((0, 1, 4, 5, 6, 15))  # IHL
        elif what == 2:
            _put16(b, ip + 6, rng.choice((0x2000, 0x2001, 0x0001, 0x1FFF, 0x3FFF)))  # MF / fragment offset
        else:
            b[ip + 9] = rng.choice((6, 17, 1, 50, 47, 41, 0))  # protocol
    else:
        _lie16(rng, b, ip + 4, len(b) - ip - 40)  # payload length
    return bytes(b)


def lying_transport(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    b = bytearray(data)
    if lay.l4 is None:
        return lying_ip(rng, data, lay)
    t = lay.l4
    if lay.proto == 17:
        if rng.random() < 0.5:
            _lie16(rng, b, t + 4, len(b) - t)  # UDP length
        else:
            _put16(b, t + rng.choice((0, 2)), rng.choice((3478, 443, 3479, 5349, 1194, 51820, 4500, 0, 65535)))
    else:
        what = rng.randrange(4)
        if what == 0:
            b[t + 12] = (rng.choice((0, 1, 4, 5, 15)) << 4) | (b[t + 12] & 0x0F)  # data offset
        elif what == 1:
            struct.pack_into("!I", b, t + 4, rng.choice((0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.getrandbits(32))))
        elif what == 2:
            b[t + 13] = rng.choice((0x02, 0x12, 0x01, 0x04, 0x18, 0x3F, 0x00))  # flags
        else:
            _put16(b, t + rng.choice((0, 2)), rng.choice((3478, 443, 5349, 0, 65535)))
    return bytes(b)


def lying_payload(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    """A length or count field of the application header, by the payload's first byte."""
    p = lay.payload
    if p is None or p >= len(data):
        return lying_transport(rng, data, lay)
    b = bytearray(data)
    n = len(b) - p
    b0 = b[p]
    if b0 <= 3 and n >= 20:
        _stun(rng, b, p, n)
    elif 64 <= b0 <= 79 and n >= 4:
        _lie16(rng, b, p + 2, n - 4)
    elif 20 <= b0 <= 63 and n >= 13:
        _dtls(rng, b, p, n)
    elif 128 <= b0 <= 191 and n >= 4:
        _rtp(rng, b, p, n)
    else:
        return boundary_bytes(rng, data, lay)
    return bytes(b)


def _stun(rng: random.Random, b: bytearray, p: int, n: int) -> None:
    attrs = []  # attribute offsets, padded walk
    off = p + 20
    while off + 4 <= p + n:
        attrs.append(off)
        off += 4 + ((((b[off + 2] << 8) | b[off + 3]) + 3) & ~3)
    what = rng.randrange(6)
    if what == 0 or not attrs:
        _lie16(rng, b, p + 2, n - 20)  # message length
    elif what == 1:
        a = rng.choice(attrs)
        _lie16(rng, b, a + 2, (b[a + 2] << 8) | b[a + 3])  # attribute length
    elif what == 2:  # another attribute's decoder gets this value
        _put16(b, rng.choice(attrs), rng.choice(ATTR_CODES))
    elif what == 3:  # a value of all ones (64-bit tie-breakers, counters) or all zeros
        a = rng.choice(attrs)
        ln = min((b[a + 2] << 8) | b[a + 3], p + n - a - 4)
        b[a + 4 : a + 4 + ln] = bytes([rng.choice((0x00, 0xFF))]) * ln
    elif what == 4:  # another method and class
        _put16(
            b,
            p,
            rng.choice(
                (
                    0x0001,
                    0x0101,
                    0x0111,
                    0x0003,
                    0x0103,
                    0x0113,
                    0x0004,
                    0x0016,
                    0x0017,
                    0x0008,
                    0x0009,
                    0x0109,
                    0x000A,
                    0x000B,
                    0x001C,
                    0x0115,
                    0x0006,
                    0x0080,
                )
            ),
        )
    else:  # a string value holding control characters and markup
        a = rng.choice(attrs)
        ln = min((b[a + 2] << 8) | b[a + 3], p + n - a - 4)
        junk = b"\x1b[2J\x1b]0;x\x07[red]\x00\x9b\xff"
        for i in range(ln):
            b[a + 4 + i] = junk[i % len(junk)]


def _dtls(rng: random.Random, b: bytearray, p: int, n: int) -> None:
    what = rng.randrange(5)
    if what == 0:
        _lie16(rng, b, p + 11, n - 13)  # record length
    elif what == 1 and n >= 25:
        b[p + 14 : p + 17] = rng.choice((b"\x00\x00\x00", b"\xff\xff\xff", b"\x00\x00\x01", b"\x00\x40\x00"))
    elif what == 2 and n >= 25:
        b[p + 19 : p + 25] = rng.choice((b"\xff\xff\xff\x00\x00\x10", b"\x00\x00\x10\xff\xff\xff", bytes(6)))
    elif what == 3:
        b[p + 1 : p + 3] = rng.choice((b"\xfe\xff", b"\xfe\xfd", b"\xfe\xfc", b"\x03\x03", b"\x00\x00"))
    else:
        b[p] = rng.choice((20, 21, 22, 23, 24, 25, 0x2F, 0x3F, 0x30))
    if n >= 26 and b[p] == 22 and rng.random() < 0.3:
        b[p + 13] = rng.choice((1, 2, 3, 11, 12, 13, 14, 15, 16, 20, 0, 255))  # handshake type


def _rtp(rng: random.Random, b: bytearray, p: int, n: int) -> None:
    pt = b[p + 1] & 0x7F
    if 72 <= pt <= 76 or 200 <= b[p + 1] <= 207:  # RTCP: length in 32-bit words, count
        if rng.random() < 0.6:
            _lie16(rng, b, p + 2, n // 4 - 1)
        else:
            b[p] = (b[p] & 0xE0) | rng.choice((0, 1, 31))
        return
    what = rng.randrange(4)
    if what == 0:
        b[p] = (b[p] & 0xF0) | rng.choice((1, 4, 15))  # CSRC count
    elif what == 1 and n >= 16:
        b[p] |= 0x10  # extension present, with a lying length
        _lie16(rng, b, p + 14, 1)
    elif what == 2:
        b[p] |= 0x20  # padding, with a lying count in the last byte
        b[-1] = rng.choice((0, 1, 255, n & 0xFF, (n - 12) & 0xFF))
    else:
        b[p + 2 : p + 4] = struct.pack("!H", rng.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF, rng.getrandbits(16))))


PACKET_MUTATORS = (bit_flips, boundary_bytes, truncate, lying_ip, lying_transport, lying_payload, lying_payload)


def mutate_records(rng: random.Random, cap: Capture, density: float) -> int:
    """Mutate about `density` of the packets in place, then maybe reorder or duplicate some;
    returns how many packets were changed or added."""
    idx = [i for i, it in enumerate(cap.items) if isinstance(it, Record) and it.data]
    if not idx:
        return 0
    chosen = rng.sample(idx, max(1, round(len(idx) * density)))
    for i in chosen:
        r = cap.items[i]
        r.data = rng.choice(PACKET_MUTATORS)(rng, r.data, Layers(r.data, r.linktype))
    changed = len(chosen)
    if rng.random() < 0.3:  # reorder: swap neighbours or far records
        for _ in range(rng.randint(1, 8)):
            i = rng.choice(idx)
            j = min(idx[-1], i + rng.choice((1, 1, 2, 50)))
            if j in idx:
                cap.items[i], cap.items[j] = cap.items[j], cap.items[i]
                changed += 2
    if rng.random() < 0.2:  # duplicated records
        for _ in range(rng.randint(1, 8)):
            i = rng.choice(idx)
            r = cap.items[i]
            cap.items.insert(i, Record(r.linktype, r.data, r.head, r.block))
            changed += 1
    return changed


def damage_file(rng: random.Random, cap: Capture, raw: bytes) -> bytes:
    """Damage the file structure: header fields, record and block lengths, pcapng options, the end."""
    b = bytearray(raw)
    e = cap.endian
    what = rng.randrange(6)
    if what == 0 and len(b) > 24:  # a header field
        if cap.kind == "pcap":
            at = rng.choice((4, 6, 16, 20))
            struct.pack_into(
                e + "I" if at >= 16 else e + "H",
                b,
                at,
                rng.choice((0, 1, 0xFFFF, 65535, 2**31)) & (0xFFFFFFFF if at >= 16 else 0xFFFF),
            )
        else:
            struct.pack_into(e + "Q", b, 16, rng.choice((0, 1, 2**63 - 1, 2**64 - 1)))  # section length
    elif what == 1:  # a record's or block's length field lies
        offs = _length_fields(cap, raw)
        if offs:
            struct.pack_into(
                e + "I",
                b,
                rng.choice(offs),
                rng.choice((0, 1, 3, 11, 12, 13, 0xFFFF, 2**31, 2**32 - 1, rng.getrandbits(16))),
            )
    elif what == 2 and cap.kind == "pcapng":  # interface options: resolution and offset
        return _idb_options(rng, cap)
    elif what == 3 and cap.kind == "pcapng":  # an interface id no IDB describes
        offs = [o for o, t in _blocks(raw, e) if t == EPB]
        if offs:
            struct.pack_into(e + "I", b, rng.choice(offs) + 8, rng.choice((1, 7, 0xFFFFFFFF)))
    elif what == 4:  # timestamps: zero, far future, fraction out of range
        offs = _ts_fields(cap, raw)
        if offs:
            struct.pack_into(e + "I", b, rng.choice(offs), rng.choice((0, 1, 999_999, 1_000_000, 2**31, 2**32 - 1)))
    else:  # cut or extend the file
        if rng.random() < 0.7:
            return bytes(b[: rng.randrange(len(b))])
        return bytes(b) + rng.randbytes(rng.randrange(1, 64))
    return bytes(b)


def _blocks(raw: bytes, e: str) -> list[tuple[int, int]]:
    out, off = [], 0
    while off + 12 <= len(raw):
        t, n = struct.unpack_from(e + "II", raw, off)
        out.append((off, t))
        if n < 12:
            break
        off += n
    return out


def _length_fields(cap: Capture, raw: bytes) -> list[int]:
    if cap.kind == "pcapng":
        return [o + 4 for o, _ in _blocks(raw, cap.endian)]
    out, off = [], 24
    while off + 16 <= len(raw):
        out += [off + 8, off + 12]
        off += 16 + struct.unpack_from(cap.endian + "I", raw, off + 8)[0]
    return out


def _ts_fields(cap: Capture, raw: bytes) -> list[int]:
    if cap.kind == "pcapng":
        return [o + 12 + k for o, t in _blocks(raw, cap.endian) if t == EPB for k in (0, 4)]
    return [o - 8 + k for o in _length_fields(cap, raw)[::2] for k in (0, 4)]


def _idb_options(rng: random.Random, cap: Capture) -> bytes:
    from .containers import dump

    e = cap.endian
    tsresol = rng.choice((0, 3, 6, 9, 19, 0x7F, 0x80, 0x8A, 0xFF))
    tsoffset = rng.choice((0, 1, -1, -(2**62), 2**62, 2**63 - 1))
    for i, it in enumerate(cap.items):
        if isinstance(it, bytes) and struct.unpack_from(e + "I", it)[0] == IDB:
            opts = b""
            if rng.random() < 0.8:
                opts += struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
            if rng.random() < 0.5:
                opts += struct.pack(e + "HHq", 14, 8, tsoffset)
            body = it[8:16] + opts + struct.pack(e + "HH", 0, 0)
            n = len(body) + 12
            cap.items[i] = struct.pack(e + "II", IDB, n) + body + struct.pack(e + "I", n)
            break
    return dump(cap)
