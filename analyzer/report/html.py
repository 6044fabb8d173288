"""The HTML report: one self-contained file (plotly.js inlined once, so it opens offline) with the verdict
per call, the findings with their evidence, the timeline, ladder and path figures, and the tables.

A capture is untrusted input: every value that reaches the page goes through html.escape (tables are
rendered here, not with DataFrame.to_html), figure text is escaped before plotly sees it, and the
figure JSON has '<', '>' and '/' as \\u escapes. On top of that a Content-Security-Policy allows only
the page's own two scripts, by hash, so a string that slipped through could still not run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from . import common as C

MAX_ROWS = 1000
FIGURES = (("timeline", "Timeline"), ("ladder", "Ladder"), ("path_diagram", "Media path"))
VERDICT_COLUMNS = ("call", "topology", "confidence", "assumptions", "profile_hint", "path", "moves", "expected",
                   "observed", "reason", "participants")
SESSION_COLUMNS = ("session", "state", "ufrags", "controlling", "path", "selected_by", "connected_frame")
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px;
color:#222}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#555;font-size:.9em}.muted{color:#777}
table{border-collapse:collapse;font-size:12px;margin:.4em 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top;white-space:pre-wrap;
word-break:normal;overflow-wrap:normal;max-width:42em}
th{background:#f4f4f4;position:sticky;top:0;white-space:nowrap;word-break:normal}
.scroll{overflow:auto;max-height:32em;border:1px solid #eee}
.finding{border-left:5px solid #999;padding:.4em .8em;margin:.6em 0;background:#fafafa}
.finding.error{border-color:#d62728}.finding.warning{border-color:#ff7f0e}.finding.info{border-color:#1f77b4}
.sev{font-weight:bold;text-transform:uppercase;font-size:.8em;margin-right:.5em}
.error .sev{color:#d62728}.warning .sev{color:#ff7f0e}.info .sev{color:#1f77b4}
.figure-error{color:#d62728;border:1px solid #d62728;padding:.5em}
details summary{cursor:pointer;font-weight:600;margin:.3em 0}
"""


def esc(value) -> str:
    return C.esc(value)


def cell(value) -> str:
    """One table cell's text, escaped: timestamps as ISO, lists comma-joined, missing values empty."""
    if isinstance(value, list | tuple | set):
        return esc(", ".join(map(str, value)))
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        v = value.tolist()
        if isinstance(v, list):
            return esc(", ".join(map(str, v)))
    if isinstance(value, pd.Timestamp):
        return esc(value.isoformat())
    if isinstance(value, float) and value == value:
        return esc(f"{value:.6g}")
    if isinstance(value, bytes):
        return esc(value.hex())
    return esc(value)


def table_html(df: pd.DataFrame, columns=None, max_rows: int = MAX_ROWS, cls: str = "") -> str:
    """A DataFrame as an HTML table, every header and cell escaped."""
    cols = [c for c in (columns or df.columns) if c in df.columns]
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for row in df[cols].head(max_rows).itertuples(index=False, name=None):
        body.append("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>")
    note = (f'<p class="muted">first {max_rows:,} of {len(df):,} rows; every row is in the JSON and Parquet '
            "exports</p>") if len(df) > max_rows else ""
    return f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>' + "".join(
        body) + f"</tbody></table></div>{note}"


def _captures(a) -> str:
    items = []
    for f, s in zip(a.files, a.captures, strict=True):
        d = s.to_dict()
        items.append(f"<li><b>{esc(os.path.basename(f))}</b>: {esc(s.format)}, {s.packets:,} packets, "
                     f"{s.duration_s:.3f} s from {esc(d.get('first_time'))} to {esc(d.get('last_time'))}"
                     + "".join(f"<br><span style='color:#b35900'>time: {esc(w)}</span>" for w in s.time_warnings[:5])
                     + "</li>")
    return "<ul>" + "".join(items) + "</ul>"


def verdict_html(a) -> str:
    calls = C.table(a, "calls")
    if calls is not None:
        findings = C.table(a, "findings")
        titles = [] if findings is None else list(findings[findings.code == "one-direction-capture"].title)
        note = "".join(f"<p><b>{esc(t)}</b>: answers and the other media direction are not in it.</p>"
                       for t in titles)
        if len(calls) == 0:
            return note + (f"<p>{esc(C.no_call_text(a))}</p>" if not note
                           else "<p>No call can be told from one direction of its packets.</p>")
        return note + table_html(calls, VERDICT_COLUMNS, cls="verdict")
    sessions = C.table(a, "sessions")
    out = '<p class="muted">The topology stage is not available: ICE sessions instead of calls.</p>'
    if sessions is None or len(sessions) == 0:
        return out + "<p>No ICE session in this capture.</p>"
    return out + table_html(sessions, SESSION_COLUMNS, cls="verdict")


