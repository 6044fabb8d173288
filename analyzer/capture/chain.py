"""Finding record boundaries fast.

A capture file is a chain: each record's header says where the next one starts. Walking it in Python
costs about 0.5 s per million records, more than the whole budget. Instead the chunk is cut into
segments; a cheap, strict plausibility test guesses where the first record of each segment begins, and
all segments are then walked in lockstep with numpy. A segment's guess is accepted only when the walk
of the segment before it lands exactly on it, so the result is always the one a serial walk gives; a
wrong guess costs one more walk of that segment alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

# step(P) -> int64 step sizes at positions P; -1 where the header is invalid, -2 where the chain must
# stop for the caller (e.g. a pcapng section header).
StepFn = Callable[[np.ndarray], np.ndarray]
# guess(segment starts, window) -> first plausible record start in each segment's window, or -1
GuessFn = Callable[[np.ndarray, int], np.ndarray]

_REASON = {0: "limit", 1: "limit", 2: "invalid", 3: "break"}


class Walk(NamedTuple):
    """Record start positions in [start, stop) and why the walk stopped at `stop`."""

    offsets: np.ndarray  # int64 positions of record headers, ascending
    stop: int  # first position not consumed
    reason: str  # 'limit' (the next header does not fit: read more), 'invalid', 'break'


def serial_walk(step: StepFn, start: int, limit: int, hdr: int, max_records: int | None = None) -> Walk:
    """The reference walk, one record at a time."""
    out: list[int] = []
    p = start
    one = np.zeros(1, dtype=np.int64)
    while True:
        if p + hdr > limit or (max_records is not None and len(out) >= max_records):
            return Walk(np.asarray(out, dtype=np.int64), p, "limit")
        one[0] = p
        s = int(step(one)[0])
        if s < 0:
            return Walk(np.asarray(out, dtype=np.int64), p, "invalid" if s == -1 else "break")
        out.append(p)
        p += s


class _Lanes:
    """Positions visited by the lane walks, kept flat; a lane walked again supersedes its old rows."""

    def __init__(self, nseg: int) -> None:
        self.pos: list[np.ndarray] = []
        self.lane: list[np.ndarray] = []
        self.gen: list[int] = []
        self.lane_gen = np.zeros(nseg, dtype=np.int64)
        self.walks = 0

    def result(self, upto: int) -> np.ndarray:
        if not self.pos:
            return np.zeros(0, dtype=np.int64)
        pos = np.concatenate(self.pos)
        lane = np.concatenate(self.lane)
        gen = np.concatenate([np.full(p.size, g, dtype=np.int64) for p, g in zip(self.pos, self.gen, strict=True)])
        keep = (lane < upto) & (self.lane_gen[lane] == gen)
        return np.sort(pos[keep])


def lockstep_walk(step: StepFn, guess: GuessFn, start: int, limit: int, hdr: int, avg_record: int) -> Walk:
    """Walk [start, limit) in parallel segments; the result is identical to serial_walk's."""
    segment = int(min(max(48 * avg_record, 4096), 1 << 20))
    window = int(min(max(2 * avg_record + 64, 512), segment))
    nseg = (limit - start) // segment
    if nseg < 4:
        return serial_walk(step, start, limit, hdr)
    seg_start = start + np.arange(nseg, dtype=np.int64) * segment
    seg_end = np.append(seg_start[1:], limit)
    g = np.full(nseg, -1, dtype=np.int64)
    g[0] = start
    g[1:] = guess(seg_start[1:], window)
    ends = np.full(nseg, -1, dtype=np.int64)  # where each lane's walk stopped
    reasons = np.zeros(nseg, dtype=np.int8)  # 0 left its segment, 1 limit, 2 invalid, 3 break
    lanes = _Lanes(nseg)
    _walk_lanes(step, hdr, limit, np.flatnonzero(g >= 0), g, seg_end, ends, reasons, lanes)
    while True:
        # A lane is right when its start is where the lane before it stopped; fix every wrong lane whose
        # predecessor is not itself wrong, all in one pass, until every link holds (then, by induction
        # from lane 0, the walk is the serial one).
        stopped = reasons[:-1] != 0
        cut = np.flatnonzero(stopped)
        upto = int(cut[0]) + 1 if cut.size else nseg  # lanes after a stopped lane are not reached
        bad = np.flatnonzero(g[1:upto] != ends[: upto - 1]) + 1
        if bad.size == 0:
            if upto < nseg:
                return Walk(lanes.result(upto), int(ends[upto - 1]), _REASON[int(reasons[upto - 1])])
            last = nseg - 1
            return Walk(lanes.result(nseg), int(ends[last]), _REASON[int(reasons[last])])
        fix = bad[~np.isin(bad - 1, bad)]
        g[fix] = ends[fix - 1]
        _walk_lanes(step, hdr, limit, fix, g, seg_end, ends, reasons, lanes)


def _walk_lanes(
    step: StepFn,
    hdr: int,
    limit: int,
    lanes_to_walk: np.ndarray,
    g: np.ndarray,
    seg_end: np.ndarray,
    ends: np.ndarray,
    reasons: np.ndarray,
    store: _Lanes,
) -> None:
    """Walk every lane in `lanes_to_walk` from g[lane] until it leaves its segment or stops."""
    store.walks += 1
    gen = store.walks
    store.lane_gen[lanes_to_walk] = gen
    lane = lanes_to_walk.copy()
    p = g[lane].copy()
    stop_at = seg_end[lane]
    while lane.size:
        done = p >= stop_at
        nofit = ~done & (p + hdr > limit)
        out = done | nofit
        if out.any():
            ends[lane[out]] = p[out]
            reasons[lane[done]] = 0
            reasons[lane[nofit]] = 1
            live = ~out
            lane, p, stop_at = lane[live], p[live], stop_at[live]
            if not lane.size:
                break
        s = step(p)
        bad = s < 0
        if bad.any():
            ends[lane[bad]] = p[bad]
            reasons[lane[bad]] = np.where(s[bad] == -2, 3, 2)
            ok = ~bad
            lane, p, stop_at, s = lane[ok], p[ok], stop_at[ok], s[ok]
        store.pos.append(p)
        store.lane.append(lane)
        store.gen.append(gen)
        p = p + s
