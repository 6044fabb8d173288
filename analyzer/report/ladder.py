"""The ladder (sequence) diagram: Wireshark's flow graph for this domain.

Columns are the endpoints (address:port, inner addresses for relayed messages) labelled with their zone
and candidate type, ordered customer network, VPN, internet, cloud. Rows are the signaling-relevant
messages in capture order, with the time and frame number on the left: TURN Allocate, Refresh,
CreatePermission and ChannelBind (requests and responses), ICE checks carrying USE-CANDIDATE and their
responses, and DTLS handshake flights. Arrows point from sender to receiver (red when the message is or
got an error); media is drawn as shaded bands between the two endpoints, from the first to the last
packet.

Traces: one per message kind present ('Allocate', 'Refresh', 'CreatePermission', 'ChannelBind',
'USE-CANDIDATE check', 'DTLS flight'), carrying the labels and the hover text, and 'media' bands.
"""

from __future__ import annotations

import bisect
import os

import pandas as pd
import plotly.graph_objects as go

from . import common as C
from .series import media_spans

MAX_MESSAGES = 300
MAX_COLUMNS = 16
KIND_COLORS = {
    "Allocate": "#1f77b4", "Refresh": "#17becf", "CreatePermission": "#ff7f0e", "ChannelBind": "#8c564b",
    "USE-CANDIDATE check": "#2ca02c", "DTLS flight": "#9467bd",
}


def messages(a) -> pd.DataFrame:
    """The ladder's rows: kind, label, frame, ts_ns, src, sport, dst, dport, error (bool), hover lines."""
    rows: list = []
    seen: dict = {}
    names = [os.path.basename(str(f)) for f in getattr(a, "files", [])]
    s = C.stun_events(a)
    if len(s):
        s = s.sort_values(["ts_ns", "frame"], kind="stable")
        method = s["method"].astype(str)
        flag = s["use_candidate"].fillna(False).astype(bool) if "use_candidate" in s else method != method
        if "nomination" in s:  # libwebrtc's NOMINATION nominates as USE-CANDIDATE does
            flag |= s["nomination"].fillna(0).astype("int64") > 0
        uc = s[(method == "Binding") & flag]
        uc_tids = set(uc["transaction_id"])
        keep = method.isin(C.TURN_METHODS) | ((method == "Binding") & s["transaction_id"].isin(uc_tids))
        for r in s[keep].to_dict(orient="records"):
            kind = r["method"] if r["method"] in C.TURN_METHODS else "USE-CANDIDATE check"
            err = r["outcome"] == "error"
            code = f" {int(r['error_code'])}" if r.get("error_code") is not None and not pd.isna(r["error_code"]) \
                else ""
            label = f"{r['method']} {r['cls']}{code}" if kind != "USE-CANDIDATE check" else (
                _nominating(r) if r["cls"] == "request" else f"check {r['cls']}{code}")
            extra = [f"{k}: {C.esc(r.get(c))}" for k, c in (("reason", "error_reason"), ("USERNAME", "username"),
                                                              ("SOFTWARE", "software"), ("peer", "peer_address"),
                                                              ("channel", "channel"), ("lifetime", "lifetime"))
                     if C.esc(r.get(c))]
            if r["cls"] == "request" and r["outcome"] == "unanswered":
                extra.append("never answered")
            ref = _ref(names, r.get("file"), r["frame"])
            key = (r.get("transaction_id"), r["method"], r["cls"])
            if key[0] is not None and key in seen:  # the same message at another capture point: drawn once
                rows[seen[key]][10].append(f"also seen as {ref}: {C.esc(r['src'])}:{r['sport']} → "
                                           f"{C.esc(r['dst'])}:{r['dport']}")
                continue
            seen[key] = len(rows)
            rows.append((kind, label, int(r["frame"]), int(r["ts_ns"]), str(r["src"]), int(r["sport"]),
                         str(r["dst"]), int(r["dport"]), err, bool(r.get("relayed")), extra, ref))
    for f in C.dtls_flights(a).itertuples(index=False):
        label = "DTLS " + (f.what if len(f.what) <= 40 else f.what[:37] + "...")
        extra = [f"frames {', '.join(map(str, f.frames))}"] + ([f"alert: {C.esc(f.alert)}"] if f.alert else [])
        rows.append(("DTLS flight", label, f.frame, f.ts_ns, f.src, f.sport, f.dst, f.dport, bool(f.alert),
                     bool(f.relayed), extra, _ref(names, getattr(f, "file", None), f.frame)))
    cols = ["kind", "label", "frame", "ts_ns", "src", "sport", "dst", "dport", "error", "relayed", "extra", "ref"]
    return pd.DataFrame(rows, columns=cols).sort_values(["ts_ns", "frame"], kind="stable").reset_index(drop=True)


