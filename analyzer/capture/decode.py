"""Link, IP and transport headers for a whole chunk of records at once.

Every field is gathered with numpy from the chunk's buffer at per-packet offsets; a read past a
record's captured bytes yields "absent" and marks the packet snaplen-cut instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formats import RecordChunk

# status bits of a packet
ST_SNAPLEN = 1  # caplen < origlen
ST_TRUNCATED = 2  # a header we needed lies past the captured bytes
ST_FRAGMENT = 4  # an IP fragment (not reassembled)
ST_MALFORMED = 8  # a header field is impossible (IHL < 5, bad lengths)
ST_UNKNOWN_LINK = 16  # link type we do not decode
ST_EMPTY = 32  # zero-length record
ST_BAD_TIME = 64  # no usable timestamp: it carries the time of the packet before it

ETH_VLAN = (0x8100, 0x88A8, 0x9100)
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
IPV6_EXT = (0, 43, 60, 135, 139, 140, 253, 254)  # skipped with (len+1)*8
PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMP6, PROTO_ESP, PROTO_AH = 6, 17, 1, 58, 50, 51
V4_MAPPED = np.uint64(0x0000FFFF00000000)

# RFC 7983 demultiplexing classes (code -> name)
CLASS_NONE, CLASS_STUN, CLASS_ZRTP, CLASS_DTLS, CLASS_TURN, CLASS_RTP, CLASS_RTCP, CLASS_OTHER = range(8)
CLASS_NAMES = ("none", "stun", "zrtp", "dtls", "turn-channel", "rtp", "rtcp", "other")
_FIRST_BYTE = np.full(256, CLASS_OTHER, dtype=np.uint8)
_FIRST_BYTE[0:4] = CLASS_STUN
_FIRST_BYTE[16:20] = CLASS_ZRTP
_FIRST_BYTE[20:64] = CLASS_DTLS
_FIRST_BYTE[64:80] = CLASS_TURN
_FIRST_BYTE[128:192] = CLASS_RTP


@dataclass
class PacketBatch:
    """Columnar packet table for one chunk. `buf[payload_off : payload_off + payload_len]` is the payload."""

    buf: np.ndarray
    frame: np.ndarray  # int64, 1-based as Wireshark counts
    ts_ns: np.ndarray  # int64
    caplen: np.ndarray  # int64
    origlen: np.ndarray  # int64
    linktype: np.ndarray  # int32
    ip_version: np.ndarray  # uint8: 0 (not IP), 4, 6
    src_hi: np.ndarray  # uint64: IPv6 high half; 0 for IPv4
    src_lo: np.ndarray  # uint64: IPv6 low half, or ::ffff:a.b.c.d for IPv4
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    proto: np.ndarray  # uint8 IP protocol (final next header for IPv6); 255 when not IP
    sport: np.ndarray  # int32 (0 when absent)
    dport: np.ndarray
    payload_off: np.ndarray  # int64 into buf
    payload_len: np.ndarray  # int64 captured transport payload bytes (0 when none)
    dscp: np.ndarray  # uint8
    ttl: np.ndarray  # uint8 (hop limit for IPv6)
    tcp_flags: np.ndarray  # uint8
    tcp_seq: np.ndarray  # int64 (uint32 values)
    status: np.ndarray  # uint8 ST_* bits
    cls: np.ndarray  # uint8 RFC 7983 class of the payload's first byte

    def __len__(self) -> int:
        return int(self.frame.size)

    def payload(self, i: int) -> bytes:
        """The transport payload of row i, as bytes (for the rare per-packet dissectors)."""
        o = int(self.payload_off[i])
        return self.buf[o : o + int(self.payload_len[i])].tobytes()


class _Reader:
    """Bounds-checked gathers relative to each packet's start."""

    def __init__(self, buf: np.ndarray, start: np.ndarray, caplen: np.ndarray) -> None:
        self.buf = buf
        self.start = start
        self.end = start + caplen
        self.last = len(buf) - 1

    def take(self, rel: np.ndarray, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
        """(values as (n, nbytes) uint8, present mask) for the bytes at start+rel."""
        pos = self.start + rel
        ok = (rel >= 0) & (pos + nbytes <= self.end)
        # rows of a sliding-window view: one copy of n*nbytes bytes, no (n, nbytes) index array
        rows = np.lib.stride_tricks.sliding_window_view(self.buf, nbytes)
        idx = np.minimum(np.where(ok, pos, 0), len(rows) - 1)
        return rows[idx], ok

    def u8(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = self.start + rel
        ok = (rel >= 0) & (pos < self.end)
        v = self.buf[np.minimum(np.where(ok, pos, 0), self.last)].astype(np.int64)
        return np.where(ok, v, 0), ok

    def _int(self, rel: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
        size = np.dtype(dtype).itemsize
        pos = self.start + rel
        ok = (rel >= 0) & (pos + size <= self.end)
        view = np.ndarray(shape=(max(len(self.buf) - size + 1, 0),), dtype=dtype, buffer=self.buf, strides=(1,))
        v = view[np.minimum(np.where(ok, pos, 0), len(view) - 1)]
        return np.where(ok, v, 0), ok

    def u16(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, ok = self._int(rel, ">u2")
        return v.astype(np.int64), ok

    def u32(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, ok = self._int(rel, ">u4")
        return v.astype(np.int64), ok

    def u64(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, ok = self._int(rel, ">u8")
        return v.astype(np.uint64), ok


def decode(chunk: RecordChunk) -> PacketBatch:
    """Decode link, network and transport headers of every record in the chunk."""
    n = len(chunk)
    buf = chunk.buf
    r = _Reader(buf, chunk.data_off, chunk.caplen)
    status = np.zeros(n, dtype=np.uint8)
    status[chunk.caplen < chunk.origlen] |= ST_SNAPLEN
    status[chunk.caplen == 0] |= ST_EMPTY
    if chunk.ts_bad is not None:
        status[chunk.ts_bad] |= ST_BAD_TIME
    lt = chunk.linktype

    # ---- link layer: find the network header (l3) and its type (4, 6 or 0)
    l3 = np.zeros(n, dtype=np.int64)
    ipv = np.zeros(n, dtype=np.int64)
    known = np.zeros(n, dtype=bool)

    eth = lt == 1
    if eth.any():
        known |= eth
        et, ok = r.u16(np.full(n, 12, dtype=np.int64))
        off = np.full(n, 14, dtype=np.int64)
        for _ in range(3):  # 802.1Q, QinQ, and one more for luck
            tagged = eth & ok & np.isin(et, ETH_VLAN)
            if not tagged.any():
                break
            et2, ok2 = r.u16(off + 2)
            et = np.where(tagged, et2, et)
            ok = np.where(tagged, ok2, ok)
            off = np.where(tagged, off + 4, off)
        l3 = np.where(eth, off, l3)
        ipv = np.where(eth & (et == ETH_IPV4), 4, np.where(eth & (et == ETH_IPV6), 6, ipv))
        status[eth & ~ok] |= ST_TRUNCATED

    for code, off, at in ((113, 16, 14), (276, 20, 0)):
        m = lt == code
        if m.any():
            known |= m
            et, ok = r.u16(np.full(n, at, dtype=np.int64))
            l3 = np.where(m, off, l3)
            ipv = np.where(m & (et == ETH_IPV4), 4, np.where(m & (et == ETH_IPV6), 6, ipv))
            status[m & ~ok] |= ST_TRUNCATED

    raw = np.isin(lt, (12, 14, 101, 228, 229))
    if raw.any():
        known |= raw
        b0, ok = r.u8(np.zeros(n, dtype=np.int64))
        v = b0 >> 4
        ipv = np.where(raw & ok & ((v == 4) | (v == 6)), v, ipv)

    loop = (lt == 0) | (lt == 108)
    if loop.any():
        known |= loop
        fam_b, ok = r.take(np.zeros(n, dtype=np.int64), 4)
        le = np.ascontiguousarray(fam_b).view("<u4")[:, 0].astype(np.int64)
        be = np.ascontiguousarray(fam_b).view(">u4")[:, 0].astype(np.int64)
        v6fam = (10, 24, 28, 30)
        is4 = (le == 2) | (be == 2)
        is6 = np.isin(le, v6fam) | np.isin(be, v6fam)
        l3 = np.where(loop, 4, l3)
        ipv = np.where(loop & ok & is4, 4, np.where(loop & ok & is6, 6, ipv))

    status[~known] |= ST_UNKNOWN_LINK

    # ---- IP
    proto = np.full(n, 255, dtype=np.int64)
    l4 = np.zeros(n, dtype=np.int64)
    ip_end = chunk.caplen.copy()  # transport data ends here (Ethernet padding excluded)
    src_hi = np.zeros(n, dtype=np.uint64)
    src_lo = np.zeros(n, dtype=np.uint64)
    dst_hi = np.zeros(n, dtype=np.uint64)
    dst_lo = np.zeros(n, dtype=np.uint64)
    dscp = np.zeros(n, dtype=np.int64)
    ttl = np.zeros(n, dtype=np.int64)
    first_frag = np.ones(n, dtype=bool)

    v4 = ipv == 4
    if v4.any():
        b, ok = r.take(np.where(v4, l3, -1), 20)
        ok &= v4
        ver = b[:, 0] >> 4
        ihl = (b[:, 0] & 0x0F).astype(np.int64) * 4
        bad = ok & ((ver != 4) | (ihl < 20))
        status[bad] |= ST_MALFORMED
        status[v4 & ~ok] |= ST_TRUNCATED
        good = ok & ~bad
        tot = (b[:, 2].astype(np.int64) << 8) | b[:, 3]
        frag = ((b[:, 6].astype(np.int64) & 0x3F) << 8) | b[:, 7]
        mf = (b[:, 6] & 0x20) != 0
        is_frag = good & (mf | ((frag & 0x1FFF) != 0))
        status[is_frag] |= ST_FRAGMENT
        first_frag &= ~(good & ((frag & 0x1FFF) != 0))
        proto = np.where(good, b[:, 9], proto)
        dscp = np.where(good, b[:, 1] >> 2, dscp)
        ttl = np.where(good, b[:, 8], ttl)
        s4 = np.ascontiguousarray(b[:, 12:20]).view(">u4").astype(np.uint64)
        src_lo = np.where(good, V4_MAPPED | s4[:, 0], src_lo)
        dst_lo = np.where(good, V4_MAPPED | s4[:, 1], dst_lo)
        l4 = np.where(good, l3 + ihl, l4)
        # tot == 0 happens with TSO captures: trust the capture then
        end4 = np.where(tot >= ihl, l3 + tot, chunk.caplen)
        status[good & (tot > 0) & (tot < ihl)] |= ST_MALFORMED
        ip_end = np.where(good, np.minimum(end4, chunk.caplen), ip_end)
        ipv = np.where(v4 & ~good, 0, ipv)

    v6 = ipv == 6
    if v6.any():
        b, ok = r.take(np.where(v6, l3, -1), 40)
        ok &= v6
        status[v6 & ~ok] |= ST_TRUNCATED
        good = ok & ((b[:, 0] >> 4) == 6)
        status[ok & ~good] |= ST_MALFORMED
        plen = (b[:, 4].astype(np.int64) << 8) | b[:, 5]
        nh = b[:, 6].astype(np.int64)
        dscp = np.where(good, ((b[:, 0].astype(np.int64) & 0x0F) << 2) | (b[:, 1] >> 6), dscp)
        ttl = np.where(good, b[:, 7], ttl)
        a = np.ascontiguousarray(b[:, 8:40]).view(">u8")
        src_hi = np.where(good, a[:, 0], src_hi)
        src_lo = np.where(good, a[:, 1], src_lo)
        dst_hi = np.where(good, a[:, 2], dst_hi)
        dst_lo = np.where(good, a[:, 3], dst_lo)
        pos = l3 + 40
        ip_end = np.where(good & (plen > 0), np.minimum(l3 + 40 + plen, chunk.caplen), ip_end)
        for _ in range(8):
            ext = good & (np.isin(nh, IPV6_EXT) | (nh == 44) | (nh == 51))
            if not ext.any():
                break
            h, hok = r.take(np.where(ext, pos, -1), 4)
            hok &= ext
            status[ext & ~hok] |= ST_TRUNCATED
            nxt = h[:, 0].astype(np.int64)
            hlen = np.where(
                nh == 44, 8, np.where(nh == 51, (h[:, 1].astype(np.int64) + 2) * 4, (h[:, 1].astype(np.int64) + 1) * 8)
            )
            fr = hok & (nh == 44)
            if fr.any():
                fo = (h[:, 2].astype(np.int64) << 5) | (h[:, 3] >> 3)
                status[fr] |= ST_FRAGMENT
                first_frag &= ~(fr & (fo != 0))
            good = good & (hok | ~ext)
            nh = np.where(hok, nxt, nh)
            pos = np.where(hok, pos + hlen, pos)
        proto = np.where(good, nh, proto)
        l4 = np.where(good, pos, l4)
        ipv = np.where(v6 & ~good, 0, ipv)

    is_ip = ipv > 0

    # ---- transport
    sport = np.zeros(n, dtype=np.int64)
    dport = np.zeros(n, dtype=np.int64)
    poff = np.zeros(n, dtype=np.int64)
    plen_out = np.zeros(n, dtype=np.int64)
    tflags = np.zeros(n, dtype=np.int64)
    tseq = np.zeros(n, dtype=np.int64)
    has_l4 = is_ip & first_frag

    udp = has_l4 & (proto == PROTO_UDP)
    if udp.any():
        b, ok = r.take(np.where(udp, l4, -1), 8)
        ok &= udp
        status[udp & ~ok] |= ST_TRUNCATED
        sport = np.where(ok, (b[:, 0].astype(np.int64) << 8) | b[:, 1], sport)
        dport = np.where(ok, (b[:, 2].astype(np.int64) << 8) | b[:, 3], dport)
        ulen = (b[:, 4].astype(np.int64) << 8) | b[:, 5]
        end = np.where(ulen >= 8, np.minimum(l4 + ulen, ip_end), ip_end)
        poff = np.where(ok, l4 + 8, poff)
        plen_out = np.where(ok, np.maximum(end - (l4 + 8), 0), plen_out)

    tcp = has_l4 & (proto == PROTO_TCP)
    if tcp.any():
        b, ok = r.take(np.where(tcp, l4, -1), 20)
        ok &= tcp
        status[tcp & ~ok] |= ST_TRUNCATED
        sport = np.where(ok, (b[:, 0].astype(np.int64) << 8) | b[:, 1], sport)
        dport = np.where(ok, (b[:, 2].astype(np.int64) << 8) | b[:, 3], dport)
        seq = np.ascontiguousarray(b[:, 4:8]).view(">u4")[:, 0].astype(np.int64)
        doff = (b[:, 12] >> 4).astype(np.int64) * 4
        bad = ok & (doff < 20)
        status[bad] |= ST_MALFORMED
        ok &= ~bad
        tseq = np.where(ok, seq, tseq)
        tflags = np.where(ok, b[:, 13], tflags)
        poff = np.where(ok, l4 + doff, poff)
        plen_out = np.where(ok, np.maximum(ip_end - (l4 + doff), 0), plen_out)

    # payload bytes are never past the captured record
    plen_out = np.clip(np.minimum(plen_out, chunk.caplen - poff), 0, None)
    abs_off = chunk.data_off + poff

    # ---- RFC 7983 class of UDP and TCP payloads
    cls = np.zeros(n, dtype=np.uint8)
    has = plen_out > 0
    if has.any():
        last = len(buf) - 1
        b0 = buf[np.minimum(np.where(has, abs_off, 0), last)]
        cls = np.where(has, _FIRST_BYTE[b0], CLASS_NONE).astype(np.uint8)
        rtp_like = cls == CLASS_RTP
        if rtp_like.any():
            two = rtp_like & (plen_out >= 2)
            b1 = buf[np.minimum(np.where(two, abs_off + 1, 0), last)]
            cls[two & (b1 >= 192) & (b1 <= 223)] = CLASS_RTCP

    frame = np.arange(chunk.first_frame, chunk.first_frame + n, dtype=np.int64)
    return PacketBatch(
        buf=buf,
        frame=frame,
        ts_ns=chunk.ts_ns,
        caplen=chunk.caplen,
        origlen=chunk.origlen,
        linktype=chunk.linktype,
        ip_version=ipv.astype(np.uint8),
        src_hi=src_hi,
        src_lo=src_lo,
        dst_hi=dst_hi,
        dst_lo=dst_lo,
        proto=proto.astype(np.uint8),
        sport=sport.astype(np.int32),
        dport=dport.astype(np.int32),
        payload_off=abs_off,
        payload_len=plen_out,
        dscp=dscp.astype(np.uint8),
        ttl=ttl.astype(np.uint8),
        tcp_flags=tflags.astype(np.uint8),
        tcp_seq=tseq,
        status=status,
        cls=cls,
    )
