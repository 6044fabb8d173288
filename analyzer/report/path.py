"""The path diagram: the selected media path of each call drawn across the zones (customer network,
VPN, internet, cloud), one row per call.

Hops are the endpoints of the selected candidate pair: for a relayed pair the client, the TURN server
(with the relayed address it allocated) and the peer; for a direct pair the two ends. Each link says
its transport and the flow label of the topology stage (Flow 2 ... Flow 6) when the flows table is
there. Findings are marked on the hop or link they concern (the one whose addresses their evidence
names; the call's first link otherwise), coloured by severity.

Traces: 'links' (lines), 'link labels' (transport and flow label, hover with the 5-tuple), 'hops'
(markers with address, port and candidate type) and 'findings' (only when there are findings).
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go

from . import common as C

SEVERITY_COLORS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
ZONE_FILL = {"customer": "rgba(44,160,44,0.08)", "vpn": "rgba(148,103,189,0.10)", "internet": "rgba(127,127,127,0.08)",
             "cloud": "rgba(31,119,180,0.10)"}


class Hop(NamedTuple):
    address: str
    port: int
    kind: str  # candidate type or role
    zone: str


class Link(NamedTuple):
    a: int  # index into the hops
    b: int
    transport: str
    label: str  # flow label or ''
    what: str  # hover detail
    selected: bool = True  # False: no pair was selected, this is the pair ICE tried


class CallPath(NamedTuple):
    title: str
    hops: list[Hop]
    links: list[Link]
    note: str
    findings: pd.DataFrame


def _endpoint(text: str) -> tuple[str, int] | None:
    try:
        host, port = text.strip().rsplit(":", 1)
        return host, int(port)
    except ValueError:
        return None


def _flow_index(a) -> dict[frozenset, tuple[str, str]]:
    flows = C.table(a, "flows")
    out: dict[frozenset, tuple[str, str]] = {}
    if flows is None or len(flows) == 0:
        return out
    label = flows["label"].astype(str) if "label" in flows else pd.Series("", index=flows.index)
    for s, sp, d, dp, t, lab in zip(flows["src"], flows["sport"], flows["dst"], flows["dport"],
                                     flows["transport"].astype(str), label, strict=True):
        if not (pd.isna(sp) or pd.isna(dp)):
            out[frozenset({(str(s), int(sp)), (str(d), int(dp))})] = (t, lab)
    return out


def hops_of(p, roles: C.Roles, flows: dict) -> tuple[list[Hop], list[Link]]:
    """Hops and links of one selected pair (a row of the pairs table)."""
    local = (str(p.local_address), int(p.local_port))
    remote = (str(p.remote_address), int(p.remote_port))

    def hop(e: tuple[str, int], kind: str | None = None) -> Hop:
        k = kind if kind and kind != "unknown" else roles.kind(*e)
        return Hop(e[0], e[1], k, roles.zone(e[0]))

    def link(i: int, j: int, e1, e2, transport: str, what: str) -> Link:
        t, lab = flows.get(frozenset({e1, e2}), (transport, ""))
        return Link(i, j, t or transport, lab if lab not in ("", "nan") else "", what)

    wire = [_endpoint(x) for x in str(p.wire).split("->")] if isinstance(p.wire, str) else []
    if p.relayed and len(wire) == 2 and all(wire):
        w0, w1 = wire
        client, server = (w1, w0) if w0 in roles.servers or roles.role(w0[0]) == "TURN server" else (w0, w1)
        relay, peer, peer_kind = (local, remote, p.remote_type) if p.local_type == "relay" else (
            remote, local, p.local_type)
        hops = [hop(client), hop(server, "TURN server"), hop(relay, "relay"), hop(peer, peer_kind)]
        links = [link(0, 1, client, server, "udp", f"{C.esc(client[0])}:{client[1]} → {C.esc(server[0])}:{server[1]}"
                      " (to the TURN server)"),
                 link(1, 2, server, relay, "", "allocation on the TURN server"),
                 link(2, 3, relay, peer, str(p.transport), f"{C.esc(relay[0])}:{relay[1]} → {C.esc(peer[0])}:"
                      f"{peer[1]} (relayed)")]
        if server[0] == relay[0]:  # the relayed address is on the server's address: one node
            hops = [hops[0], Hop(server[0], server[1], f"TURN server, relay :{relay[1]}", hops[1].zone), hops[3]]
            links = [links[0], Link(1, 2, *links[2][2:])]
        return hops, links
    hops = [hop(local, p.local_type), hop(remote, p.remote_type)]
    return hops, [link(0, 1, local, remote, str(p.transport),
                       f"{C.esc(local[0])}:{local[1]} → {C.esc(remote[0])}:{remote[1]}")]


def call_paths(a) -> list[CallPath]:
    """One CallPath per call (calls table), or per ICE session when there is no calls table."""
    roles, flows = C.Roles(a), _flow_index(a)
    pairs, sessions = C.table(a, "pairs"), C.table(a, "sessions")
    findings = C.table(a, "findings")
    calls = C.table(a, "calls")
    rows: list[tuple[str, list[int], str, object]] = []
    if calls is not None and len(calls):
        for c in calls.to_dict(orient="records"):
            v = c.get("sessions")
            sess = [int(x) for x in v] if isinstance(v, list | tuple) else []
            rows.append((f"call {c['call']}: {C.esc(c.get('topology'))}", sess, C.esc(c.get("path")), c["call"]))
    elif sessions is not None:
        for s in sessions.itertuples(index=False):
            rows.append((f"ICE session {s.session}: {C.esc(s.state)}", [int(s.session)], C.esc(s.path), None))
    out = []
    for title, sess, path_text, call in rows:
        hops: list[Hop] = []
        links: list[Link] = []
        tried = False
        for sid in sess:
            p, selected = _selected(pairs, sessions, sid)
            if p is not None:
                h, lk = hops_of(p, roles, flows)
                base = len(hops)
                hops += h
                links += [Link(x.a + base, x.b + base, *x[2:5], selected) for x in lk]
                tried |= not selected
        f = _findings_of(findings, call, hops)
        note = ("no candidate pair" + (f": {path_text}" if path_text else "") if not hops
                else "no pair selected: the pair ICE tried first" if tried else "")
        out.append(CallPath(title, hops, links, note, f))
    return out


def _findings_of(findings, call, hops: list[Hop]) -> pd.DataFrame:
    """The call's findings, and the findings of no call whose evidence names one of its hops."""
    if findings is None or len(findings) == 0 or "call" not in findings:
        return pd.DataFrame()
    mine = findings["call"] == call if call is not None else pd.Series(False, index=findings.index)
    loose = findings["call"].isna()
    if hops and loose.any():
        text = findings[[c for c in ("evidence", "explanation") if c in findings]].astype(str).agg(" ".join, axis=1)
        loose &= text.map(lambda t: any(f"{h.address}:{h.port}" in t for h in hops))
    else:
        loose &= False
    return findings[mine.fillna(False).astype(bool) | loose]


