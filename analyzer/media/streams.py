"""The media stage: every RTP stream of one capture file measured from its headers, chunk by chunk.

`MediaStage.add(MediaBatch)` takes the dissect stage's media rows: RTCP rows go to the RtcpTracker
(one by one: RTCP is a few packets per second per stream), RTP rows are mapped to streams and folded
into running aggregates with numpy (core.StreamState). A stream is one SSRC in one direction on one
path: the media 5-tuple (inner when relayed), the wire 5-tuple, the transport, the TURN channel.

The interarrival jitter needs the stream's clock rate before its first packet is counted. A static
payload type has it from RFC 3551. For a dynamic one the rows wait (`pending`, at most PENDING_MAX
per stream) until the stream has covered DECIDE_SPAN_NS of arrival time, then the slope of RTP
timestamp against arrival time picks the nominal rate (kind.rate_from_slope).

`finish(dtls_sessions, stun_rows)` returns a MediaResult of plain rows; analyzer.media.tables turns
them into DataFrames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..dissect.media_rows import MediaBatch
from ..dissect.rtp_tables import payload_type_info
from . import kind as K
from .core import Rows, StreamState
from .rtcp_track import RtcpTracker

DECIDE_SPAN_NS = 1_000_000_000
DECIDE_MIN_PACKETS = 10
PENDING_MAX = 2000
SAMPLE_PACKETS = 8  # payload bytes kept per stream for the plain-or-encrypted test

_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)
_S29 = np.uint64(29)


@dataclass
class StreamKey:
    src_hi: int
    src_lo: int
    sport: int
    dst_hi: int
    dst_lo: int
    dport: int
    wire_src_hi: int
    wire_src_lo: int
    wire_sport: int
    wire_dst_hi: int
    wire_dst_lo: int
    wire_dport: int
    transport: int
    relayed: bool
    channel: int
    ssrc: int


@dataclass
class MediaResult:
    """What the media stage hands on for one capture file (plain Python rows, no pandas)."""

    file: int
    streams: list[dict] = field(default_factory=list)  # one per stream (confirmed or not: column `confirmed`)
    timeseries: dict[str, np.ndarray] = field(default_factory=dict)  # columns of the 1-s bins
    rtcp_reports: list[dict] = field(default_factory=list)
    directions: list[dict] = field(default_factory=list)


def _fold(h: np.ndarray, col: np.ndarray) -> np.ndarray:
    h = (h ^ col.astype(np.uint64)) * _K1
    return h ^ (h >> _S29)


class MediaStage:
    """Consumes the MediaBatches of one capture file."""

    def __init__(self, file: int = 0) -> None:
        self.file = file
        self.state = StreamState()
        self.keys: list[StreamKey] = []
        self.rate_rule: list[str] = []
        self.rate_known: list[bool] = []
        self.samples: list[list[bytes]] = []
        self._by_hash: dict[int, int] = {}
        self.pending: dict[int, list[Rows]] = {}
        self.rtcp = RtcpTracker(file)

    # ------------------------------------------------------------------ per batch
    def add(self, mb: MediaBatch) -> None:
        if len(mb) == 0:
            return
        idx: slice | np.ndarray = slice(None)
        if mb.rtcp.any():
            self.rtcp.add(mb, np.flatnonzero(mb.rtcp))
            idx = np.flatnonzero(~mb.rtcp)
            if idx.size == 0:
                return
        sid, new = self._stream_ids(mb, idx)
        rows = Rows(sid, mb.ts_ns[idx], mb.frame[idx], mb.seq[idx], mb.rtp_ts[idx], mb.pt[idx], mb.marker[idx],
                    mb.length[idx], mb.payload_len[idx], mb.extension[idx], mb.ext_profile[idx], mb.dscp[idx],
                    mb.padding[idx])
        if new:
            self._sample(mb, idx, sid, new)
        undecided = self.state.rate[sid] == 0
        if undecided.any():
            rows = self._hold(rows, undecided)
        self.state.update(rows)

    def _stream_ids(self, mb: MediaBatch, idx) -> tuple[np.ndarray, list[int]]:
        """Stream id per row: a 64-bit hash of the stream key, each distinct hash looked up once."""
        with np.errstate(over="ignore"):
            sc = mb.ssrc[idx].astype(np.uint64) | (mb.channel[idx].astype(np.uint64) << np.uint64(32))
            h = _fold(sc, mb.src_lo[idx])
            for c in (mb.src_hi, mb.dst_hi, mb.dst_lo):
                h = _fold(h, c[idx])
            ports = (mb.sport[idx].astype(np.uint64) << np.uint64(16)) | mb.dport[idx].astype(np.uint64)
            ports |= mb.transport[idx].astype(np.uint64) << np.uint64(32)
            h = _fold(h, ports | (mb.relayed[idx].astype(np.uint64) << np.uint64(40)))
            rel = mb.relayed[idx]
            if rel.any():
                ri = np.flatnonzero(rel) if isinstance(idx, slice) else idx[rel]
                hr = h[rel]
                for c in (mb.wire_src_hi, mb.wire_src_lo, mb.wire_dst_hi, mb.wire_dst_lo):
                    hr = _fold(hr, c[ri])
                wp = (mb.wire_sport[ri].astype(np.uint64) << np.uint64(16)) | mb.wire_dport[ri].astype(np.uint64)
                h[rel] = _fold(hr, wp)
        uh, first, inv = np.unique(h, return_index=True, return_inverse=True)
        out = np.empty(uh.size, dtype=np.int64)
        new: list[int] = []
        for j, hv in enumerate(uh.tolist()):
            s = self._by_hash.get(hv)
            if s is None:
                row = int(first[j]) if isinstance(idx, slice) else int(idx[first[j]])
                s = self._register(mb, row)
                self._by_hash[hv] = s
                new.append(s)
            out[j] = s
        return out[inv.ravel()], new

    def _register(self, mb: MediaBatch, i: int) -> int:
        self.keys.append(StreamKey(
            int(mb.src_hi[i]), int(mb.src_lo[i]), int(mb.sport[i]), int(mb.dst_hi[i]), int(mb.dst_lo[i]),
            int(mb.dport[i]), int(mb.wire_src_hi[i]), int(mb.wire_src_lo[i]), int(mb.wire_sport[i]),
            int(mb.wire_dst_hi[i]), int(mb.wire_dst_lo[i]), int(mb.wire_dport[i]), int(mb.transport[i]),
            bool(mb.relayed[i]), int(mb.channel[i]), int(mb.ssrc[i]),
        ))
        self.rate_rule.append("")
        self.rate_known.append(False)
        self.samples.append([])
        return self.state.add_stream()

    def _sample(self, mb: MediaBatch, idx, sid: np.ndarray, new: list[int]) -> None:
        """The payload bytes of a new stream's first packets (RTP header excluded, SRTP tag included)."""
        pos = np.arange(len(mb))[idx]
        for s in new:
            for i in pos[sid == s][:SAMPLE_PACKETS].tolist():
                end = int(mb.off[i] + mb.length[i])
                self.samples[s].append(mb.buf[end - int(mb.payload_len[i]) : end].tobytes())

    def _hold(self, rows: Rows, undecided: np.ndarray) -> Rows:
        """Park the rows of streams without a clock rate; return the rows ready to count."""
        held = rows.take(undecided)
        ready = [rows.take(~undecided)]
        for s in np.unique(held.sid).tolist():
            self.pending.setdefault(s, []).append(held.take(held.sid == s))
            if self._decide(s, final=False):
                ready.extend(self.pending.pop(s))
        return Rows.concat(ready)

    def _decide(self, s: int, final: bool) -> bool:
        parts = self.pending[s]
        pt = int(parts[0].pt[0])
        info = payload_type_info(pt)
        if info is not None:
            self.state.rate[s] = info.clock_rate
            self.rate_rule[s] = f"static payload type {pt} ({info.encoding}) per RFC 3551"
            self.rate_known[s] = True
            return True
        ts = np.concatenate([p.ts_ns for p in parts])
        if not final and ts.size < PENDING_MAX and (ts.size < DECIDE_MIN_PACKETS or ts[-1] - ts[0] < DECIDE_SPAN_NS):
            return False
        rtp = np.concatenate([p.rtp_ts for p in parts])
        size = float(np.mean(np.concatenate([p.payload_len for p in parts])))
        self.state.rate[s], self.rate_rule[s], self.rate_known[s] = K.rate_from_slope(ts, rtp, size)
        return True

    # ------------------------------------------------------------------ end
    def finish(self, dtls_sessions=(), stun_rows=()) -> MediaResult:
        """Count the rows still waiting for a clock rate, then build the result rows."""
        from .assemble import build_result

        ready = []
        for s in list(self.pending):
            self._decide(s, final=True)
            ready.extend(self.pending.pop(s))
        if ready:
            self.state.update(Rows.concat(ready))
        self.state.flush()
        return build_result(self, list(dtls_sessions), list(stun_rows))
