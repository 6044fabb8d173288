"""RTCP sender and receiver reports, one row per report block, with the round-trip time they give.

RTCP is a few packets per second per stream, so each compound is parsed on its own (dissect.rtcp).
SRTCP with the E flag set shows only its first 8 bytes: such a compound gives one row (packet type
and sender SSRC) and marks its path as SRTCP.

Round-trip time (RFC 3550 6.4.1): a report block's LSR names the sender report it answers (the middle
32 bits of that SR's NTP timestamp) and DLSR how long the reporter held it. The capture clock stands
in for the SR sender's: RTT = (capture time of the RR - capture time of the SR whose NTP middle
matches LSR) - DLSR. That is exact when the capture runs on the SR sender's host and the network
round trip beyond the capture point otherwise; no SR in the capture, no RTT (the reporter's NTP clock
is not ours to compare with).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..capture.addresses import addr_str
from ..dissect.media_rows import MediaBatch
from ..dissect.rtcp import ntp_middle32, parse_rtcp

MAX_SR_MEMORY = 100_000

REPORT_COLUMNS = (
    "file", "frame", "ts_ns", "src", "sport", "dst", "dport", "relayed", "srtcp", "encrypted", "packet_type",
    "reporter_ssrc", "source_ssrc", "fraction_lost", "cumulative_lost", "highest_seq", "jitter", "jitter_ms",
    "lsr", "dlsr", "rtt_ms", "sr_ntp", "sr_rtp_ts", "sr_packets", "sr_octets", "malformed",
)


class RtcpTracker:
    """Report rows of one capture file, SR arrival times for RTT, and SRTCP / plain RTCP per path."""

    def __init__(self, file: int) -> None:
        self.file = file
        self.rows: list[dict] = []
        self.sr_seen: dict[tuple[int, int], int] = {}  # (SR sender SSRC, NTP middle 32 bits) -> capture time
        self.path_srtcp: dict[tuple, Counter] = {}  # unordered endpoint pair -> Counter(srtcp=..., plain=...)
        self.feedback: dict[int, Counter] = {}  # media SSRC -> Counter of feedback names (NACK, PLI, ...)
        self.packets = 0


    def add(self, mb: MediaBatch, idx: np.ndarray) -> None:
        for i in idx.tolist():
            o, n = int(mb.off[i]), int(mb.length[i])
            comp = parse_rtcp(mb.buf[o : o + n].tobytes())
            self.packets += 1
            src = (addr_str(int(mb.src_hi[i]), int(mb.src_lo[i])), int(mb.sport[i]))
            dst = (addr_str(int(mb.dst_hi[i]), int(mb.dst_lo[i])), int(mb.dport[i]))
            wsrc = (addr_str(int(mb.wire_src_hi[i]), int(mb.wire_src_lo[i])), int(mb.wire_sport[i]))
            wdst = (addr_str(int(mb.wire_dst_hi[i]), int(mb.wire_dst_lo[i])), int(mb.wire_dport[i]))
            for a, b in {(src, dst), (wsrc, wdst)}:
                key = (a, b) if a <= b else (b, a)
                self.path_srtcp.setdefault(key, Counter())["srtcp" if comp.srtcp else "plain"] += 1
            ts, frame = int(mb.ts_ns[i]), int(mb.frame[i])
            base = {"file": self.file, "frame": frame, "ts_ns": ts, "src": src[0], "sport": src[1], "dst": dst[0],
                    "dport": dst[1], "relayed": bool(mb.relayed[i]), "srtcp": comp.srtcp,
                    "encrypted": bool(comp.srtcp_encrypted), "malformed": comp.malformed}
            for p in comp.packets:
                if p.fb_name and p.media_ssrc is not None:
                    self.feedback.setdefault(p.media_ssrc, Counter())[p.fb_name] += 1
                if p.name not in ("SR", "RR") and not comp.srtcp_encrypted:
                    continue
                row = dict(base, packet_type=p.name, reporter_ssrc=p.ssrc, malformed=p.malformed or comp.malformed)
                if p.sender_info is not None:
                    si = p.sender_info
                    row.update(sr_ntp=si.ntp_ts, sr_rtp_ts=si.rtp_ts, sr_packets=si.packets, sr_octets=si.octets)
                    if p.ssrc is not None:
                        self._remember_sr(p.ssrc, ntp_middle32(si.ntp_ts), ts)
                if not p.reports:
                    self.rows.append(row)
                for rb in p.reports:
                    self.rows.append(dict(
                        row, source_ssrc=rb.ssrc, fraction_lost=rb.fraction_lost / 256.0,
                        cumulative_lost=rb.cumulative_lost, highest_seq=rb.highest_seq, jitter=rb.jitter,
                        lsr=rb.lsr, dlsr=rb.dlsr, rtt_ms=self._rtt_ms(rb.ssrc, rb.lsr, rb.dlsr, ts),
                    ))

    def _remember_sr(self, ssrc: int, middle: int, ts: int) -> None:
        self.sr_seen[(ssrc, middle)] = ts
        if len(self.sr_seen) > MAX_SR_MEMORY:
            del self.sr_seen[next(iter(self.sr_seen))]

    def _rtt_ms(self, source_ssrc: int, lsr: int, dlsr: int, ts: int) -> float | None:
        if lsr == 0:
            return None
        sent = self.sr_seen.get((source_ssrc, lsr))
        if sent is None:
            return None
        rtt = (ts - sent) / 1e6 - dlsr / 65.536
        return rtt if rtt >= 0 else None

    def srtcp_on(self, a: tuple[str, int], b: tuple[str, int]) -> Counter:
        return self.path_srtcp.get((a, b) if a <= b else (b, a), Counter())

    def finish(self, rates: dict[int, int]) -> list[dict]:
        """The report rows, with the far-end jitter in ms where the reported stream's clock rate is known."""
        for r in self.rows:
            rate = rates.get(r.get("source_ssrc"))
            if rate and r.get("jitter") is not None:
                r["jitter_ms"] = r["jitter"] / rate * 1000.0
        return self.rows
