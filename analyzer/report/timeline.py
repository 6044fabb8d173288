"""The timeline: one shared time axis (seconds from the capture start); above, one lane per endpoint
pair with the STUN/TURN messages, DTLS flights and media activity; vertical marks at the ICE
'connected', 'nominated' and 'first media' moments; below, per-stream bitrate, loss and jitter from the
1-second series.

Traces (names are stable; tests and users toggle them in the legend):
  'STUN/TURN success'     requests answered with success, and success responses (green)
  'STUN/TURN error'       requests answered with an error, and error responses (red)
  'STUN/TURN unanswered'  requests never answered (hollow)
  'TURN indication'       Send/Data that carry no STUN message (grey)
  'DTLS flight'           one marker per handshake flight (purple), 'DTLS alert' for alerts
  'media'                 first to last media packet of each lane (orange band)
  'ICE connected', 'ICE nominated', 'first media'   the moments, also drawn as vertical lines
  '<stream>' (bitrate), '<stream> loss' / 'jitter'  per stream, in the rows below; one legend entry
The marker symbol tells the method: Binding circle, Allocate square, Refresh diamond, CreatePermission
cross, ChannelBind star.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import common as C
from .series import media_series, media_spans

MOMENT_DASH = {"connected": "dash", "nominated": "dot", "first media": "solid"}
MOMENT_TRACE = {"connected": "ICE connected", "nominated": "ICE nominated", "first media": "first media"}
MOMENTS_LANE = "ICE moments"
MAX_MOMENT_LINES = 40
METRIC_PX = 150
PALETTE = ("#1f77b4", "#e377c2", "#17becf", "#bcbd22", "#8c564b", "#7f7f7f", "#ff7f0e", "#2ca02c")


def timeline(a) -> go.Figure:
    """The timeline figure of an Analysis (see the module docstring for its traces)."""
    t0 = C.origin_ns(a)
    roles = C.Roles(a)
    stun, flights, moments = C.stun_events(a), C.dtls_flights(a), C.moments(a)
    series = media_series(a, t0)
    metrics = [m for m in ("bitrate", "loss", "jitter") if series is not None and m in series.columns]
    rows = 1 + len(metrics)
    titles = ["Messages per endpoint pair"] + [_METRIC_TITLE[m] for m in metrics]
    lanes: dict[str, int] = {}

    def lane_of(src, dst, ts) -> list[str]:
        out = []
        for s, d, t in zip(src, dst, ts, strict=True):
            name = roles.lane(s, d)
            lanes[name] = min(lanes.get(name, t), t)
            out.append(name)
        return out

    pending = _Pending()  # the lanes decide the first row's height: draw, then lay out
    _stun_traces(pending, stun, t0, lane_of)
    _dtls_traces(pending, flights, t0, lane_of)
    _media_lanes(pending, a, t0, lane_of)
    _moment_traces(pending, moments, t0)
    lanes_px = 48 * (len(lanes) + (1 if len(moments) else 0)) + 60
    heights = [lanes_px] + [METRIC_PX] * len(metrics)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 60 / sum(heights)),
                        row_heights=heights, subplot_titles=titles)
    pending.replay(fig)
    order = sorted(lanes, key=lambda k: lanes[k])
    if len(moments):
        order.insert(0, MOMENTS_LANE)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=order[::-1], row=1, col=1,
                     tickfont={"size": 10})
    if not order:
        fig.add_annotation(text="no STUN, TURN, DTLS or media in this capture", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.8)
    for i, m in enumerate(metrics, start=2):
        _metric_traces(fig, series, m, i, first=i == 2)
        fig.update_yaxes(rangemode="tozero", row=i, col=1)  # loss, jitter, bitrate: 0 is the baseline
    _worst_seconds(fig, a, t0)
    if series is None or len(series) == 0:
        fig.add_annotation(text="no media streams (no per-stream 1-second series)", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.02, font={"color": "#666"})
    fig.update_xaxes(title_text="seconds from capture start", row=rows, col=1)
    _time_span(fig, a, t0)
    fig.update_layout(
        title="Call timeline", height=max(360, sum(heights) + 60 * len(metrics) + 140),
        hovermode="closest", legend={"groupclick": "togglegroup"}, margin={"l": 230, "r": 20, "t": 70, "b": 50},
        template="plotly_white",
    )
    return fig


def _time_span(fig, a, t0: int) -> None:
    """The x axis covers the capture's span, which leaves out frames stamped far off (one frame 52 years
    off must not squeeze the call into a pixel); silences of an hour or more inside the span are cut
    down to a shaded band, so both sides of a 113-day gap stay readable. Hover texts keep true times."""
    lasts = [c.last_ts_ns for c in a.captures if c.last_ts_ns is not None]
    if not lasts:
        return
    gaps = sorted(((g["after_ts_ns"] - t0) / 1e9, (g["before_ts_ns"] - t0) / 1e9, g)
                  for c in a.captures for g in c.time_gaps)  # fmt: skip
    end = (max(lasts) - t0) / 1e9
    if gaps:
        active = end - sum(g1 - g0 for g0, g1, _ in gaps)
        width = max(1.0, 0.04 * active)
        squeeze = _squeezer([(g0, g1) for g0, g1, _ in gaps], width)
        _squeeze_figure(fig, squeeze)
        for g0, g1, g in gaps:
            fig.add_vrect(x0=float(squeeze([g0])[0]), x1=float(squeeze([g1])[0]), fillcolor="#bbb", opacity=0.35,
                          line_width=0, layer="below", annotation_text=f"{g['gap_s'] / 86400:,.1f} days silent"
                          if g["gap_s"] >= 2 * 86400 else f"{g['gap_s'] / 3600:,.1f} h silent",
                          annotation_position="top left", annotation_font_size=10)  # fmt: skip
        title = "seconds from capture start (silences of an hour or more cut short, shaded)"
        fig.for_each_xaxis(lambda ax: ax.update(title_text=title) if ax.title.text else None)
        end = float(squeeze([end])[0])
    pad = max(end * 0.02, 0.5)
    fig.update_xaxes(range=[-pad, end + pad])
    notes = [w for c in a.captures for w in c.time_warnings]
    if notes:
        fig.add_annotation(text="<br>".join(C.esc(n) for n in notes[:3]), showarrow=False, xref="paper",
                           yref="paper", x=0, y=1.0, yanchor="bottom", xanchor="left", align="left",
                           font={"size": 10, "color": "#b35900"})


def _squeezer(gaps: list[tuple[float, float]], width: float):
    """A monotone map of seconds that shrinks each gap (g0, g1) to `width` seconds."""

    def squeeze(x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        out = x.copy()
        for g0, g1 in gaps:
            span = g1 - g0
            if span > width:
                out -= (span - width) * np.clip((x - g0) / span, 0.0, 1.0)
        return out

    return squeeze


def _squeeze_figure(fig, squeeze) -> None:
    """Every trace's x and every line shape's x0/x1 through `squeeze` (None separators kept)."""
    for tr in fig.data:
        if tr.x is None:
            continue
        xs = list(tr.x)
        vals = [v for v in xs if v is not None]
        mapped = iter(squeeze(vals).tolist()) if vals else iter(())
        tr.x = [None if v is None else next(mapped) for v in xs]
    for sh in fig.layout.shapes:
        if sh.xref == "x" and sh.x0 is not None:
            sh.x0, sh.x1 = float(squeeze([sh.x0])[0]), float(squeeze([sh.x1])[0])
def _worst_seconds(fig, a, t0: int) -> None:
    """The worst seconds of each stream a poor-media finding names, shaded across the figure."""
    from ..topology.quality import worst_seconds

    f, st, ts = C.table(a, "findings"), C.table(a, "streams"), C.table(a, "media_timeseries")
    if f is None or st is None or ts is None or not (f.code == "poor-media").any():
        return
    starts = set()
    for s in st[st.poor.fillna(False).astype(bool)].itertuples(index=False):
        starts |= {(w.second.value - t0) / 1e9 for w in worst_seconds(ts, s.file, s.stream).itertuples(index=False)}
    for x0 in sorted(starts):
        fig.add_vrect(x0=x0, x1=x0 + 1.0, fillcolor="#d62728", opacity=0.12, line_width=0, layer="below",
                      row="all", col=1)
        fig.add_annotation(x=x0, y=1.0, xref="x", yref="paper", xanchor="left", yanchor="bottom",
                           text="worst second", showarrow=False, font={"size": 9, "color": "#d62728"})


class _Pending:
    """Traces and shapes drawn before the figure exists."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def add_trace(self, *args, **kw) -> None:
        self.calls.append(("add_trace", args, kw))

    def add_shape(self, *args, **kw) -> None:
        self.calls.append(("add_shape", args, kw))

    def replay(self, fig) -> None:
        for name, args, kw in self.calls:
            getattr(fig, name)(*args, **kw)


