"""The rows the media stage consumes: every RTP/RTCP candidate packet, direct or relayed, as columns.

The dissect stage fills a MediaBatch per PacketBatch. For relayed media the media 5-tuple is the
inner one (relayed address <-> peer, zeros where the capture missed the TURN signalling that names
it) and the wire 5-tuple is client <-> relay. RTP header fields come from numpy gathers; nothing here
runs per packet except for the rare media found inside Send/Data indications or TCP framing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..capture.addresses import addr_halves
from .rtp import RtpColumns, rtp_columns

CHANNEL_NONE = 0
CHANNEL_INDICATION = -1  # relayed in a TURN Send/Data indication
CHANNEL_MS_MULTIPLEX = 0xFF10


class MediaBatch(NamedTuple):
    """One row per RTP or RTCP candidate packet (structure checked: V=2, header fits)."""

    file: int
    buf: np.ndarray  # uint8; the RTP/RTCP packet of row i is buf[off[i] : off[i] + length[i]]
    off: np.ndarray  # int64
    length: np.ndarray  # int64, RTP/RTCP packet length (without TURN framing or padding)
    frame: np.ndarray  # int64
    ts_ns: np.ndarray  # int64
    src_hi: np.ndarray  # uint64 media 5-tuple (inner when relayed; 0 when unknown)
    src_lo: np.ndarray
    dst_hi: np.ndarray
    dst_lo: np.ndarray
    sport: np.ndarray  # int32
    dport: np.ndarray
    wire_src_hi: np.ndarray  # uint64 5-tuple of the packet on the wire
    wire_src_lo: np.ndarray
    wire_dst_hi: np.ndarray
    wire_dst_lo: np.ndarray
    wire_sport: np.ndarray
    wire_dport: np.ndarray
    transport: np.ndarray  # uint8 IP protocol on the wire (17 UDP, 6 TCP)
    wire_len: np.ndarray  # int64 transport payload bytes on the wire
    dscp: np.ndarray  # uint8
    relayed: np.ndarray  # bool
    channel: np.ndarray  # int32: 0 direct, 0x4000-0x4FFF TURN channel, -1 Send/Data, 0xFF10 MS-TURN multiplex
    rtcp: np.ndarray  # bool (RFC 5761: second byte 192-223)
    pt: np.ndarray  # uint8 RTP payload type (7 bits); RTCP packet type of the first packet for RTCP rows
    marker: np.ndarray  # bool
    seq: np.ndarray  # int64 (uint16 values); 0 for RTCP
    rtp_ts: np.ndarray  # int64 (uint32 values); 0 for RTCP
    ssrc: np.ndarray  # int64 (uint32 values); RTCP: the sender SSRC (bytes 4-7)
    payload_len: np.ndarray  # int64 RTP payload bytes (header and padding excluded); RTCP: length
    extension: np.ndarray  # bool
    ext_profile: np.ndarray  # int64
    padding: np.ndarray  # bool RTP P bit (False for RTCP)

    def __len__(self) -> int:
        return int(self.frame.size)


def rtcp_header_ok(buf: np.ndarray, off: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Version 2, and the first packet's length field fits the datagram (RFC 3550 6.4)."""
    end = len(buf) - 1
    first = buf[np.minimum(off, end)]
    words = (buf[np.minimum(off + 2, end)].astype(np.int64) << 8) | buf[np.minimum(off + 3, end)]
    return (length >= 8) & ((first >> 6) == 2) & ((words + 1) * 4 <= length)


