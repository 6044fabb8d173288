"""Tunnels whose inner packet is the one a call analysis needs: GTP-U (mobile networks), VXLAN, GRE
with ERSPAN type I/II/III or MPLS inside. Each is found by its port or protocol number and a strict
look at its header, for all packets at once; `inner` says where the inner packet's ethertype chain
starts, and decode.py decodes it as it decoded the outer one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .headers import ETH_IPV4, ETH_IPV6, ETH_TEB, PROTO_GRE, PROTO_UDP, Headers, Reader

PORT_GTPU = 2152  # 3GPP TS 29.281
PORT_VXLAN = 4789  # RFC 7348
GTP_GPDU = 255  # message type carrying a user packet
GRE_ERSPAN2 = 0x88BE  # type II with the sequence bit; type I without it
GRE_ERSPAN3 = 0x22EB

# encapsulation bits of a packet (PacketBatch.encap)
ENC_MPLS, ENC_GRE, ENC_ERSPAN, ENC_VXLAN, ENC_GTPU = 1, 2, 4, 8, 16
ENC_NAMES = {ENC_MPLS: "MPLS", ENC_GRE: "GRE", ENC_ERSPAN: "ERSPAN", ENC_VXLAN: "VXLAN", ENC_GTPU: "GTP-U"}
MAX_GTP_EXT = 4


class Inner(NamedTuple):
    rows: np.ndarray  # packet indices with a tunnel
    et: np.ndarray  # ethertype of what the tunnel carries
    off: np.ndarray  # where it starts (relative to the packet)
    bit: np.ndarray  # ENC_* of this tunnel


def inner(r: Reader, h: Headers, skip: np.ndarray) -> Inner:
    """The tunnels among the packets whose current headers `h` are decoded (rows in `skip` excluded)."""
    udp = (h.ipv > 0) & (h.proto == PROTO_UDP) & (h.plen >= 8) & ~skip
    gtp = udp & ((h.sport == PORT_GTPU) | (h.dport == PORT_GTPU))
    vxl = udp & ((h.sport == PORT_VXLAN) | (h.dport == PORT_VXLAN)) & (h.plen >= 8 + 14)
    gre = (h.ipv > 0) & (h.proto == PROTO_GRE) & h.first_frag & ~skip
    if not (gtp.any() or vxl.any() or gre.any()):
        return Inner(*(np.zeros(0, dtype=np.int64),) * 4)
    n = h.ipv.size
    et = np.zeros(n, dtype=np.int64)
    off = np.zeros(n, dtype=np.int64)
    bit = np.zeros(n, dtype=np.int64)
    found = np.zeros(n, dtype=bool)
    if gtp.any():
        m, o = _gtpu(r, h.poff, gtp)
        nib, ok = r.u8(o)
        v = nib >> 4
        m &= ok & ((v == 4) | (v == 6))
        et = np.where(m, np.where(v == 4, ETH_IPV4, ETH_IPV6), et)
        off, bit, found = np.where(m, o, off), np.where(m, ENC_GTPU, bit), found | m
    if vxl.any():
        et = np.where(vxl, ETH_TEB, et)
        off, bit, found = np.where(vxl, h.poff + 8, off), np.where(vxl, ENC_VXLAN, bit), found | vxl
    if gre.any():
        m, e, o, b = _gre(r, h.l4, gre)
        et, off, bit, found = np.where(m, e, et), np.where(m, o, off), np.where(m, b, bit), found | m
    rows = np.flatnonzero(found)
    return Inner(rows, et[rows], off[rows], bit[rows])


def _gtpu(r: Reader, at: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GTPv1-U G-PDUs: (is one, offset of the user packet). 8 bytes, 4 more when E, S or PN is set,
    then the extension headers (length in 4-byte units, the next type in their last byte)."""
    flags, ok1 = r.u8(at)
    mtype, ok2 = r.u8(at + 1)
    m = m & ok1 & ok2 & ((flags >> 5) == 1) & ((flags & 0x10) != 0) & (mtype == GTP_GPDU)
    o = at + 8 + np.where((flags & 0x07) != 0, 4, 0)
    ext = m & ((flags & 0x04) != 0)
    nxt, okn = r.u8(at + 11)
    m &= ~ext | okn
    ext &= okn & (nxt != 0)
    for _ in range(MAX_GTP_EXT):
        if not ext.any():
            break
        ln, okl = r.u8(o)
        ln = ln * 4
        last, okx = r.u8(o + ln - 1)
        bad = ext & (~okl | (ln == 0) | ~okx)
        m &= ~bad
        ext &= ~bad
        o = np.where(ext, o + ln, o)
        ext &= last != 0
    return m & ~ext, o


def _gre(r: Reader, at: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GRE version 0 (RFC 2784/2890): (carries something we follow, its ethertype, offset, ENC bits).
    ERSPAN II adds 8 bytes after GRE, ERSPAN III 12 (+8 with the O flag), then an Ethernet frame."""
    flags, ok1 = r.u16(at)
    proto, ok2 = r.u16(at + 2)
    m = m & ok1 & ok2 & ((flags & 0x0007) == 0) & ((flags & 0x4000) == 0)  # no source routing
    seq_bit = (flags & 0x1000) != 0
    o = at + 4 + 4 * ((flags & 0x8000) != 0) + 4 * ((flags & 0x2000) != 0) + 4 * seq_bit
    bit = np.full(at.size, 2, dtype=np.int64)  # ENC_GRE
    span2 = m & (proto == GRE_ERSPAN2)
    span3 = m & (proto == GRE_ERSPAN3)
    if span3.any():
        last, ok3 = r.u8(o + 11)
        m &= ~span3 | ok3
        o = np.where(span3, o + 12 + np.where((last & 1) != 0, 8, 0), o)
    o = np.where(span2 & seq_bit, o + 8, o)  # type I (no sequence number) has no ERSPAN header
    span = span2 | span3
    bit = np.where(span, bit | ENC_ERSPAN, bit)
    et = np.where(span, ETH_TEB, proto)
    return m, et, o, bit