_METRIC_TITLE = {"bitrate": "Bitrate per stream (kbit/s)", "loss": "Loss per stream (%)",
                 "jitter": "Jitter per stream (ms)"}


def _hover(frame, ts_ns, t0, lines: list[list[str]]) -> list[str]:
    rel = C.seconds(ts_ns, t0)
    wall = C.absolute(ts_ns)
    return [f"<b>frame {f}</b><br>" + "<br>".join(x for x in extra if x) + f"<br>t = {r:.6f} s<br>{w}"
            for f, r, w, extra in zip(frame, rel, wall, lines, strict=True)]


def _stun_lines(s: pd.DataFrame) -> list[list[str]]:
    out = []
    for r in s.to_dict(orient="records"):
        wire = f"{C.esc(r['src'])}:{C.esc(r['sport'])} → {C.esc(r['dst'])}:{C.esc(r['dport'])} {C.esc(r['transport'])}"
        lines = [f"{C.esc(r['method'])} {C.esc(r['cls'])} ({r['outcome']})", wire]
        if r.get("relayed"):
            lines.append(f"relayed via {C.esc(r.get('outer_src'))}:{C.esc(r.get('outer_sport'))} → "
                         f"{C.esc(r.get('outer_dst'))}:{C.esc(r.get('outer_dport'))}")
        for label, col in (("error", "error_code"), ("reason", "error_reason"), ("USERNAME", "username"),
                           ("SOFTWARE", "software"), ("realm", "realm"), ("channel", "channel"),
                           ("lifetime", "lifetime"), ("peer", "peer_address"), ("mapped", "mapped_address"),
                           ("relayed address", "relayed_address")):
            v = C.esc(r.get(col))
            if v:
                lines.append(f"{label}: {v}")
        if r.get("use_candidate"):
            lines.append("USE-CANDIDATE")
        if C.esc(r.get("nomination")):
            lines.append(f"NOMINATION {C.esc(r.get('nomination'))}")
        lines.append(f"transaction {C.esc(r['transaction_id'])}")
        out.append(lines)
    return out


