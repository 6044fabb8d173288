"""Media for the figures: per-stream 1-second series (bitrate, loss, jitter) and media spans (first to
last packet of each media path). Both come from aggregates (the media stage's 1-second bins, the
per-path counters), never from one point per RTP packet, so the figures stay small on long calls."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from . import common as C


class Span(NamedTuple):
    src: str
    sport: int
    dst: str
    dport: int
    wire_src: str
    wire_sport: int
    wire_dst: str
    wire_dport: int
    relayed: bool
    packets: int
    bytes: int
    first_frame: int
    first_ts_ns: int
    last_frame: int
    last_ts_ns: int
    what: str


def stream_label(r) -> str:
    """'0x1234abcd audio 10.0.0.1:5000→10.0.0.2:6000' (escaped) for a streams row (dict)."""
    ssrc = r.get("ssrc")
    head = f"0x{int(ssrc):08x}" if ssrc is not None and not pd.isna(ssrc) else f"stream {r.get('stream')}"
    kind = C.esc(r.get("kind"))
    return (f"{head} {kind} {C.esc(r.get('src'))}:{C.esc(r.get('sport'))}→{C.esc(r.get('dst'))}:"
            f"{C.esc(r.get('dport'))}").replace("  ", " ")


def media_series(a, t0: int) -> pd.DataFrame | None:
    """Columns: label, t (seconds from capture start, bin start), wall, bitrate, loss, jitter (those the
    media stage provides), lost, jitter_max; None when there is no time series table or it is empty."""
    ts = C.table(a, "media_timeseries")
    if ts is None or len(ts) == 0:
        return None
    streams = C.table(a, "streams")
    labels: dict[tuple, str] = {}
    if streams is not None and len(streams) and "stream" in streams:
        for r in streams.to_dict(orient="records"):
            labels[(r.get("file", 0), r["stream"])] = stream_label(r)
    file = ts["file"] if "file" in ts else pd.Series(0, index=ts.index)
    sid = ts[C.pick(ts, "stream", "ssrc")]
    lab = [labels.get((f, s)) or (f"0x{int(x):08x}" if "ssrc" in ts else f"stream {s}")
           for f, s, x in zip(file, sid, ts.get("ssrc", sid), strict=True)]
    when = ts[C.pick(ts, "second", "ts")]
    ns = np.asarray(when, dtype="int64") if pd.api.types.is_numeric_dtype(when) else C.to_ns(when)
    out = pd.DataFrame({"label": lab, "t": np.maximum(C.seconds(ns, t0), 0.0), "wall": C.absolute(ns)})
    for name, cols in (("bitrate", ("bitrate_kbps",)), ("loss", ("loss_pct",)), ("jitter", ("jitter_ms",)),
                       ("lost", ("lost",)), ("jitter_max", ("jitter_ms_max",))):
        col = C.pick(ts, *cols)
        if col:
            out[name] = pd.to_numeric(ts[col], errors="coerce").to_numpy(dtype=float)
    first = out.groupby("label")["t"].transform("min")
    return out.assign(_first=first).sort_values(["_first", "label", "t"], kind="stable").drop(columns="_first")


def media_spans(a, min_packets: int = 10) -> list[Span]:
    """Confirmed RTP streams when the media stage ran, else the per-path counters (media paths that match
    a candidate pair or carry at least `min_packets`)."""
    streams = C.table(a, "streams")
    if streams is not None and len(streams) and "first_ts_ns" in streams:
        out = []
        for r in streams.to_dict(orient="records"):
            wire = [r.get(k) for k in ("wire_src", "wire_sport", "wire_dst", "wire_dport")]
            if any(v is None or (not isinstance(v, str) and pd.isna(v)) for v in wire):
                wire = [r["src"], r["sport"], r["dst"], r["dport"]]
            out.append(Span(str(r["src"]), int(r["sport"]), str(r["dst"]), int(r["dport"]), str(wire[0]),
                            int(wire[1]), str(wire[2]), int(wire[3]), bool(r.get("relayed")), int(r["packets"]),
                            int(r.get("bytes") or 0), int(r["first_frame"]), int(r["first_ts_ns"]),
                            int(r["last_frame"]), int(r["last_ts_ns"]), stream_label(r)))
        return out
    return [Span(p.src, p.sport, p.dst, p.dport, p.wire_src, p.wire_sport, p.wire_dst, p.wire_dport, p.relayed,
                 p.packets, p.bytes, p.first_frame, p.first_ts_ns, p.last_frame, p.last_ts_ns,
                 f"{C.esc(p.src)}:{p.sport}→{C.esc(p.dst)}:{p.dport}") for p in C.media_paths(a, min_packets)]