def _selected(pairs, sessions, sid: int):
    """(pair row, True) for the session's selected pair; (the nominated or most checked pair, False) when
    none was selected; (None, False) without pairs."""
    if pairs is None or sessions is None:
        return None, False
    sp = pairs[pairs["session"] == sid]
    s = sessions[sessions["session"] == sid]
    if len(sp) == 0:
        return None, False
    if len(s) and not pd.isna(s["selected_pair"].iloc[0]):
        sel = sp[sp["pair"] == int(s["selected_pair"].iloc[0])]
        if len(sel):
            return next(sel.itertuples(index=False)), True
    order = sp.assign(_n=sp["nominated"].astype(int)).sort_values(["_n", "checks", "pair"], ascending=[False, False,
                                                                                                       True])
    return next(order.itertuples(index=False)), False


def path_diagram(a) -> go.Figure:
    """The path figure of an Analysis (see the module docstring)."""
    paths = call_paths(a)
    fig = go.Figure()
    zones = list(C.ZONE_ORDER)
    n = max(len(paths), 1)
    for i, z in enumerate(zones):
        fig.add_shape(type="rect", x0=i, x1=i + 1, y0=-0.6, y1=n - 0.4, layer="below", line={"width": 0},
                      fillcolor=ZONE_FILL[z])
        fig.add_annotation(x=i + 0.5, y=-0.75, text=f"<b>{C.ZONE_NAMES[z]}</b>", showarrow=False,
                           font={"size": 13}, yanchor="bottom")
    hx, hy, htext, hhover = [], [], [], []
    lines: dict[bool, tuple[list, list]] = {True: ([], []), False: ([], [])}
    mx, my, mtext, mhover = [], [], [], []
    hpos = []
    fx, fy, fcolor, fhover, ftext = [], [], [], [], []
    for row, cp in enumerate(paths):
        pos = _positions(cp.hops, zones)
        for h, (x, _) in zip(cp.hops, pos, strict=True):  # labels alternate above/below within a zone
            hx.append(x)
            hy.append(row)
            hpos.append("bottom center" if _ in ("odd",) else "top center")
            htext.append(f"{C.esc(h.address)}:{h.port}<br>{C.esc(h.kind)}")
            zone = C.ZONE_NAMES.get(h.zone, h.zone)
            hhover.append(f"<b>{C.esc(h.address)}:{h.port}</b><br>{C.esc(h.kind)}<br>zone: {C.esc(zone)}")
        for lk in cp.links:
            (x0, _), (x1, _) = pos[lk.a], pos[lk.b]
            lines[lk.selected][0].extend([x0, x1, None])
            lines[lk.selected][1].extend([row, row, None])
            mx.append((x0 + x1) / 2)
            my.append(row)
            mtext.append(" · ".join(t for t in (C.esc(lk.transport).upper(), C.esc(lk.label)) if t))
            mhover.append(f"{lk.what}<br>transport: {C.esc(lk.transport)}" + (f"<br>{C.esc(lk.label)}" if lk.label
                                                                                 else ""))
        if cp.note:
            fig.add_annotation(x=2, y=row + 0.3, text=cp.note, showarrow=False, font={"color": "#666", "size": 10})
        for k, f in enumerate(cp.findings.to_dict(orient="records")):
            x = _finding_x(f, cp, pos)
            fx.append(x)
            fy.append(row - 0.4 - 0.1 * k)
            ftext.append(C.esc(f.get("code")))
            fcolor.append(SEVERITY_COLORS.get(str(f.get("severity")), "#d62728"))
            refs = _frames(f.get("frames"), f.get("frame_files"), len(a.files))
            fhover.append("<br>".join(x for x in (f"<b>{C.esc(f.get('code'))}</b> ({C.esc(f.get('severity'))})",
                                                  C.esc(f.get("title")), C.esc(f.get("evidence")),
                                                  "frames " + C.esc(refs)) if x))
    fig.add_trace(go.Scatter(x=lines[True][0], y=lines[True][1], mode="lines", name="links",
                             line={"color": "#444", "width": 2}, hoverinfo="skip"))
    if lines[False][0]:
        fig.add_trace(go.Scatter(x=lines[False][0], y=lines[False][1], mode="lines", name="tried, not selected",
                                 line={"color": "#999", "width": 2, "dash": "dash"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=mx, y=my, mode="text", name="link labels", text=mtext, textposition="bottom center",
                             hovertext=mhover, hoverinfo="text", textfont={"size": 10, "color": "#333"}))
    fig.add_trace(go.Scatter(x=hx, y=hy, mode="markers+text", name="hops", text=htext, textposition=hpos,
                             marker={"size": 14, "color": "#1f77b4", "line": {"color": "white", "width": 1}},
                             hovertext=hhover, hoverinfo="text", textfont={"size": 10}))
    if fx:
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="markers+text", name="findings", hovertext=fhover, hoverinfo="text",
                                 text=ftext, textposition="middle right", textfont={"size": 10, "color": fcolor},
                                 marker={"symbol": "triangle-up", "size": 14, "color": fcolor}))
    if not paths:
        fig.add_annotation(x=2, y=0, text="no ICE session or call in this capture", showarrow=False)
    fig.update_layout(
        title="Media path per call", template="plotly_white", height=200 + 130 * n, hovermode="closest",
        margin={"l": 200, "r": 20, "t": 80, "b": 20}, showlegend=True, legend={"orientation": "h", "y": -0.05},
        xaxis={"range": [0, len(zones)], "visible": False},
        yaxis={"range": [n - 0.4, -1.0], "tickvals": list(range(len(paths))), "ticktext": [p.title for p in paths],
               "showgrid": False, "zeroline": False},
    )
    return fig