def _stun_traces(fig, s: pd.DataFrame, t0: int, lane_of) -> None:
    if len(s) == 0:
        return
    lane = lane_of(s["src"].astype(str), s["dst"].astype(str), s["ts_ns"])
    s = s.assign(_lane=lane, _hover=_hover(s["frame"], s["ts_ns"], t0, _stun_lines(s)))
    for outcome, name in (("success", "STUN/TURN success"), ("error", "STUN/TURN error"),
                          ("unanswered", "STUN/TURN unanswered"), ("indication", "TURN indication")):
        g = s[s["outcome"] == outcome]
        if len(g) == 0:
            continue
        symbols = [C.METHOD_SYMBOLS.get(str(m), "triangle-up") + ("-open" if outcome == "unanswered" else "")
                   for m in g["method"]]
        sizes = np.where(g["cls"].astype(str) == "request", 11, 8)
        fig.add_trace(go.Scatter(
            x=C.seconds(g["ts_ns"], t0), y=g["_lane"], mode="markers", name=name, legendgroup="stun",
            marker={"color": C.COLORS[outcome], "symbol": symbols, "size": sizes,
                    "line": {"width": 2 if outcome == "unanswered" else 0.5, "color": C.COLORS[outcome]}},
            hovertext=g["_hover"], hoverinfo="text", customdata=g["frame"],
        ), row=1, col=1)


def _dtls_traces(fig, f: pd.DataFrame, t0: int, lane_of) -> None:
    if len(f) == 0:
        return
    lane = lane_of(f["src"], f["dst"], f["ts_ns"])
    lines = [[f"DTLS {C.esc(r.what)}" + (" (retransmission)" if r.retransmission else ""),
              f"{C.esc(r.src)}:{r.sport} → {C.esc(r.dst)}:{r.dport}" + (" relayed" if r.relayed else ""),
              f"alert: {C.esc(r.alert)}" if r.alert else "", "frames " + ", ".join(map(str, r.frames))]
             for r in f.itertuples(index=False)]
    f = f.assign(_lane=lane, _hover=_hover(f["frame"], f["ts_ns"], t0, lines))
    for name, g, color in (("DTLS flight", f[f["alert"] == ""], C.COLORS["dtls"]),
                           ("DTLS alert", f[f["alert"] != ""], C.COLORS["error"])):
        if len(g):
            fig.add_trace(go.Scatter(
                x=C.seconds(g["ts_ns"], t0), y=g["_lane"], mode="markers", name=name, legendgroup="dtls",
                marker={"color": color, "symbol": "hexagram", "size": 12}, hovertext=g["_hover"], hoverinfo="text",
                customdata=g["frame"]), row=1, col=1)