def _ref(names: list[str], file, frame) -> str:
    """`client-a.pcap#9` when several captures were read, else `9`."""
    if len(names) <= 1 or file is None or pd.isna(file) or not 0 <= int(file) < len(names):
        return str(int(frame))
    return f"{names[int(file)]}#{int(frame)}"


def _nominating(r: dict) -> str:
    n = r.get("nomination")
    return "check USE-CANDIDATE" if r.get("use_candidate") or n is None or pd.isna(n) else f"check NOMINATION {n}"


def ladder(a) -> go.Figure:
    """The ladder figure of an Analysis (see the module docstring)."""
    t0 = C.origin_ns(a)
    roles = C.Roles(a)
    m = messages(a)
    total = len(m)
    fig = go.Figure()
    if total == 0:
        fig.add_annotation(text="no TURN, USE-CANDIDATE or DTLS handshake messages in this capture",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_layout(title="Call ladder", height=300, template="plotly_white",
                          xaxis={"visible": False}, yaxis={"visible": False})
        return fig
    columns = _columns(m, roles)
    ends = set(columns)
    m = m[[(s, sp) in ends and (d, dp) in ends for s, sp, d, dp in zip(m.src, m.sport, m.dst, m.dport, strict=True)]]
    m = m.head(MAX_MESSAGES).reset_index(drop=True)
    x = {e: i for i, e in enumerate(columns)}
    n = len(m)
    times = list(m["ts_ns"])
    annotations = []
    for kind, g in m.groupby("kind", sort=False):
        color = KIND_COLORS[kind]
        xs, ys, texts, hovers, colors = [], [], [], [], []
        for i, r in g.iterrows():
            x0, x1 = x[(r.src, r.sport)], x[(r.dst, r.dport)]
            c = C.COLORS["error"] if r.error else color
            annotations.append({"x": x1, "y": i, "ax": x0, "ay": i, "xref": "x", "yref": "y", "axref": "x",
                                "ayref": "y", "showarrow": True, "arrowhead": 2, "arrowwidth": 1.6,
                                "arrowcolor": c, "text": ""})
            xs.append((x0 + x1) / 2)
            ys.append(i)
            texts.append(C.esc(r.label))
            colors.append(c)
            wall = C.absolute([r.ts_ns])[0]
            hovers.append("<br>".join([
                f"<b>frame {C.esc(r.ref)}</b>", C.esc(r.label),
                f"{C.esc(r.src)}:{r.sport} → {C.esc(r.dst)}:{r.dport}" + (" (relayed)" if r.relayed else ""),
                *r.extra, f"t = {(r.ts_ns - t0) / 1e9:.6f} s", wall]))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", name=kind, text=texts, textposition="top center",
                                 textfont={"size": 10, "color": colors}, marker={"size": 6, "color": colors},
                                 hovertext=hovers, hoverinfo="text", customdata=list(g["frame"])))
    end = _media_bands(fig, a, x, times, t0)
    last = max(n - 1, end)
    for i in range(len(columns)):
        fig.add_shape(type="line", x0=i, x1=i, y0=-0.8, y1=last + 0.5, layer="below",
                      line={"color": "#bbb", "width": 1})
    tickvals = list(range(n)) + ([n] if end >= n else [])
    ticktext = [f"{(t - t0) / 1e9:.3f} s  " + (f"#{f}" if f.isdigit() else C.esc(f))
                for t, f in zip(m["ts_ns"], m["ref"], strict=True)]
    ticktext += ["end of capture"] if end >= n else []
    fig.update_layout(
        title={"text": "Call ladder" + (f" (first {n} of {total} messages)" if n < total else ""), "y": 0.995,
               "yref": "container", "yanchor": "top"},
        annotations=annotations, template="plotly_white", showlegend=True, hovermode="closest",
        height=max(360, 26 * (last + 2) + 240), margin={"l": 140, "r": 20, "t": 190, "b": 30},
        xaxis={"tickvals": list(range(len(columns))), "ticktext": [_column_label(e, roles) for e in columns],
               "side": "top", "range": [-0.6, len(columns) - 0.4], "showgrid": False, "zeroline": False,
               "tickfont": {"size": 10}},
        yaxis={"tickvals": tickvals, "ticktext": ticktext, "range": [last + 0.8, -1.2], "showgrid": False,
               "zeroline": False, "tickfont": {"size": 10}},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
    )
    return fig


