"""RTCP compound packets (RFC 3550, 4585, 5104, 3611) and SRTCP detection (RFC 3711, 7714).

A compound is a run of RTCP packets, each with V=2 and a length field (32-bit words minus one); in a
plain datagram the declared lengths tile the whole payload. SRTCP appends a 4-byte word (E flag +
31-bit SRTCP index) and an authentication tag (10 bytes for HMAC-SHA1-80, 4 for HMAC-SHA1-32); with
AEAD (RFC 7714) a 16-byte tag sits inside the encrypted part and the E+index word is last. When E is
set only the first 8 bytes (header and sender SSRC) are in the clear, so only those are reported.

`parse_rtcp(..., srtcp=None)` detects SRTCP: the declared lengths do not tile the datagram, but they do
tile it minus one of those trailers, or (encrypted compound) the first packet is an RTCP type 200..207
that fits before a trailer whose E flag is set. A damaged plain compound can be mistaken for an
encrypted one in the second case; pass srtcp=False when the caller knows better.
"""

from __future__ import annotations

from typing import NamedTuple

from .rtp_tables import (
    RTCP_APP,
    RTCP_BYE,
    RTCP_IJ,
    RTCP_PSFB,
    RTCP_RR,
    RTCP_RTPFB,
    RTCP_SDES,
    RTCP_SR,
    RTCP_TYPES,
    SRTCP_TRAILERS,
    fb_name,
)

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


class SenderInfo(NamedTuple):
    ntp_ts: int  # 64-bit NTP timestamp
    rtp_ts: int
    packets: int
    octets: int


class ReportBlock(NamedTuple):
    ssrc: int
    fraction_lost: int  # 0..255 (fraction * 256)
    cumulative_lost: int  # signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # timestamp units
    lsr: int  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int  # 1/65536 s


class RtcpPacket(NamedTuple):
    pt: int
    name: str
    count: int  # RC / SC / FMT (5 bits)
    length: int  # the length field as on the wire: 32-bit words minus one
    ssrc: int | None  # sender SSRC (first chunk/SSRC for SDES and BYE); None when absent
    sender_info: SenderInfo | None = None
    reports: tuple[ReportBlock, ...] = ()
    cname: str | None = None
    bye_ssrcs: tuple[int, ...] = ()
    fb_fmt: int | None = None
    fb_name: str | None = None
    malformed: str | None = None
    media_ssrc: int | None = None  # RTPFB/PSFB: SSRC of the media source
    sdes_items: tuple[tuple[int, int, str], ...] = ()  # (chunk SSRC, item type, text)
    bye_reason: str | None = None
    app_name: str | None = None
    padding: int = 0  # padding bytes (P bit)

    @property
    def size(self) -> int:
        """Bytes on the wire, header included."""
        return (self.length + 1) * 4


class RtcpCompound(NamedTuple):
    packets: tuple[RtcpPacket, ...]
    srtcp: bool
    srtcp_encrypted: bool | None = None  # the E flag
    srtcp_index: int | None = None
    malformed: str | None = None
    srtcp_tag_len: int | None = None  # 10, 4, or 16 (AEAD) as detected; None when not SRTCP


def _u16(d: bytes, i: int) -> int:
    return (d[i] << 8) | d[i + 1]


def _u32(d: bytes, i: int) -> int:
    return int.from_bytes(d[i : i + 4], "big")


def _walk(d: bytes, end: int) -> tuple[list[tuple[int, int]], str | None]:
    """(offset, size) of each packet whose declared length fits before `end`; an error unless they tile it."""
    segs: list[tuple[int, int]] = []
    pos = 0
    while pos < end:
        if end - pos < 4:
            return segs, f"{end - pos} bytes left after the packets, less than a header"
        if d[pos] >> 6 != 2:
            return segs, f"version {d[pos] >> 6} at offset {pos}"
        size = (_u16(d, pos + 2) + 1) * 4
        if pos + size > end:
            return segs, f"packet at offset {pos} declares {size} bytes, {end - pos} left"
        segs.append((pos, size))
        pos += size
    return segs, None


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def _reports(d: bytes, pos: int, end: int, count: int) -> tuple[tuple[ReportBlock, ...], str | None]:
    out = []
    for _ in range(count):
        if pos + 24 > end:
            return tuple(out), f"{count} report blocks declared, {len(out)} fit"
        cum = int.from_bytes(d[pos + 5 : pos + 8], "big")
        if cum & 0x800000:
            cum -= 1 << 24
        out.append(ReportBlock(_u32(d, pos), d[pos + 4], cum, _u32(d, pos + 8), _u32(d, pos + 12), _u32(d, pos + 16),
                               _u32(d, pos + 20)))
        pos += 24
    return tuple(out), None


