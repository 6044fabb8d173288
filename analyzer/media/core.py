"""Running per-stream aggregates, updated one chunk of RTP rows at a time with numpy.

`StreamState` holds one slot per stream in growable arrays (plus a few small Python lists per stream:
payload types, extension profiles, the first gaps, the last sequence numbers for duplicate detection),
so memory grows with the number of streams and stream-seconds, never with the number of packets.

Sequence numbers (RFC 3550 A.1/A.3): each packet's distance from the previous one of its stream,
modulo 2^16, extends the sequence across wrap-around (the extended number `ext`). A jump of more than
MAX_DROPOUT either way is taken as a restart of the sender's numbering (counted in `resets`) and
bridged to one above the highest number seen so far, so a resync does not count 40,000 packets lost
nor, after a late packet, the new numbers as duplicates of old ones. expected = highest - lowest
extended number + 1; lost = expected - received (duplicates count as received, so lost can be negative,
as in the RFC). A packet at or below the highest number seen before it is late: a duplicate when the
same number was received before (the last DUP_WINDOW numbers of the stream are remembered across
chunks), else out of order. Loss runs are the holes a forward jump of the highest number opens on
arrival, corrected by each late packet by whether its neighbours had arrived (it closes a run of one,
shortens a run, or splits one); a late packet whose neighbours left the window counts as a split.

Wild sequence numbers (a foreign packet on the SSRC, a corrupted header, a packet far too late): a
packet more than MAX_MISORDER from each of the LOOKBACK packets before it, whose successor is not within
MAX_MISORDER of it, is out of sequence (`wild`, as RFC 3550 A.1 keeps such a packet on probation and drops it unless
the next one follows it). It counts as received but takes no part in the sequence arithmetic, so it
can neither open holes (expected stays what the in-sequence numbers span) nor restart the numbering.
A packet that is the last of its stream in a chunk and far from its predecessor waits for the next
chunk (`carry`), so the decision does not depend on the chunking; at the end of the capture such a
packet has no successor and is wild.

Kept per stream for the kind of repair streams (RTX, FEC): the (RTP timestamp, payload length) of
its first KEEP_TS packets without the P bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import arith as A

MAX_DROPOUT = 3000
MAX_MISORDER = 100
GAP_NS = 200_000_000
MAX_GAPS = 100
DUP_WINDOW = 512
NONE_LOW = -(1 << 62)
KEEP_TS = 4096
LOOKBACK = 3


class Rows(NamedTuple):
    """RTP rows of one or more chunks (stream id, then the header fields the stage needs)."""

    sid: np.ndarray
    ts_ns: np.ndarray
    frame: np.ndarray
    seq: np.ndarray
    rtp_ts: np.ndarray
    pt: np.ndarray
    marker: np.ndarray
    length: np.ndarray
    payload_len: np.ndarray
    extension: np.ndarray
    ext_profile: np.ndarray
    dscp: np.ndarray
    padding: np.ndarray

    def take(self, idx) -> Rows:
        return Rows(*(a[idx] for a in self))

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return parts[0] if len(parts) == 1 else Rows(*(np.concatenate(c) for c in zip(*parts, strict=True)))

    def __len__(self) -> int:
        return int(self.sid.size)


_I64 = ("last_seq", "last_ext", "max_ext", "min_ext", "last_t", "first_t", "last_rtp", "first_rtp",
        "rtp_span", "first_frame", "last_frame", "packets", "bytes", "payload_bytes", "markers", "ext_pkts",
        "dups", "ooo", "resets", "good", "pt_changes", "longest_gap", "gaps_n", "last_pt", "loss_events",
        "burst_max", "wild", "pad_pkts", "empty_pkts")
_F64 = ("jitter", "jitter_max", "jitter_sum", "rate")


class StreamState:
    """Aggregates of every stream, indexed by stream id."""

    def __init__(self) -> None:
        self.n = 0
        self.cap = 0
        self.has_prev = np.zeros(0, dtype=bool)
        for f in _I64:
            setattr(self, f, np.zeros(0, dtype=np.int64))
        for f in _F64:
            setattr(self, f, np.zeros(0, dtype=np.float64))
        self.dscp = np.zeros((0, 64), dtype=np.int64)
        self.last_raw = np.zeros((0, LOOKBACK), dtype=np.int64)
        self.pt_counts: list[dict[int, int]] = []
        self.ext_profiles: list[set[int]] = []
        self.gaps: list[list[tuple[int, int, int, int]]] = []
        self.window: list[np.ndarray] = []
        self.ts_keep: list[list[np.ndarray]] = []  # (rtp_ts << 16 | payload_len) of the first KEEP_TS packets
        self.carry: Rows | None = None  # rows held for the next chunk (see the module docstring)
        self.bins: list[tuple[np.ndarray, ...]] = []  # (sid, second, packets, bytes, expected, jsum_ms, jmax_ms,
        # first frame, last frame)

    def add_stream(self) -> int:
        if self.n == self.cap:
            self._grow(max(16, 2 * self.cap))
        self.pt_counts.append({})
        self.ext_profiles.append(set())
        self.gaps.append([])
        self.window.append(np.zeros(0, dtype=np.int64))
        self.ts_keep.append([])
        self.n += 1
        return self.n - 1

    def _grow(self, cap: int) -> None:
        def grow(a: np.ndarray) -> np.ndarray:
            out = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
            out[: a.shape[0]] = a
            return out

        for f in (*_I64, *_F64, "has_prev", "dscp", "last_raw"):
            setattr(self, f, grow(getattr(self, f)))
        self.cap = cap

    # ------------------------------------------------------------------ one chunk
    def update(self, rows: Rows, final: bool = False) -> None:
        """Fold a chunk of rows (any order of streams, arrival order within each) into the aggregates.
        Every stream in it must have its clock rate decided (rate > 0). `final`: no rows follow."""
        if self.carry is not None:
            rows = Rows.concat([self.carry, rows]) if len(rows) else self.carry
            self.carry = None
        if len(rows) == 0:
            return
        r, starts, ends, wild = self._order(rows, final)
        if r is None:
            return
        n = len(r)
        seg, pos = A.seg_index(starts, n)
        lens = ends - starts + 1
        ss = r.sid[starts]
        had = self.has_prev[ss]
        nopred = np.zeros(n, dtype=bool)
        nopred[starts[~had]] = True
        pred = ~nopred
        self._remember_raw(r, starts, ends)
        q = self._sequence(r.take(~wild)) if wild.any() else self._sequence(r)
        if wild.any():
            q = {k: _scatter(v, ~wild) for k, v in q.items()}
        late, dup, refill, good, reset, inc, hole = (q[k] for k in
                                                     ("late", "dup", "refill", "good", "reset", "inc", "hole"))
        # interarrival jitter, RFC 3550 A.8, in timestamp units
        rate = self.rate[ss]
        dt = r.ts_ns - A.shifted(r.ts_ns, starts, self.last_t[ss])
        ds = A.signed32(r.rtp_ts - A.shifted(r.rtp_ts, starts, self.last_rtp[ss]))
        dt[nopred] = 0
        ds[nopred] = 0
        x = np.abs(dt * np.repeat(rate / 1e9, lens) - ds)
        jit = A.a8_jitter(x, starts, pos, np.where(had, self.jitter[ss], 0.0))
        jit_ms = jit * np.repeat(1000.0 / rate, lens)

        ptp = A.shifted(r.pt.astype(np.int64), starts, self.last_pt[ss])
        ptc = pred & (r.pt != ptp)
        gap = dt > GAP_NS
        if gap.any():
            self._gaps(r, np.flatnonzero(gap))

        red = lambda v: A.reduce_seg(np.add, v, starts)  # noqa: E731
        new = ss[~had]
        self.first_t[new] = r.ts_ns[starts[~had]]
        self.first_frame[new] = r.frame[starts[~had]]
        self.first_rtp[new] = r.rtp_ts[starts[~had]]
        self.has_prev[ss] = True
        self.last_t[ss] = r.ts_ns[ends]
        self.last_rtp[ss] = r.rtp_ts[ends]
        self.last_pt[ss] = r.pt[ends]
        self.last_frame[ss] = r.frame[ends]
        self.rtp_span[ss] += red(ds)
        self.packets[ss] += lens
        self.bytes[ss] += red(r.length)
        self.payload_bytes[ss] += red(r.payload_len)
        self.markers[ss] += red(r.marker.astype(np.int64))
        self.ext_pkts[ss] += red(r.extension.astype(np.int64))
        self.dups[ss] += red(dup.astype(np.int64))
        self.ooo[ss] += red((late & ~dup).astype(np.int64))
        self.resets[ss] += red(reset.astype(np.int64))
        self.wild[ss] += red(wild.astype(np.int64))
        self.pad_pkts[ss] += red(r.padding.astype(np.int64))
        self.empty_pkts[ss] += red((r.payload_len == 0).astype(np.int64))
        self.good[ss] += red(good.astype(np.int64))
        self.pt_changes[ss] += red(ptc.astype(np.int64))
        self.longest_gap[ss] = np.maximum(self.longest_gap[ss], A.reduce_seg(np.maximum, dt, starts))
        self.gaps_n[ss] += red(gap.astype(np.int64))
        self.loss_events[ss] += red((hole > 0).astype(np.int64)) + red(refill)
        self.burst_max[ss] = np.maximum(self.burst_max[ss], A.reduce_seg(np.maximum, hole, starts))
        self.jitter[ss] = jit[ends]
        self.jitter_max[ss] = np.maximum(self.jitter_max[ss], A.reduce_seg(np.maximum, jit, starts))
        self.jitter_sum[ss] += red(jit)
        self.dscp[ss] += np.bincount(seg * 64 + (r.dscp & 63), minlength=ss.size * 64).reshape(ss.size, 64)
        self._payload_types(r, seg, ss)
        if r.extension.any():
            xi = np.flatnonzero(r.extension)
            for s, p in set(zip(r.sid[xi].tolist(), r.ext_profile[xi].tolist(), strict=True)):
                self.ext_profiles[s].add(p)
        self._keep_ts(r, starts, ends, ss)
        self._bins(r, starts, seg, ss, inc, jit_ms)

    def flush(self) -> None:
        """The end of the capture: count the rows still held for a successor."""
        if self.carry is not None:
            rows, self.carry = self.carry, None
            self.update(rows, final=True)

    # ------------------------------------------------------------------ sequence numbers
    def _order(self, rows: Rows, final: bool):
        """The rows sorted by stream with their segments and the wild mask. The trailing rows of a segment
        that are each far from their predecessor are held back (self.carry) until their successor comes,
        unless `final` (then a far row without a successor is wild)."""
        order = np.argsort(rows.sid.astype(np.uint16 if self.n < 65536 else np.int64), kind="stable")
        r = rows.take(order)
        starts, ends, far, last = self._far(r)
        nxt = np.empty_like(r.seq)
        nxt[:-1] = r.seq[1:]
        nxt[-1] = r.seq[-1]
        apart = np.abs(A.seq_delta(nxt, r.seq)) > MAX_MISORDER
        if final:
            return r, starts, ends, far & (last | apart)
        idx = np.arange(len(r), dtype=np.int64)
        keep_to = np.maximum.reduceat(np.where(far, -1, idx), starts)  # last row not far from its predecessor
        hold = idx > np.repeat(keep_to, ends - starts + 1)
        if hold.any():
            self.carry = r.take(hold)
            r = r.take(~hold)
            if len(r) == 0:
                return None, None, None, None
            starts, ends, far, last = self._far(r)
            apart = apart[~hold]
        return r, starts, ends, far & ~last & apart

    def _far(self, r: Rows):
        """Per row: more than MAX_MISORDER from each of the LOOKBACK rows before it (a row between two wild
        ones is still near the last in-sequence row before them)."""
        starts = A.seg_starts(r.sid)
        ends = np.append(starts[1:], len(r)) - 1
        ss = r.sid[starts]
        had = self.has_prev[ss]
        _, pos = A.seg_index(starts, len(r))
        lens = ends - starts + 1
        carried = np.where(had[:, None], self.last_raw[ss], r.seq[starts][:, None])
        far = np.ones(len(r), dtype=bool)
        for k in range(1, LOOKBACK + 1):
            prev = np.empty_like(r.seq)
            prev[k:] = r.seq[:-k]
            early = pos < k
            prev[early] = np.repeat(carried, lens, axis=0)[early, np.minimum(k - pos[early] - 1, LOOKBACK - 1)]
            far &= np.abs(A.seq_delta(r.seq, prev)) > MAX_MISORDER
        far[starts[~had]] = False
        last = np.zeros(len(r), dtype=bool)
        last[ends] = True
        return starts, ends, far, last

    def _remember_raw(self, r: Rows, starts, ends) -> None:
        """The last LOOKBACK sequence numbers of each stream, newest first (rows sorted by stream)."""
        ss = r.sid[starts]
        lens = ends - starts + 1
        old = self.last_raw[ss]
        for k in range(LOOKBACK):
            inside = lens > k
            self.last_raw[ss[inside], k] = r.seq[ends[inside] - k]
            out = ~inside
            if out.any():  # fewer rows than LOOKBACK in this chunk: shift the older values in
                self.last_raw[ss[out], k] = old[out, k - lens[out]]

    def _sequence(self, r: Rows) -> dict[str, np.ndarray]:
        """Extended numbers, late, duplicate and loss-run bookkeeping for in-sequence rows (sorted by stream)."""
        n = len(r)
        if n == 0:
            z, f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
            return {"late": f, "dup": f, "refill": z, "good": f, "reset": f, "inc": z, "hole": z}
        starts = A.seg_starts(r.sid)
        ends = np.append(starts[1:], n) - 1
        seg, _ = A.seg_index(starts, n)
        lens = ends - starts + 1
        ss = r.sid[starts]
        had = self.has_prev[ss]
        nopred = np.zeros(n, dtype=bool)
        nopred[starts[~had]] = True
        pred = ~nopred
        seq = r.seq
        d = A.seq_delta(seq, A.shifted(seq, starts, self.last_seq[ss]))
        reset = pred & (np.abs(d) > MAX_DROPOUT)
        dv = np.where(reset, 1, d)
        dv[nopred] = 0
        base = np.where(had, self.last_ext[ss], seq[starts])
        cs = np.cumsum(dv)
        ext = cs - np.repeat(cs[starts] - dv[starts] - base, lens)
        max_before = A.running_max_before(ext, starts, seg, np.where(had, self.max_ext[ss], NONE_LOW))
        if reset.any():
            ext = A.bridge_resets(ext, reset, starts, seg, max_before)
            max_before = A.running_max_before(ext, starts, seg, np.where(had, self.max_ext[ss], NONE_LOW))
        min_before = -A.running_max_before(-ext, starts, seg, np.where(had, -self.min_ext[ss], NONE_LOW))
        late = pred & (ext <= max_before)
        inc = np.where(nopred, 1, np.maximum(ext - max_before, 0) + np.maximum(min_before - ext, 0))
        dup, refill = self._duplicates(r.sid, ext, starts, ends, ss, late & (ext >= min_before))
        good = pred & (d != 0) & (d >= -MAX_MISORDER) & (d <= MAX_DROPOUT)
        # loss as it shows on arrival: a forward jump of the highest number opens a hole of inc - 1
        hole = np.where(pred & ~reset & (inc > 1), inc - 1, 0)
        new = ss[~had]
        self.min_ext[new] = ext[starts[~had]]
        self.max_ext[new] = ext[starts[~had]]
        self.last_seq[ss] = seq[ends]
        self.last_ext[ss] = ext[ends]
        self.max_ext[ss] = np.maximum(self.max_ext[ss], A.reduce_seg(np.maximum, ext, starts))
        self.min_ext[ss] = np.minimum(self.min_ext[ss], A.reduce_seg(np.minimum, ext, starts))
        return {"late": late, "dup": dup, "refill": refill, "good": good, "reset": reset, "inc": inc, "hole": hole}

    # ------------------------------------------------------------------ helpers
    def _duplicates(self, sid, ext, starts, ends, ss, cand) -> tuple[np.ndarray, np.ndarray]:
        """Exact duplicate test for the late rows (rare), against the remembered window and the chunk;
        and what each late packet does to the count of loss runs, from whether its two neighbours had
        arrived before it: both, it closes a run of one (-1); neither, it splits a run in two (+1)."""
        dup = np.zeros(ext.size, dtype=bool)
        refill = np.zeros(ext.size, dtype=np.int64)
        if cand.any():
            for k in np.unique(np.searchsorted(starts, np.flatnonzero(cand), side="right") - 1).tolist():
                s, e, w = starts[k], ends[k] + 1, self.window[ss[k]]
                allv = np.concatenate([w, ext[s:e]])
                u, first, inv = np.unique(allv, return_index=True, return_inverse=True)
                pos = np.arange(allv.size)
                again = first[inv.ravel()] < pos
                dup[s:e] = again[w.size :] & cand[s:e]
                fill = cand[s:e] & ~dup[s:e]
                if fill.any():
                    v, p = ext[s:e][fill], pos[w.size :][fill]
                    before = [_arrived_before(u, first, v + d, p) for d in (-1, 1)]
                    refill[s:e][fill] = np.where(before[0] & before[1], -1, np.where(before[0] | before[1], 0, 1))
        for k, s_id in enumerate(ss.tolist()):
            s, e = starts[k], ends[k] + 1
            w = self.window[s_id]
            tail = ext[max(s, e - DUP_WINDOW) : e]
            self.window[s_id] = tail.copy() if tail.size >= DUP_WINDOW else np.concatenate([w, tail])[-DUP_WINDOW:]
        return dup, refill

    def _keep_ts(self, r: Rows, starts, ends, ss) -> None:
        """The (timestamp, payload length) keys of each stream's first KEEP_TS packets without the P bit."""
        room = np.flatnonzero(self.packets[ss] - (ends - starts + 1) < KEEP_TS)
        for k in room.tolist():
            sl = slice(starts[k], ends[k] + 1)
            keys = (r.rtp_ts[sl] << 16) | np.minimum(r.payload_len[sl], 0xFFFF)
            lst = self.ts_keep[int(ss[k])]
            have = sum(a.size for a in lst)
            if have < KEEP_TS:
                lst.append(keys[~r.padding[sl]][: KEEP_TS - have])

    def _gaps(self, r: Rows, gi: np.ndarray) -> None:
        for i in gi.tolist():
            s_id = int(r.sid[i])
            lst = self.gaps[s_id]
            if len(lst) < MAX_GAPS:  # the first MAX_GAPS gaps; the count and the longest cover the rest
                t, f = int(r.ts_ns[i]), int(r.frame[i])
                prev_t = int(r.ts_ns[i - 1]) if i > 0 and r.sid[i - 1] == s_id else int(self.last_t[s_id])
                prev_f = int(r.frame[i - 1]) if i > 0 and r.sid[i - 1] == s_id else int(self.last_frame[s_id])
                lst.append((prev_t, t, prev_f, f))

    def _payload_types(self, r: Rows, seg: np.ndarray, ss: np.ndarray) -> None:
        counts = np.bincount(seg * 128 + (r.pt & 127), minlength=ss.size * 128)
        nz = np.flatnonzero(counts)
        for key, c in zip(nz.tolist(), counts[nz].tolist(), strict=True):
            d = self.pt_counts[int(ss[key >> 7])]
            d[key & 127] = d.get(key & 127, 0) + c

    def _bins(self, r: Rows, starts, seg, ss, inc, jit_ms) -> None:
        sec = r.ts_ns // 1_000_000_000
        brk = np.zeros(sec.size, dtype=bool)
        brk[starts] = True
        brk[1:] |= sec[1:] != sec[:-1]
        b = np.flatnonzero(brk)
        self.bins.append((
            r.sid[b], sec[b], np.diff(np.append(b, sec.size)), np.add.reduceat(r.length, b),
            np.add.reduceat(inc, b), np.add.reduceat(jit_ms, b), np.maximum.reduceat(jit_ms, b),
            np.minimum.reduceat(r.frame, b), np.maximum.reduceat(r.frame, b),
        ))


def _scatter(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """v (one value per True of mask) spread over the full rows, zero (False) elsewhere."""
    out = np.zeros(mask.size, dtype=v.dtype)
    out[mask] = v
    return out


def _arrived_before(u: np.ndarray, first: np.ndarray, v: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Whether number v (each) had arrived before position pos: u sorted unique numbers, first their first
    positions."""
    i = np.minimum(np.searchsorted(u, v), u.size - 1)
    return (u[i] == v) & (first[i] < pos)