def _columns(m: pd.DataFrame, roles: C.Roles) -> list[tuple[str, int]]:
    count: dict[tuple[str, int], int] = {}
    first: dict[tuple[str, int], int] = {}
    for i, (s, sp, d, dp) in enumerate(zip(m.src, m.sport, m.dst, m.dport, strict=True)):
        for e in ((s, sp), (d, dp)):
            count[e] = count.get(e, 0) + 1
            first.setdefault(e, i)
    keep = sorted(count, key=lambda e: -count[e])[:MAX_COLUMNS]
    rank = {z: i for i, z in enumerate(C.ZONE_ORDER)}
    return sorted(keep, key=lambda e: (rank.get(roles.zone(e[0]), 9), first[e]))


def _column_label(e: tuple[str, int], roles: C.Roles) -> str:
    addr, port = e
    zone = C.ZONE_NAMES.get(roles.zone(addr), roles.zone(addr))
    shown = addr if len(addr) <= 20 else addr[:9] + "…" + addr[-9:]
    return f"{C.esc(shown)}:{port}<br>{C.esc(zone)}<br>{C.esc(roles.kind(addr, port))}"


def _media_bands(fig, a, x: dict, times: list[int], t0: int) -> int:
    """Shaded bands between the two columns of each media path; returns the last row a band reaches."""
    bands: dict[tuple, list] = {}
    for sp in media_spans(a):
        inner = ((sp.src, sp.sport), (sp.dst, sp.dport))
        wire = ((sp.wire_src, sp.wire_sport), (sp.wire_dst, sp.wire_dport))
        for (s, d), relayed in ((inner, sp.relayed), *([(wire, False)] if wire != inner else [])):
            if s in x and d in x and s != d:
                key = tuple(sorted((x[s], x[d])))
                b = bands.setdefault(key, [sp.first_ts_ns, sp.last_ts_ns, sp.first_frame, sp.last_frame, 0, [],
                                           relayed])
                b[0], b[1] = min(b[0], sp.first_ts_ns), max(b[1], sp.last_ts_ns)
                b[2], b[3] = min(b[2], sp.first_frame), max(b[3], sp.last_frame)
                b[4] += sp.packets
                b[5].append(sp.what)
    last = -1
    for k, ((c0, c1), (f0, f1, fr0, fr1, n, what, relayed)) in enumerate(bands.items()):
        y0 = bisect.bisect_left(times, f0) - 0.45
        y1 = bisect.bisect_right(times, f1) + 0.45 - (0 if f1 > times[-1] else 1)
        last = max(last, int(y1 + 0.55))
        text = "<br>".join([f"<b>media{' (relayed)' if relayed else ''}</b>", f"frames {fr0}–{fr1}, {n:,} packets",
                            *what[:6], f"{(f0 - t0) / 1e9:.3f}–{(f1 - t0) / 1e9:.3f} s"])
        fig.add_trace(go.Scatter(
            x=[c0, c1, c1, c0, c0], y=[y0, y0, y1, y1, y0], fill="toself", mode="lines", name="media",
            legendgroup="media", showlegend=k == 0, fillcolor=C.COLORS["media"], line={"width": 0},
            hoveron="fills+points", hovertext=text, hoverinfo="text", text=text))
    return last
