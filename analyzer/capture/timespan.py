"""The capture's time span, robust to damaged timestamps, and the silences inside it.

One frame stamped 52 years off, or a packet whose interface is unknown (time 0), must not stretch the
capture back to 1970. Packets are grouped into clusters by time (no silence of GAP_NS or more inside a
cluster); a cluster holding a tiny share of the packets while others hold the rest is an outlier: its
frames are named in a warning and left out of the span. The silences between the remaining clusters are
gaps, each named by the frames on either side. Memory grows with the number of clusters, not packets.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field

import numpy as np

GAP_NS = 3600 * 1_000_000_000  # an hour without a packet inside one capture is worth saying
MAX_CLUSTERS = 256  # beyond this (timestamps all over the place) the closest clusters are merged
SAMPLE = 8  # frames kept per cluster, to be cited


@dataclass
class Cluster:
    lo: int  # ns
    hi: int
    lo_frame: int  # frame of the earliest packet
    hi_frame: int  # frame of the latest packet
    count: int
    frames: list[int] = field(default_factory=list)  # the first SAMPLE frames in frame order

    def merge(self, o: Cluster) -> None:
        if o.lo < self.lo:
            self.lo, self.lo_frame = o.lo, o.lo_frame
        if o.hi > self.hi:
            self.hi, self.hi_frame = o.hi, o.hi_frame
        self.count += o.count
        self.frames = sorted(set(self.frames) | set(o.frames))[:SAMPLE]


@dataclass(frozen=True)
class TimeReport:
    first_ns: int | None
    last_ns: int | None
    gaps: list[dict]  # {after_frame, before_frame, gap_s, after_ts_ns, before_ts_ns}
    outliers: list[dict]  # {frames, packets, time}
    warnings: list[str]


class TimeClusters:
    """Running clusters of packet times, fed one batch at a time."""

    def __init__(self) -> None:
        self.clusters: list[Cluster] = []

    def add(self, ts: np.ndarray, frames: np.ndarray) -> None:
        if ts.size == 0:
            return
        d = np.diff(ts)
        if d.size and d.min() < 0:  # out of order: sort (a capture in order, the usual case, skips this)
            order = np.argsort(ts, kind="stable")
            ts, frames = ts[order], frames[order]
            d = np.diff(ts)
        t, f = ts, frames
        cuts = np.flatnonzero(d >= GAP_NS) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [t.size]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            sample = np.sort(f[s:e])[:SAMPLE].tolist() if e - s > SAMPLE else sorted(f[s:e].tolist())
            self.clusters.append(Cluster(int(t[s]), int(t[e - 1]), int(f[s]), int(f[e - 1]), e - s, sample))
        self._merge()

    def _merge(self) -> None:
        cs = sorted(self.clusters, key=lambda c: c.lo)
        out: list[Cluster] = []
        for c in cs:
            if out and c.lo - out[-1].hi < GAP_NS:
                out[-1].merge(c)
            else:
                out.append(c)
        while len(out) > MAX_CLUSTERS:  # merge across the smallest silence
            k = min(range(len(out) - 1), key=lambda i: out[i + 1].lo - out[i].hi)
            out[k].merge(out.pop(k + 1))
        self.clusters = out

    def report(self) -> TimeReport:
        cs = self.clusters
        if not cs:
            return TimeReport(None, None, [], [], [])
        total = sum(c.count for c in cs)
        small = max(2, total // 100)
        main = [c for c in cs if c.count > small] or cs
        outliers = [c for c in cs if all(c is not m for m in main)]
        gaps, warnings = [], []
        for a, b in itertools.pairwise(main):
            gap_s = (b.lo - a.hi) / 1e9
            gaps.append({
                "after_frame": a.hi_frame, "before_frame": b.lo_frame, "gap_s": round(gap_s, 6),
                "after_ts_ns": a.hi, "before_ts_ns": b.lo,
            })  # fmt: skip
            warnings.append(
                f"{_span(gap_s)} without a packet between frame {a.hi_frame} ({_iso(a.hi)}) and frame "
                f"{b.lo_frame} ({_iso(b.lo)}): the file may join separate captures"
            )
        out_rows = []
        for c in outliers:
            frames = c.frames
            out_rows.append({"frames": frames, "packets": c.count, "time": _iso(c.lo)})
            near = main[0] if c.hi < main[0].lo else main[-1]
            off = (near.lo - c.hi) if c.hi < near.lo else (c.lo - near.hi)
            shown = ", ".join(map(str, frames)) + (", ..." if c.count > len(frames) else "")
            warnings.append(
                f"{c.count} packet{'s' if c.count > 1 else ''} stamped {_span(off / 1e9)} away from the rest "
                f"(frame{'s' if c.count > 1 else ''} {shown} at {_iso(c.lo)}): left out of the time span"
            )
        return TimeReport(main[0].lo, max(c.hi for c in main), gaps, out_rows, warnings)


def _span(s: float) -> str:
    """A duration as a person says it."""
    s = abs(s)
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if s >= 2 * size or (unit == "hours" and s >= size):
            return f"{s / size:,.1f} {unit}"
    return f"{s:,.1f} s"


def _iso(ns: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
