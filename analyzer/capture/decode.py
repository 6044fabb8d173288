"""Link, IP and transport headers for a whole chunk of records at once.

Every field is gathered with numpy from the chunk's buffer at per-packet offsets; a read past a
record's captured bytes yields "absent" and marks the packet snaplen-cut instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formats import RecordChunk
from .headers import (  # noqa: F401 - the status bits and protocol numbers are imported from here elsewhere
    ETH_IPV4,
    ETH_IPV6,
    ETH_VLAN,
    IPV6_EXT,
    PROTO_AH,
    PROTO_ESP,
    PROTO_GRE,
    PROTO_ICMP,
    PROTO_ICMP6,
    PROTO_TCP,
    PROTO_UDP,
    ST_BAD_TIME,
    ST_EMPTY,
    ST_FRAGMENT,
    ST_MALFORMED,
    ST_SNAPLEN,
    ST_TRUNCATED,
    ST_UNKNOWN_LINK,
    V4_MAPPED,
    Reader,
    ethertype_chain,
    network,
)
from .icmp import IcmpErrors, icmp_errors
from .tunnels import ENC_MPLS, inner

LINKTYPE_NFLOG = 239
NFULA_PAYLOAD = 9  # the NFLOG TLV that holds the packet
MAX_TUNNELS = 3  # tunnels inside tunnels followed

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
    encap: np.ndarray  # uint8 ENC_* bits: the tunnels (and MPLS) the packet was found inside
    icmp: IcmpErrors | None = None  # the ICMP error messages of this batch, with what they quote

    def __len__(self) -> int:
        return int(self.frame.size)

    def payload(self, i: int) -> bytes:
        """The transport payload of row i, as bytes (for the rare per-packet dissectors)."""
        o = int(self.payload_off[i])
        return self.buf[o : o + int(self.payload_len[i])].tobytes()


def decode(chunk: RecordChunk) -> PacketBatch:
    """Decode link, network and transport headers of every record in the chunk; the packet inside a
    tunnel replaces the tunnel's own headers (`encap` says which tunnels)."""
    n = len(chunk)
    buf = chunk.buf
    r = Reader(buf, chunk.data_off, chunk.caplen)
    status = np.zeros(n, dtype=np.uint8)
    status[chunk.caplen < chunk.origlen] |= ST_SNAPLEN
    status[chunk.caplen == 0] |= ST_EMPTY
    if chunk.ts_bad is not None:
        status[chunk.ts_bad] |= ST_BAD_TIME
    l3, ipv, encap = _link(r, chunk.linktype, status)
    h = network(r, l3, ipv, chunk.caplen, status)
    encap |= _tunnels(r, h, status)
    icmp = icmp_errors(r, h)

    # ---- RFC 7983 class of UDP and TCP payloads
    abs_off = chunk.data_off + h.poff
    plen_out = h.plen
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
        ip_version=h.ipv.astype(np.uint8),
        src_hi=h.src_hi,
        src_lo=h.src_lo,
        dst_hi=h.dst_hi,
        dst_lo=h.dst_lo,
        proto=h.proto.astype(np.uint8),
        sport=h.sport.astype(np.int32),
        dport=h.dport.astype(np.int32),
        payload_off=abs_off,
        payload_len=plen_out,
        dscp=h.dscp.astype(np.uint8),
        ttl=h.ttl.astype(np.uint8),
        tcp_flags=h.tflags.astype(np.uint8),
        tcp_seq=h.tseq,
        status=status,
        cls=cls,
        encap=encap,
        icmp=icmp,
    )