def _parse_packet(d: bytes, pos: int, size: int) -> RtcpPacket:
    b0, pt = d[pos], d[pos + 1]
    count = b0 & 0x1F
    length = _u16(d, pos + 2)
    name = RTCP_TYPES.get(pt, f"unknown({pt})")
    end = pos + size
    pad = 0
    bad: str | None = None
    if b0 & 0x20:
        pad = d[end - 1]
        if pad == 0 or pad > size - 4:
            bad, pad = f"padding count {pad} does not fit the packet", 0
    end -= pad
    ssrc = _u32(d, pos + 4) if end - pos >= 8 and pt != RTCP_IJ else None
    base = dict(pt=pt, name=name, count=count, length=length, ssrc=ssrc, padding=pad)

    def done(**kw) -> RtcpPacket:
        kw.setdefault("malformed", bad)
        return RtcpPacket(**base, **kw)

    if pt == RTCP_SR:
        if end - pos < 28:
            return done(malformed=bad or "sender report shorter than its sender info")
        si = SenderInfo(int.from_bytes(d[pos + 8 : pos + 16], "big"), _u32(d, pos + 16), _u32(d, pos + 20),
                        _u32(d, pos + 24))
        reps, err = _reports(d, pos + 28, end, count)
        return done(sender_info=si, reports=reps, malformed=bad or err)
    if pt == RTCP_RR:
        if ssrc is None:
            return done(malformed=bad or "receiver report without sender SSRC")
        reps, err = _reports(d, pos + 8, end, count)
        return done(reports=reps, malformed=bad or err)
    if pt == RTCP_SDES:
        items, err = _sdes(d, pos + 4, end, count)
        cname = next((t for _, k, t in items if k == 1), None)
        return done(sdes_items=items, cname=cname, malformed=bad or err)
    if pt == RTCP_BYE:
        p = pos + 4
        if p + 4 * count > end:
            return done(malformed=bad or f"{count} SSRCs declared, packet too short")
        ssrcs = tuple(_u32(d, p + 4 * i) for i in range(count))
        p += 4 * count
        reason = None
        if p < end:
            rlen = d[p]
            if p + 1 + rlen > end:
                return done(bye_ssrcs=ssrcs, malformed=bad or "reason runs past the packet")
            reason = _text(d[p + 1 : p + 1 + rlen])
        return done(bye_ssrcs=ssrcs, bye_reason=reason)
    if pt == RTCP_APP:
        if end - pos < 12:
            return done(malformed=bad or "APP packet shorter than its name")
        return done(app_name=_text(d[pos + 8 : pos + 12]))
    if pt in (RTCP_RTPFB, RTCP_PSFB):
        if end - pos < 12:
            return done(fb_fmt=count, fb_name=fb_name(pt, count), malformed=bad or "feedback shorter than 12 bytes")
        return done(fb_fmt=count, fb_name=fb_name(pt, count), media_ssrc=_u32(d, pos + 8))
    return done()


def _sdes(d: bytes, p: int, end: int, count: int) -> tuple[tuple[tuple[int, int, str], ...], str | None]:
    items: list[tuple[int, int, str]] = []
    for _ in range(count):
        if p + 4 > end:
            return tuple(items), f"{count} SDES chunks declared, packet too short"
        chunk_ssrc = _u32(d, p)
        p += 4
        while True:
            if p >= end:
                return tuple(items), "SDES chunk without END item"
            kind = d[p]
            if kind == 0:  # END, then pad the chunk to a 32-bit boundary
                p += 1
                p += -p % 4  # packets start on 32-bit boundaries of the datagram
                break
            if p + 2 > end or p + 2 + d[p + 1] > end:
                return tuple(items), f"SDES item {kind} runs past the packet"
            items.append((chunk_ssrc, kind, _text(d[p + 2 : p + 2 + d[p + 1]])))
            p += 2 + d[p + 1]
    return tuple(items), None