def _positions(hops: list[Hop], zones: list[str]) -> list[tuple[float, str]]:
    per: dict[str, list[int]] = {}
    for i, h in enumerate(hops):
        per.setdefault(h.zone if h.zone in zones else "internet", []).append(i)
    out: list[tuple[float, str]] = [(0.0, "")] * len(hops)
    for z, idx in per.items():
        for k, i in enumerate(idx):
            out[i] = (zones.index(z) + (k + 1) / (len(idx) + 1), "odd" if k % 2 else "even")
    return out


def _frames(v, files=None, n_files: int = 1) -> str:
    from ..topology.findings import frame_refs

    if isinstance(v, list | tuple):
        return ", ".join(frame_refs(list(v[:20]), files, n_files))
    return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def _finding_x(f: dict, cp: CallPath, pos) -> float:
    """x of the hop or link the finding names (its evidence mentions the addresses), else the first link."""
    text = " ".join(str(f.get(k) or "") for k in ("evidence", "explanation", "title"))
    named = [i for i, h in enumerate(cp.hops) if h.address and h.address in text]
    for lk in cp.links:
        if lk.a in named and lk.b in named:
            return (pos[lk.a][0] + pos[lk.b][0]) / 2
    if named:
        return pos[named[0]][0]
    if cp.links:
        return (pos[cp.links[0].a][0] + pos[cp.links[0].b][0]) / 2
    return 2.0
