"""Header layouts gathered for many packets at once: the ethertype chain (VLAN tags, MPLS labels, bridged
Ethernet), IPv4/IPv6 and the UDP/TCP ports.

Every gather goes through `Reader`, relative to each packet's start and bounded by its end, so a header
that lies past the captured bytes reads as absent instead of failing. The same functions decode the
outer headers, the packet inside a tunnel, and the packet an ICMP error quotes: only the rows, their
start offsets and their end bound differ.
"""

from __future__ import annotations

import numpy as np

# status bits of a packet
ST_SNAPLEN = 1  # caplen < origlen
ST_TRUNCATED = 2  # a header we needed lies past the captured bytes
ST_FRAGMENT = 4  # an IP fragment (not reassembled)
ST_MALFORMED = 8  # a header field is impossible (IHL < 5, bad lengths)
ST_UNKNOWN_LINK = 16  # link type we do not decode
ST_EMPTY = 32  # zero-length record
ST_BAD_TIME = 64  # no usable timestamp: it carries the time of the packet before it

ETH_VLAN = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad (QinQ outer tag), the pre-standard QinQ tag
ETH_MPLS = (0x8847, 0x8848)  # unicast, multicast
ETH_TEB = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows (GRE, VXLAN, ERSPAN)
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
IPV6_EXT = (0, 43, 60, 135, 139, 140, 253, 254)  # skipped with (len+1)*8
PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMP6, PROTO_ESP, PROTO_AH, PROTO_GRE = 6, 17, 1, 58, 50, 51, 47
V4_MAPPED = np.uint64(0x0000FFFF00000000)
MAX_TAGS = 6  # VLAN tags, label stacks and bridged frames followed before giving up
MAX_LABELS = 8


class Reader:
    """Bounds-checked gathers relative to each packet's start."""

    def __init__(self, buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> None:
        self.buf = buf
        self.start = start
        self.end = start + length
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

    def u16(self, rel: np.ndarray, little: bool = False) -> tuple[np.ndarray, np.ndarray]:
        v, ok = self._int(rel, "<u2" if little else ">u2")
        return v.astype(np.int64), ok

    def u32(self, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v, ok = self._int(rel, ">u4")
        return v.astype(np.int64), ok


def ethertype_chain(
    r: Reader, et: np.ndarray, ok: np.ndarray, off: np.ndarray, todo: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """From an ethertype `et` whose payload starts at `off`, follow VLAN tags, MPLS label stacks and
    bridged Ethernet frames to an IP header: (ip version or 0, its offset, bytes present, MPLS seen)."""
    mpls_seen = np.zeros(et.size, dtype=bool)
    for _ in range(MAX_TAGS):
        live = todo & ok
        vlan = live & np.isin(et, ETH_VLAN)
        mpls = live & ((et == ETH_MPLS[0]) | (et == ETH_MPLS[1]))
        teb = live & (et == ETH_TEB)
        if not (vlan.any() or mpls.any() or teb.any()):
            break
        for m, at, size in ((vlan, 2, 4), (teb, 12, 14)):  # the next ethertype and the header's size
            if m.any():
                et2, ok2 = r.u16(off + at)
                et, ok, off = np.where(m, et2, et), np.where(m, ok2, ok), np.where(m, off + size, off)
        if mpls.any():
            mpls_seen |= mpls
            m = mpls.copy()
            for _ in range(MAX_LABELS):  # 4-byte labels until the bottom-of-stack bit
                b, okb = r.u8(off + 2)
                ok = np.where(m, ok & okb, ok)
                bottom = m & okb & ((b & 1) == 1)
                off = np.where(m & okb, off + 4, off)
                m &= okb & ~bottom
                if not m.any():
                    break
            ok &= ~m  # a stack deeper than MAX_LABELS is not followed
            nib, okn = r.u8(off)
            v = nib >> 4  # no next-protocol field after MPLS: IP says so in its first nibble
            et = np.where(mpls, np.where(v == 4, ETH_IPV4, np.where(v == 6, ETH_IPV6, 0)), et)
            ok = np.where(mpls, ok & okn, ok)
    ipv = np.where(todo & ok & (et == ETH_IPV4), 4, np.where(todo & ok & (et == ETH_IPV6), 6, 0))
    return ipv, off, ok, mpls_seen


class Headers:
    """IP and transport fields of n packets; offsets are relative to each packet's start."""

    FIELDS = (
        "ipv", "proto", "src_hi", "src_lo", "dst_hi", "dst_lo", "dscp", "ttl", "l4", "ip_end", "first_frag",
        "sport", "dport", "poff", "plen", "tflags", "tseq",
    )  # fmt: skip

    def __init__(self, **arrays: np.ndarray) -> None:
        self.__dict__.update(arrays)

    def put(self, rows: np.ndarray, other: Headers, sel: np.ndarray) -> None:
        """Overwrite rows `rows[sel]` with `other`'s rows `sel` (the packet inside a tunnel)."""
        dst = rows[sel]
        for f in self.FIELDS:
            getattr(self, f)[dst] = getattr(other, f)[sel]


def network(r: Reader, l3: np.ndarray, ipv: np.ndarray, limit: np.ndarray, status: np.ndarray) -> Headers:
    """IPv4/IPv6 headers at `l3` (version `ipv`, 0 when not IP) and UDP/TCP ports after them, with no
    byte read past `limit`; damage goes into `status`."""
    n = l3.size
    ipv = ipv.copy()
    proto = np.full(n, 255, dtype=np.int64)
    l4 = np.zeros(n, dtype=np.int64)
    ip_end = limit.copy()  # transport data ends here (Ethernet padding excluded)
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
        end4 = np.where(tot >= ihl, l3 + tot, limit)
        status[good & (tot > 0) & (tot < ihl)] |= ST_MALFORMED
        ip_end = np.where(good, np.minimum(end4, limit), ip_end)
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
        ip_end = np.where(good & (plen > 0), np.minimum(l3 + 40 + plen, limit), ip_end)
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

    # ---- transport
    sport = np.zeros(n, dtype=np.int64)
    dport = np.zeros(n, dtype=np.int64)
    poff = np.zeros(n, dtype=np.int64)
    plen_out = np.zeros(n, dtype=np.int64)
    tflags = np.zeros(n, dtype=np.int64)
    tseq = np.zeros(n, dtype=np.int64)
    has_l4 = (ipv > 0) & first_frag

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

    # payload bytes are never past the bound
    plen_out = np.clip(np.minimum(plen_out, limit - poff), 0, None)
    return Headers(
        ipv=ipv, proto=proto, src_hi=src_hi, src_lo=src_lo, dst_hi=dst_hi, dst_lo=dst_lo, dscp=dscp, ttl=ttl,
        l4=l4, ip_end=ip_end, first_frag=first_frag, sport=sport, dport=dport, poff=poff, plen=plen_out,
        tflags=tflags, tseq=tseq,
    )  # fmt: skip