def _link(r: Reader, lt: np.ndarray, status: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offset of the network header, IP version or 0, ENC bits) from each packet's link type."""
    n = lt.size
    l3 = np.zeros(n, dtype=np.int64)
    ipv = np.zeros(n, dtype=np.int64)
    encap = np.zeros(n, dtype=np.uint8)
    known = np.zeros(n, dtype=bool)

    # links that name an ethertype: Ethernet, Linux cooked (SLL), Linux cooked v2 (SLL2)
    chained = np.zeros(n, dtype=bool)
    et = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    off = np.zeros(n, dtype=np.int64)
    for code, at, size in ((1, 12, 14), (113, 14, 16), (276, 0, 20)):
        m = lt == code
        if m.any():
            e, o = r.u16(np.full(n, at, dtype=np.int64))
            chained |= m
            et, ok, off = np.where(m, e, et), np.where(m, o, ok), np.where(m, size, off)
    if chained.any():
        known |= chained
        v, pos, ok, mpls = ethertype_chain(r, et, ok, off, chained)
        l3 = np.where(chained, pos, l3)
        ipv = np.where(chained, v, ipv)
        encap[mpls] |= ENC_MPLS
        status[chained & ~ok] |= ST_TRUNCATED

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

    nflog = lt == LINKTYPE_NFLOG
    if nflog.any():
        known |= nflog
        pos, found = _nflog_payload(r, nflog)
        b0, ok = r.u8(pos)
        v = b0 >> 4
        l3 = np.where(nflog, pos, l3)
        ipv = np.where(found & ok & ((v == 4) | (v == 6)), v, ipv)
        status[nflog & ~found] |= ST_TRUNCATED

    status[~known] |= ST_UNKNOWN_LINK
    return l3, ipv, encap


def _nflog_payload(r: Reader, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NFLOG (LINKTYPE 239): a 4-byte header, then TLVs (length including the 4-byte TLV header,
    padded to 4) in the capturing host's byte order; the packet is the NFULA_PAYLOAD value. Types are
    small numbers, so a first type read above 255 means the other byte order."""
    n = m.size
    pos = np.full(n, 4, dtype=np.int64)
    t_le, _ = r.u16(pos + 2, little=True)
    little = t_le <= 0xFF
    found = np.zeros(n, dtype=bool)
    live = m.copy()
    for _ in range(32):
        if not live.any():
            break
        ln_le, ok = r.u16(pos, little=True)
        ty_le, _ = r.u16(pos + 2, little=True)
        ln_be, _ = r.u16(pos)
        ty_be, _ = r.u16(pos + 2)
        ln = np.where(little, ln_le, ln_be)
        ty = np.where(little, ty_le, ty_be) & 0x7FFF  # without the nested-attribute flag
        live &= ok & (ln >= 4)
        hit = live & (ty == NFULA_PAYLOAD)
        found |= hit
        pos = np.where(hit, pos + 4, np.where(live, pos + ((ln + 3) & ~3), pos))
        live &= ~hit
    return pos, found


def _tunnels(r: Reader, h, status: np.ndarray) -> np.ndarray:
    """Replace the headers of tunnelled packets by their inner packet's; returns the ENC bits."""
    n = h.ipv.size
    encap = np.zeros(n, dtype=np.uint8)
    failed = np.zeros(n, dtype=bool)
    for _ in range(MAX_TUNNELS):
        t = inner(r, h, failed)
        if t.rows.size == 0:
            break
        rows = t.rows
        sub = Reader(r.buf, r.start[rows], h.ip_end[rows])  # the inner packet ends where the outer IP does
        ones = np.ones(rows.size, dtype=bool)
        v, l3, _, mpls = ethertype_chain(sub, t.et, ones, t.off, ones)
        sub_status = np.zeros(rows.size, dtype=np.uint8)
        h2 = network(sub, l3, v, h.ip_end[rows], sub_status)
        good = h2.ipv > 0
        failed[rows[~good]] = True  # the tunnel's own headers stay: its payload is no IP we can read
        h.put(rows, h2, good)
        status[rows[good]] |= sub_status[good]
        encap[rows[good]] |= (t.bit[good] | np.where(mpls[good], ENC_MPLS, 0)).astype(np.uint8)
    return encap
