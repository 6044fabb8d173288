"""The dissect stage: RFC 7983 demultiplexing of every UDP and TCP payload, confirmed by structure.

Per batch, numpy picks the rows worth a closer look: the control packets (STUN, DTLS, ChannelData,
MS-TURN multiplexed; about 1% of a call) go one by one to the ControlDissector; RTP and RTCP are
checked in bulk (header fields gathered with numpy, sequence runs per SSRC). TCP payloads of flows
that can carry STUN/TURN are reassembled per direction and deframed. A first-byte class that the
structure does not bear out is counted as rejected, never believed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..capture.addresses import addr_halves, addr_str, addr_strs
from ..capture.decode import CLASS_NAMES, PROTO_TCP, PROTO_UDP, ST_FRAGMENT, ST_MALFORMED, PacketBatch
from ..capture.reader import flow_keys
from ..capture.tcp import TcpReassembler
from . import media_rows
from .control import TURN_PORTS, ControlDissector, Where
from .media_rows import MediaBatch
from .rtp import RtpConfirmer, rtp_columns
from .turn import TcpDeframer, parse_channeldata

C_STUN, C_ZRTP, C_DTLS, C_CHAN, C_RTP, C_RTCP, C_OTHER = (
    CLASS_NAMES.index(n) for n in ("stun", "zrtp", "dtls", "turn-channel", "rtp", "rtcp", "other")
)
RESULT_CLASS = {"stun": "stun", "dtls": "dtls", "channeldata": "turn-channel", "ms-multiplexed": "ms-multiplexed"}


@dataclass
class DissectResult:
    """What the stage hands on: the control rows, and counts for the summary."""

    control: ControlDissector
    confirmed: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)  # the first packets a dissector could not handle, with why
    damaged_total: int = 0


DAMAGE_KIND = "packets the dissectors could not handle"


class DissectStage:
    """Consumes the PacketBatches of one capture file."""

    def __init__(self, file: int = 0, emit_media: bool = True) -> None:
        self.file = file
        self.emit_media = emit_media  # False: count and confirm media, but hand no rows on
        self.control = ControlDissector()
        self.rtp = RtpConfirmer()
        self.tcp = TcpReassembler()
        self.deframers: dict[tuple, TcpDeframer] = {}
        self.tcp_watch: set[int] = set()
        self.tcp_ignore: set[int] = set()
        self._ignore_arr = np.zeros(0, dtype=np.uint64)
        self.confirmed: Counter = Counter()
        self.rejected: Counter = Counter()
        self._rtp_invalid = 0
        self._rtcp_ok = 0
        self.damaged: list[str] = []
        self.damaged_total = 0

    def _damage(self, frame: int, exc: Exception) -> None:
        """A packet that made a dissector fail is counted (the first ones named) and the pass goes on."""
        self.damaged_total += 1
        if len(self.damaged) < 50:
            why = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.damaged.append(f"frame {frame}: a packet the dissectors could not handle ({why}); left out")

    # ------------------------------------------------------------------ per batch
    def add(self, b: PacketBatch) -> list[MediaBatch]:
        """Dissect one batch; returns the media rows found in it (for the media stage)."""
        if len(b) == 0:
            return []
        usable = (b.ip_version > 0) & (b.payload_len > 0) & ((b.status & (ST_MALFORMED | ST_FRAGMENT)) == 0)
        udp = usable & (b.proto == PROTO_UDP)
        tcp = usable & (b.proto == PROTO_TCP)
        fast = self._channel_media_rows(b, udp)
        self._control_udp(b, udp, fast)
        out = [m for m in (self._direct_media(b, udp), self._relayed_media(b, fast)) if m is not None]
        if tcp.any():
            self._tcp(b, tcp)
        if self.control.media_pending:
            m = media_rows.from_packets(self.file, self.control.media_pending)
            self.control.media_pending = []
            if m is not None:
                out.append(m)
        return out

    def _channel_media_rows(self, b: PacketBatch, udp: np.ndarray) -> np.ndarray:
        """ChannelData over UDP whose length fits and whose inner packet starts like RTP/RTCP: these are
        most of a relayed call, so they skip the per-packet path (row indices returned)."""
        ci = np.flatnonzero(udp & (b.cls == C_CHAN) & (b.payload_len >= 16))
        if ci.size == 0:
            return ci
        o, n = b.payload_off[ci], b.payload_len[ci]
        ln = (b.buf[o + 2].astype(np.int64) << 8) | b.buf[o + 3]
        inner = b.buf[np.minimum(o + 4, len(b.buf) - 1)]
        ok = (n - 4 - ln >= 0) & (n - 4 - ln <= 3) & (inner >= 128) & (inner <= 191) & (b.buf[o] <= 0x4F)
        return ci[ok]

    def _control_udp(self, b: PacketBatch, udp: np.ndarray, fast: np.ndarray) -> None:
        cls = b.cls
        ctrl = udp & ((cls == C_STUN) | (cls == C_DTLS) | (cls == C_CHAN))
        ctrl[fast] = False
        other = udp & (cls == C_OTHER) & (b.payload_len >= 12)
        if other.any():  # MS-TURN multiplexed channel 0xFF10 sits in the 'other' first-byte range
            oi = np.flatnonzero(other)
            o = b.payload_off[oi]
            ctrl[oi[(b.buf[o] == 0xFF) & (b.buf[o + 1] == 0x10)]] = True
        idx = np.flatnonzero(ctrl)
        if idx.size == 0:
            return
        src, dst = addr_strs(b.src_hi[idx], b.src_lo[idx]), addr_strs(b.dst_hi[idx], b.dst_lo[idx])
        frames, ts, sp, dp = b.frame[idx].tolist(), b.ts_ns[idx].tolist(), b.sport[idx].tolist(), b.dport[idx].tolist()
        for j, i in enumerate(idx.tolist()):
            w = Where(self.file, frames[j], ts[j], src[j], sp[j], dst[j], dp[j], "udp")
            try:
                got = self.control.payload(w, b.payload(i))
            except Exception as exc:  # one bad packet never ends the pass
                self._damage(frames[j], exc)
                continue
            if got in RESULT_CLASS:
                self.confirmed[RESULT_CLASS[got]] += 1

    def _relayed_media(self, b: PacketBatch, fast: np.ndarray) -> MediaBatch | None:
        if fast.size == 0:
            return None
        o = b.payload_off[fast]
        ch = (b.buf[o].astype(np.int64) << 8) | b.buf[o + 1]
        ln = (b.buf[o + 2].astype(np.int64) << 8) | b.buf[o + 3]
        # resolve each (path, channel) once: believable? which relayed address and peer?
        cols = (b.src_hi[fast], b.src_lo[fast], b.sport[fast], b.dst_hi[fast], b.dst_lo[fast], b.dport[fast], ch)
        key = np.stack([c.astype(np.uint64) for c in cols], axis=1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        ok = np.zeros(len(uniq), dtype=bool)
        inner = np.zeros((len(uniq), 6), dtype=np.uint64)
        for g, (sh, sl, sp, dh, dl, dp, c) in enumerate(uniq.tolist()):
            src, dst = addr_str(sh, sl), addr_str(dh, dl)
            ok[g] = self.control.channel_ok(src, sp, dst, dp, c)
            (ia, ip), (ja, jp) = self.control.channel_peers(src, sp, dst, dp, c)
            inner[g] = (*(addr_halves(ia) if ia else (0, 0)), *(addr_halves(ja) if ja else (0, 0)), ip, jp)
        good = ok[inv]
        self.control.rejected["turn-channel"] += int(np.count_nonzero(~good))
        npk = np.bincount(inv[good], minlength=len(uniq))
        nby = np.bincount(inv[good], weights=b.payload_len[fast][good], minlength=len(uniq))
        for g in np.flatnonzero(npk).tolist():
            sh, sl, sp, dh, dl, dp, c = uniq[g].tolist()
            self.control.count_relayed(addr_str(sh, sl), sp, addr_str(dh, dl), dp, c, int(npk[g]), int(nby[g]))
        rows, inv, ch, ln = fast[good], inv[good], ch[good], ln[good]
        if rows.size == 0:
            return None
        self.control.messages["TURN ChannelData"] += int(rows.size)
        self.confirmed["turn-channel"] += int(rows.size)
        m = inner[inv]
        media = (m[:, 0], m[:, 1], m[:, 2], m[:, 3], m[:, 4].astype(np.int64), m[:, 5].astype(np.int64))
        wire = (b.src_hi[rows], b.src_lo[rows], b.dst_hi[rows], b.dst_lo[rows], b.sport[rows], b.dport[rows])
        return media_rows.build(
            self.file,
            b.buf,
            b.payload_off[rows] + 4,
            ln,
            b.frame[rows],
            b.ts_ns[rows],
            media,
            wire,
            b.proto[rows],
            b.payload_len[rows],
            b.dscp[rows],
            np.ones(rows.size, dtype=bool),
            ch,
        )

    def _direct_media(self, b: PacketBatch, udp: np.ndarray) -> MediaBatch | None:
        rtp = udp & (b.cls == C_RTP)
        rtcp = udp & (b.cls == C_RTCP)
        idx = np.flatnonzero(rtp | rtcp)
        if idx.size == 0:
            return None
        # one gather of the RTP header fields serves the confirmation and the media rows
        cols = rtp_columns(b.buf, b.payload_off[idx], b.payload_len[idx])
        is_rtp = b.cls[idx] == C_RTP
        if is_rtp.any():
            valid = cols.valid[is_rtp]
            self._rtp_invalid += int(np.count_nonzero(~valid))
            self.rtp.update(flow_keys(b)[idx[is_rtp]], cols.ssrc[is_rtp], cols.seq[is_rtp], valid, cols.ts[is_rtp])
        if (~is_rtp).any():
            ci = idx[~is_rtp]
            ok = media_rows.rtcp_header_ok(b.buf, b.payload_off[ci], b.payload_len[ci])
            self._rtcp_ok += int(np.count_nonzero(ok))
            self.rejected["rtcp"] += int(np.count_nonzero(~ok))
        if not self.emit_media:
            return None
        addrs = (b.src_hi[idx], b.src_lo[idx], b.dst_hi[idx], b.dst_lo[idx], b.sport[idx], b.dport[idx])
        return media_rows.build(
            self.file,
            b.buf,
            b.payload_off[idx],
            b.payload_len[idx],
            b.frame[idx],
            b.ts_ns[idx],
            addrs,
            addrs,
            b.proto[idx],
            b.payload_len[idx],
            b.dscp[idx],
            np.zeros(idx.size, dtype=bool),
            np.zeros(idx.size, dtype=np.int32),
            cols=cols,
        )

    # ------------------------------------------------------------------ TCP
    def _tcp(self, b: PacketBatch, tcp: np.ndarray) -> None:
        keys = flow_keys(b)
        if self._ignore_arr.size:
            tcp &= ~np.isin(keys, self._ignore_arr)
        idx = np.flatnonzero(tcp)
        if idx.size == 0:
            return
        src, dst = addr_strs(b.src_hi[idx], b.src_lo[idx]), addr_strs(b.dst_hi[idx], b.dst_lo[idx])
        changed = False
        for j, i in enumerate(idx.tolist()):
            fk = int(keys[i])
            if fk in self.tcp_ignore:
                continue
            data = b.payload(i)
            sport, dport = int(b.sport[i]), int(b.dport[i])
            if fk not in self.tcp_watch:
                maybe = b.cls[i] in (C_STUN, C_CHAN) or (
                    (sport in TURN_PORTS or dport in TURN_PORTS) and data[:2] == b"\x16\x03"
                )
                if not maybe:
                    self.tcp_ignore.add(fk)
                    changed = True
                    continue
                self.tcp_watch.add(fk)
            key = (src[j], sport, dst[j], dport)
            frame, ts = int(b.frame[i]), int(b.ts_ns[i])
            deframer = self.deframers.setdefault(key, TcpDeframer())
            try:
                for piece in self.tcp.feed(key, frame, int(b.tcp_seq[i]), int(b.tcp_flags[i]), data):
                    for msg in deframer.feed(piece.data, piece.frame):
                        w = Where(self.file, msg.frame, ts, src[j], sport, dst[j], dport, "tcp")
                        self._framed(w, msg.kind, msg.payload, msg.malformed)
            except Exception as exc:  # one bad segment never ends the pass
                self._damage(frame, exc)
            if deframer.mode == "stopped" and fk not in self.tcp_ignore:
                self.tcp_ignore.add(fk)
                changed = True
        if changed:
            self._ignore_arr = np.fromiter(self.tcp_ignore, dtype=np.uint64, count=len(self.tcp_ignore))

    def _framed(self, w: Where, kind: str, payload: bytes, malformed: str | None) -> None:
        """One message out of a TCP stream (a stream found not to be TURN/ICE-TCP stops its deframer)."""
        c = self.control
        if kind == "stun":
            if c.stun(w, payload) != "rejected":
                self.confirmed["stun"] += 1
        elif kind == "channeldata":
            if c.channeldata(w, parse_channeldata(payload, tcp=True)) != "rejected":
                self.confirmed["turn-channel"] += 1
        elif kind == "ms-multiplexed":
            c.ms_multiplexed(w, payload)
        elif kind == "pseudo-tls":
            c.messages["MS-TURN pseudo-TLS"] += 1
        elif malformed is None and payload:  # an ICE-TCP or MS-TURN data frame: RTP, DTLS, ...
            if 20 <= payload[0] <= 63:
                c.dtls_datagram(w, payload)
            elif payload[0] < 128:
                c.payload(w, payload)

    # ------------------------------------------------------------------ end
    def finish(self) -> DissectResult:
        st = self.rtp
        conf = st.confirmed
        self.confirmed["rtp"] += int(st.count[conf].sum())
        self.rejected["rtp"] += int(st.count[~conf].sum()) + self._rtp_invalid
        self.confirmed["rtcp"] += self._rtcp_ok
        rejected = Counter(self.rejected)
        rejected.update(self.control.rejected)
        messages = Counter(self.control.messages)
        if self.confirmed["rtp"]:
            messages["RTP"] = self.confirmed["rtp"]
        if self._rtcp_ok:
            messages["RTCP"] = self._rtcp_ok
        return DissectResult(
            control=self.control,
            confirmed={k: v for k, v in self.confirmed.items() if v},
            rejected={k: v for k, v in rejected.items() if v},
            messages=dict(sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))),
            damaged=list(self.damaged),
            damaged_total=self.damaged_total,
        )