def findings_html(a) -> str:
    from ..topology.findings import frame_refs

    f = C.table(a, "findings")
    if f is None:
        return '<p class="muted">Findings are not available in this analysis (no topology stage).</p>'
    if len(f) == 0:
        return "<p>No findings.</p>"
    out = []
    for r in f.to_dict(orient="records"):
        sev = str(r.get("severity") or "info")
        call = r.get("call")
        where = f"call {esc(call)}" if call is not None and not pd.isna(call) else "capture"
        parts = [f'<div class="finding {esc(sev)}"><div><span class="sev">{esc(sev)}</span>'
                 f'<b>{esc(r.get("title"))}</b> <span class="muted">({esc(r.get("code"))}, {where})</span></div>']
        for label, key in (("Why", "explanation"), ("Evidence", "evidence"), ("What to do", "action")):
            if esc(r.get(key)):
                parts.append(f"<div><b>{label}:</b> {esc(r.get(key))}</div>")
        frames = esc(", ".join(frame_refs(list(r.get("frames") or []), r.get("frame_files"), len(a.files))))
        if frames:
            parts.append(f"<div><b>Frames:</b> {frames}</div>")
        if isinstance(r.get("display_filter"), str) and r["display_filter"]:
            parts.append(f'<div><b>Wireshark filter:</b> <code class="filter">{esc(r["display_filter"])}</code></div>')
        out.append("".join(parts) + "</div>")
    return "".join(out)


def figure_specs(a) -> list[tuple[str, str, dict | None, str]]:
    """[(id, title, figure as JSON-ready dict or None, error text)] for the three figures."""
    out = []
    for name, title in FIGURES:
        try:
            fig = _builder(name)(a)
            out.append((f"fig-{name}", title, fig, ""))
        except Exception as e:  # one broken figure must not cost the whole report
            warnings.warn(f"{name} figure failed: {e!r}", stacklevel=2)
            out.append((f"fig-{name}", title, None, f"{type(e).__name__}: {e}"))
    return out


def _builder(name: str) -> Callable:
    from . import figures

    return getattr(figures, name)


def _figures_js(specs) -> str:
    """One script drawing every figure; the figure JSON comes from plotly with '<', '>' and '/' escaped."""
    calls = "".join(f'_plot("{div}",{fig.to_json()});' for div, _, fig, _ in specs if fig is not None)
    config = json.dumps({"displaylogo": False, "responsive": True})
    return ("(function(){var cfg=" + config + ";function _plot(id,f){Plotly.newPlot(document.getElementById(id),"
            "f.data,f.layout,cfg);}" + calls + "})();")


def _page(title: str, body: str, scripts: list[str]) -> str:
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                      for s in scripts)
    csp = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data: blob:; "
           "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")
    tags = "".join(f'<script type="text/javascript">{s}</script>' for s in scripts[:1])
    tail = "".join(f'<script type="text/javascript">{s}</script>' for s in scripts[1:])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style>{tags}</head><body>{body}{tail}</body></html>\n")


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def render(a) -> str:
    """The report of an Analysis as one HTML string."""
    specs = figure_specs(a)
    names = ", ".join(os.path.basename(f) for f in a.files)
    parts = [f"<h1>Call-flow report: {esc(names)}</h1>", f'<div class="meta">{_captures(a)}'
             f"Times on the figures are seconds from the capture start; hover for frame numbers and wall-clock "
             f"times. Network profile: {esc(a.profile.source)}.</div>",
             "<h2>Verdict</h2>", verdict_html(a), "<h2>Findings</h2>", findings_html(a)]
    for div, title, fig, err in specs:
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(f'<div id="{div}" class="figure"></div>' if fig is not None else
                     f'<div id="{div}" class="figure-error">This figure could not be drawn: {esc(err)}</div>')
    parts.append("<h2>Tables</h2>")
    for name in a.tables:
        df = getattr(a, name)
        if isinstance(df, pd.DataFrame):
            if len(df) == 0:  # an empty table is a line, not a box of headers
                parts.append(f'<p class="muted">{esc(name)}: no rows</p>')
                continue
            rows = "1 row" if len(df) == 1 else f"{len(df):,} rows"
            parts.append(f"<details{' open' if name in ('calls', 'findings') else ''}><summary>{esc(name)} "
                         f"({rows})</summary>{table_html(df)}</details>")
    return _page(f"callflow report: {names}", "".join(parts), [_plotlyjs(), _figures_js(specs)])


def write_html(a, path: str | os.PathLike) -> Path:
    """Write the report of an Analysis to `path` (one self-contained HTML file); returns the path."""
    p = Path(path)
    p.write_text(render(a), encoding="utf-8")
    return p


def figure_page(fig, title: str) -> str:
    """One figure as a self-contained HTML page (plotly.js inlined)."""
    body = f'<h1>{esc(title)}</h1><div id="fig-0" class="figure"></div>'
    return _page(title, body, [_plotlyjs(), _figures_js([("fig-0", title, fig, "")])])


def write_figure(fig, path: str | os.PathLike, title: str) -> Path:
    p = Path(path)
    p.write_text(figure_page(fig, title), encoding="utf-8")
    return p