def build(
    file: int,
    buf: np.ndarray,
    off: np.ndarray,
    length: np.ndarray,
    frame: np.ndarray,
    ts_ns: np.ndarray,
    media: tuple[np.ndarray, ...],
    wire: tuple[np.ndarray, ...],
    transport: np.ndarray,
    wire_len: np.ndarray,
    dscp: np.ndarray,
    relayed: np.ndarray,
    channel: np.ndarray,
    cols: RtpColumns | None = None,
) -> MediaBatch | None:
    """Gather the RTP/RTCP header columns and keep the rows whose structure holds.
    media and wire: (src_hi, src_lo, dst_hi, dst_lo, sport, dport)."""
    n = off.size
    if n == 0:
        return None
    end = len(buf) - 1
    b1 = buf[np.minimum(off + 1, end)]
    is_rtcp = (length >= 8) & (b1 >= 192) & (b1 <= 223)
    cols = rtp_columns(buf, off, length) if cols is None else cols
    keep = np.where(is_rtcp, is_rtcp & rtcp_header_ok(buf, off, length), cols.valid)
    if not keep.any():
        return None
    k = np.flatnonzero(keep)
    r = is_rtcp[k]
    o = off[k]
    sender = np.zeros(k.size, dtype=np.int64)
    if r.any():
        ro = o[r] + 4
        b = [buf[np.minimum(ro + i, end)].astype(np.int64) for i in range(4)]
        sender[r] = (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]
    rtp = ~r
    return MediaBatch(
        file,
        buf,
        o,
        length[k],
        frame[k],
        ts_ns[k],
        *(a[k] for a in media[:4]),
        media[4][k].astype(np.int32),
        media[5][k].astype(np.int32),
        *(a[k] for a in wire[:4]),
        wire[4][k].astype(np.int32),
        wire[5][k].astype(np.int32),
        transport[k].astype(np.uint8),
        wire_len[k],
        dscp[k].astype(np.uint8),
        relayed[k],
        channel[k].astype(np.int32),
        r,
        np.where(r, b1[k], cols.pt[k]).astype(np.uint8),
        cols.marker[k] & rtp,
        np.where(rtp, cols.seq[k], 0).astype(np.int64),
        np.where(rtp, cols.ts[k], 0).astype(np.int64),
        np.where(rtp, cols.ssrc[k].astype(np.int64), sender),
        np.where(rtp, cols.payload_len[k], length[k]).astype(np.int64),
        cols.extension[k] & rtp,
        np.where(rtp, cols.ext_profile[k], 0).astype(np.int64),
        cols.padding[k] & rtp,
    )


def from_packets(file: int, rows: list[tuple]) -> MediaBatch | None:
    """A MediaBatch from media found one by one (inside Send/Data indications, TCP framing):
    rows of (frame, ts_ns, src, sport, dst, dport, wire (src, sport, dst, dport), transport, wire_len,
    channel, bytes, relayed)."""
    if not rows:
        return None
    datas = [r[10] for r in rows]
    lens = np.array([len(d) for d in datas], dtype=np.int64)
    off = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    buf = np.frombuffer(b"".join(datas) + b"\0" * 16, dtype=np.uint8)

    def halves(addrs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        hl = [addr_halves(a) if a else (0, 0) for a in addrs]
        return np.array([h for h, _ in hl], dtype=np.uint64), np.array([lo for _, lo in hl], dtype=np.uint64)

    sh, sl = halves([r[2] for r in rows])
    dh, dl = halves([r[4] for r in rows])
    wsh, wsl = halves([r[6][0] for r in rows])
    wdh, wdl = halves([r[6][2] for r in rows])
    i64 = lambda vals: np.array(vals, dtype=np.int64)  # noqa: E731
    return build(
        file,
        buf,
        off,
        lens,
        i64([r[0] for r in rows]),
        i64([r[1] for r in rows]),
        (sh, sl, dh, dl, i64([r[3] for r in rows]), i64([r[5] for r in rows])),
        (wsh, wsl, wdh, wdl, i64([r[6][1] for r in rows]), i64([r[6][3] for r in rows])),
        i64([r[7] for r in rows]),
        i64([r[8] for r in rows]),
        np.zeros(len(rows), dtype=np.uint8),
        np.array([r[11] for r in rows], dtype=bool),
        i64([r[9] for r in rows]),
    )