def _media_lanes(fig, a, t0: int, lane_of) -> None:
    """A band from the first to the last media packet of each lane (from the per-path counters)."""
    paths = media_spans(a)
    if not paths:
        return
    lanes = lane_of([p.src for p in paths], [p.dst for p in paths], [p.first_ts_ns for p in paths])
    acc: dict[str, list] = {}
    for lane, p in zip(lanes, paths, strict=True):
        e = acc.setdefault(lane, [p.first_ts_ns, p.last_ts_ns, p.first_frame, p.last_frame, 0, 0, []])
        if p.first_ts_ns < e[0]:
            e[0], e[2] = p.first_ts_ns, p.first_frame
        if p.last_ts_ns > e[1]:
            e[1], e[3] = p.last_ts_ns, p.last_frame
        e[4] += p.packets
        e[5] += p.bytes
        via = f" via {C.esc(p.wire_dst if p.wire_src == p.src else p.wire_src)}" if p.relayed else ""
        e[6].append(f"{p.what}: {p.packets:,} packets{via}")
    xs, ys, texts = [], [], []
    for lane, (f0, f1, fr0, fr1, n, b, descr) in acc.items():
        text = (f"<b>media</b><br>frames {fr0}–{fr1}<br>{n:,} packets, {b:,} bytes<br>" + "<br>".join(descr[:6])
                + f"<br>{C.seconds([f0], t0)[0]:.3f}–{C.seconds([f1], t0)[0]:.3f} s")
        xs += [*C.seconds([f0, f1], t0), None]
        ys += [lane, lane, None]
        texts += [text, text, None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="media", line={"color": C.COLORS["media"], "width": 14},
                             hovertext=texts, hoverinfo="text"), row=1, col=1)


def _moment_traces(fig, m: pd.DataFrame, t0: int) -> None:
    if len(m) == 0:
        return
    for moment, g in m.groupby("moment", sort=False):
        text = _hover(g["frame"], g["ts_ns"], t0, [[f"{moment}, ICE session {s}"] for s in g["session"]])
        fig.add_trace(go.Scatter(
            x=C.seconds(g["ts_ns"], t0), y=[MOMENTS_LANE] * len(g), mode="markers", name=MOMENT_TRACE[moment],
            legendgroup="moments", marker={"color": C.COLORS[moment], "symbol": "line-ns-open", "size": 18,
                                           "line": {"width": 3, "color": C.COLORS[moment]}},
            hovertext=text, hoverinfo="text", customdata=g["frame"]), row=1, col=1)
    for r in m.head(MAX_MOMENT_LINES).itertuples(index=False):
        x = float(C.seconds([r.ts_ns], t0)[0])
        fig.add_shape(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, layer="below",
                      line={"color": C.COLORS[r.moment], "dash": MOMENT_DASH[r.moment], "width": 1})


def _metric_traces(fig, series: pd.DataFrame, metric: str, row: int, first: bool = True) -> None:
    """One legend entry per stream (named by the stream, on its first metric), toggling all its rows."""
    for i, (label, g) in enumerate(series.groupby("label", sort=False)):
        fig.add_trace(go.Scatter(
            x=g["t"], y=g[metric], mode="lines+markers" if len(g) < 3 else "lines",
            name=label if first else f"{label} {metric}", showlegend=first,
            legendgroup=f"stream {i}", line={"shape": "hv", "color": PALETTE[i % len(PALETTE)]},
            hovertext=[f"<b>{label}</b><br>{_metric_text(metric, r)}<br>t = {r['t']:.0f} s<br>{r['wall']}"
                       for r in g.to_dict(orient="records")],
            hoverinfo="text"), row=row, col=1)


def _metric_text(metric: str, r: dict) -> str:
    v = r[metric]
    if metric == "bitrate":
        return f"bitrate {v:,.1f} kbit/s"
    if metric == "loss":
        lost = r.get("lost")
        return f"loss {v:.2f} %" + (f" ({lost:.0f} packets)" if lost is not None and lost == lost else "")
    mx = r.get("jitter_max")
    return f"jitter {v:.2f} ms" + (f" (max {mx:.2f} ms)" if mx is not None and mx == mx else "")