def _first_only(d: bytes) -> RtcpPacket:
    """The clear first 8 bytes of an encrypted SRTCP compound."""
    pt, count = d[1], d[0] & 0x1F
    fmt = count if pt in (RTCP_RTPFB, RTCP_PSFB) else None
    return RtcpPacket(pt, RTCP_TYPES.get(pt, f"unknown({pt})"), count, _u16(d, 2), _u32(d, 4), fb_fmt=fmt,
                      fb_name=fb_name(pt, count))


def _srtcp_layout(d: bytes, plain_ok: bool) -> tuple[int, int, bool] | None:
    """(body length, tag length, E flag) of an SRTCP datagram, or None when it does not look like one."""
    n = len(d)
    for trailer, eoff in SRTCP_TRAILERS:  # the packets tile the datagram minus the trailer
        body = n - trailer
        if body >= 8 and _walk(d, body)[1] is None:
            return body, trailer - 4, bool(d[n - eoff] & 0x80)
    if n < 8 or d[0] >> 6 != 2 or not 200 <= d[1] <= 207 or plain_ok:
        return None
    first = (_u16(d, 2) + 1) * 4
    for trailer, eoff in SRTCP_TRAILERS:  # encrypted compound: only the first header can be checked
        if first <= n - trailer and d[n - eoff] & 0x80:
            return n - trailer, trailer - 4, True
    return None


def parse_rtcp(data: bytes, *, srtcp: bool | None = None) -> RtcpCompound:
    """Parse an RTCP compound (or SRTCP when detected or when srtcp=True). Never raises."""
    d = bytes(data)
    n = len(d)
    if n < 4:
        return RtcpCompound((), bool(srtcp), malformed="shorter than an RTCP header")
    segs, err = _walk(d, n)
    if srtcp is None or srtcp:
        lay = _srtcp_layout(d, plain_ok=err is None and srtcp is None) if srtcp or err is not None else None
        if lay is None and srtcp:
            if n < 8 + 14:
                return RtcpCompound((), True, malformed="too short for SRTCP")
            lay = (n - 14, 10, bool(d[n - 14] & 0x80))  # the common AES-CM/HMAC-SHA1-80 layout
        if lay is not None:
            body, tag, enc = lay
            eoff = next(e for t, e in SRTCP_TRAILERS if t == tag + 4)
            index = _u32(d, n - eoff) & 0x7FFFFFFF
            if enc:
                if d[0] >> 6 != 2:
                    return RtcpCompound((), True, True, index, f"version {d[0] >> 6}", tag)
                return RtcpCompound((_first_only(d),), True, True, index, None, tag)
            segs, err = _walk(d, body)
            pkts = tuple(_parse_packet(d, p, s) for p, s in segs)
            return RtcpCompound(pkts, True, False, index, err, tag)
    pkts = tuple(_parse_packet(d, p, s) for p, s in segs)
    return RtcpCompound(pkts, False, malformed=err and f"declared lengths do not tile the datagram: {err}")


def rtt_from_report(report_arrival_ntp_middle32: int, lsr: int, dlsr: int) -> float | None:
    """Round-trip time in seconds (RFC 3550 6.4.1): A - LSR - DLSR in 1/65536 s, modulo 2^32.

    None when LSR is 0 (no SR received yet). A negative value (returned as is) means the report's
    timestamps are inconsistent with the arrival time (clock or capture-point skew)."""
    if lsr == 0:
        return None
    d = (report_arrival_ntp_middle32 - lsr - dlsr) & 0xFFFFFFFF
    if d >= 1 << 31:
        d -= 1 << 32
    return d / 65536.0


def ntp_middle32(ntp_ts: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (what LSR carries)."""
    return (ntp_ts >> 16) & 0xFFFFFFFF


def ntp_from_unix_ns(ts_ns: int) -> int:
    """64-bit NTP timestamp of a Unix time in nanoseconds (e.g. a packet's capture time)."""
    s, ns = divmod(ts_ns, 1_000_000_000)
    return (((s + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32) | ((ns << 32) // 1_000_000_000)
