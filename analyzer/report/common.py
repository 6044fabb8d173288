"""What the figures share: the time origin, escaping, endpoint roles and zones, STUN outcomes, DTLS
flights, the ICE moments and the media paths.

Everything here reads the Analysis tables; any table may be missing (a stage not built yet) or empty,
and every helper then returns an empty result rather than failing. Strings that come from packets are
passed through `esc()` before they reach a figure: plotly renders a subset of HTML in hover and label
text, and a capture is untrusted input.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd

COLORS = {
    "success": "#2ca02c",
    "error": "#d62728",
    "unanswered": "#7f7f7f",
    "indication": "#9e9e9e",
    "dtls": "#9467bd",
    "connected": "#2ca02c",
    "nominated": "#1f77b4",
    "first media": "#ff7f0e",
    "media": "rgba(255,127,14,0.25)",
}
TURN_METHODS = ("Allocate", "Refresh", "CreatePermission", "ChannelBind")
METHOD_SYMBOLS = {
    "Binding": "circle",
    "Allocate": "square",
    "Refresh": "diamond",
    "CreatePermission": "cross",
    "ChannelBind": "star",
}
ZONE_ORDER = ("customer", "vpn", "internet", "cloud")
ZONE_NAMES = {"customer": "customer network", "vpn": "VPN", "internet": "internet", "cloud": "cloud"}


def esc(value: Any) -> str:
    """Text for a figure or the report: '' for a missing value, HTML-escaped otherwise."""
    if value is None:
        return ""
    if not isinstance(value, str | bytes | list | tuple | dict):
        try:
            if pd.isna(value):
                return ""
        except (TypeError, ValueError):
            pass
    return html.escape(str(value), quote=True)


def table(a, name: str) -> pd.DataFrame | None:
    """The table, or None when this analysis has no such table (a stage not available)."""
    if name not in a.tables:
        return None
    df = getattr(a, name)
    return df if isinstance(df, pd.DataFrame) else None


def origin_ns(a) -> int:
    """Capture start: the earliest packet over all files (seconds on the figures count from here)."""
    firsts = [c.first_ts_ns for c in a.captures if c.first_ts_ns is not None]
    return min(firsts) if firsts else 0


def seconds(ts_ns, t0: int) -> np.ndarray:
    return (np.asarray(ts_ns, dtype="int64") - t0) / 1e9


def absolute(ts_ns) -> list[str]:
    """UTC wall-clock text for hover, microsecond precision."""
    idx = pd.to_datetime(np.asarray(ts_ns, dtype="int64"), unit="ns", utc=True)
    return [t.strftime("%Y-%m-%d %H:%M:%S.%f UTC") for t in idx]


def to_ns(col) -> np.ndarray:
    """Nanoseconds since the epoch of a datetime column, whatever its resolution (NaT -> -1)."""
    s = pd.to_datetime(pd.Series(col), utc=True).dt.as_unit("ns")
    missing = s.isna().to_numpy()
    out = s.fillna(pd.Timestamp(0, tz="UTC")).astype("int64").to_numpy(copy=True)
    out[missing] = -1
    return out


class Roles:
    """What each address is, from the allocations, candidates and the network profile."""

    def __init__(self, a) -> None:
        self.profile = a.profile
        self.roles: dict[str, str] = {}
        self.servers: set[tuple[str, int]] = set()
        self.ctype: dict[tuple[str, int], str] = {}
        cands = table(a, "candidates")
        if cands is not None:
            for addr, port, typ in zip(cands["address"], cands["port"], cands["type"], strict=True):
                if not pd.isna(port):
                    self.ctype.setdefault((str(addr), int(port)), str(typ))
        allocs = table(a, "allocations")
        if allocs is not None and len(allocs):
            for col, role in (("client", "client"), ("relayed_address", "relay"), ("server", "TURN server")):
                for v in allocs[col].dropna():
                    self.roles[str(v)] = role
            self.servers = {(str(h), int(p)) for h, p in zip(allocs["server"], allocs["server_port"], strict=True)
                            if not pd.isna(h) and not pd.isna(p)}
        stun = table(a, "stun")
        if stun is not None and len(stun) and "username" in stun:  # Binding without USERNAME: not ICE
            plain = stun[(stun["method"].astype(str) == "Binding") & (stun["cls"].astype(str) == "request")
                         & stun["username"].isna() & ~stun["relayed"].astype(bool)]
            for v in plain["dst"].astype(str).unique():
                self.roles.setdefault(v, "STUN server")
        self.types: dict[str, set[str]] = {}
        for (addr, _), t in self.ctype.items():
            self.types.setdefault(addr, set()).add(t)
        self.zones: dict[str, str] = {}
        flows = table(a, "flows")
        if flows is not None and len(flows) and "src_zone" in flows:
            for side in ("src", "dst"):
                for addr, z in zip(flows[side].astype(str), flows[f"{side}_zone"].astype(str), strict=True):
                    self.zones.setdefault(addr, z)

    def zone(self, address: str) -> str:
        """The zone the topology stage gave the address (flows table), else the network profile's."""
        return self.zones.get(str(address)) or self.profile.zone(str(address)).zone

    def role(self, address: str) -> str:
        r = self.roles.get(str(address))
        if r:
            return r
        types = self.types.get(str(address), set()) - {"unknown"}
        return "/".join(sorted(types)) if types else "peer"

    def kind(self, address: str, port: int | None) -> str:
        """Candidate type of an address:port, or the address's role."""
        if port is not None and (address, port) in self.ctype:
            t = self.ctype[(address, port)]
            if t != "unknown":
                return t
        return self.role(address)

    def endpoint(self, address: str) -> str:
        return f"{self.role(address)} {address}"

    def lane(self, a: str, b: str) -> str:
        x, y = sorted((str(a), str(b)), key=lambda v: (_role_rank(self.role(v)), v))
        return f"{esc(self.endpoint(x))}<br>↔ {esc(self.endpoint(y))}"


def _role_rank(role: str) -> int:
    return {"client": 0, "host": 1, "srflx": 2, "prflx": 2, "relay": 3, "TURN server": 4, "STUN server": 4}.get(
        role, 5)


def stun_events(a) -> pd.DataFrame:
    """STUN/TURN messages with an `outcome`: requests take the outcome of their transaction (success,
    error, unanswered), responses their class; Send/Data that only carry a relayed message are dropped
    (the inner message is shown instead), other Send/Data count as indications."""
    s = table(a, "stun")
    if s is None or len(s) == 0:
        return pd.DataFrame(columns=["frame", "ts_ns", "method", "cls", "outcome"])
    s = s.copy()
    method = s["method"].astype(str)
    cls = s["cls"].astype(str)
    file = s["file"].to_numpy() if "file" in s else np.zeros(len(s), dtype=int)
    key = pd.Series(list(zip(file, s["transaction_id"], strict=True)), index=s.index)
    ok, bad = set(key[cls == "success"]), set(key[cls == "error"])
    outcome = pd.Series(np.where(cls == "success", "success", np.where(cls == "error", "error", "indication")),
                        index=s.index, dtype=object)
    req = cls == "request"
    outcome[req] = [("error" if k in bad else "success" if k in ok else "unanswered") for k in key[req]]
    carries = method.isin(["Send", "Data"])
    outcome[carries] = "indication"
    s["outcome"] = outcome
    relayed = s["relayed"].to_numpy(dtype=bool)
    where = list(zip(file, s["frame"], strict=True))
    outer = {w for w, r in zip(where, relayed, strict=True) if r}
    carrier = np.array([w in outer for w in where], dtype=bool) & carries.to_numpy() & ~relayed
    blank = s["src"].astype(str).eq("") & s["outer_src"].notna() if "outer_src" in s else None
    if blank is not None and blank.any():  # a relayed message whose inner addresses are not shown: the wire's
        for inner in ("src", "sport", "dst", "dport"):
            s[inner] = s[inner].astype(object).where(~blank, s["outer_" + inner])
    return call_messages(a, s[~carrier])


MAX_FIGURE_MESSAGES = 5000


def call_messages(a, s: pd.DataFrame, limit: int = MAX_FIGURE_MESSAGES) -> pd.DataFrame:
    """Beyond `limit` messages (a perimeter capture: thousands of one-packet STUN flows beside the
    call), only those between the calls' own addresses (ICE pairs, allocations, streams) are drawn."""
    if len(s) <= limit:
        return s
    ours: set[str] = set()
    for name, cols in (("pairs", ("local_address", "remote_address")), ("streams", ("src", "dst")),
                       ("allocations", ("client", "server", "relayed_address", "mapped_address"))):
        t = table(a, name)
        if t is not None and len(t):
            for c in cols:
                if c in t:
                    ours.update(t[c].dropna().astype(str))
    keep = s["src"].astype(str).isin(ours) & s["dst"].astype(str).isin(ours)
    return s[keep.to_numpy()]


def dtls_flights(a) -> pd.DataFrame:
    """DTLS handshake records grouped into flights: consecutive records of one session in one direction.
    Application data is left out (it is media or data channel traffic, not the handshake)."""
    d = table(a, "dtls")
    cols = ["frame", "ts_ns", "src", "sport", "dst", "dport", "relayed", "what", "frames", "alert", "retransmission",
            "file"]
    if d is None or len(d) == 0:
        return pd.DataFrame(columns=cols)
    d = d[d["content_type"].astype(str) != "application_data"]
    if len(d) == 0:
        return pd.DataFrame(columns=cols)
    d = d.sort_values(["file", "frame"], kind="stable") if "file" in d else d.sort_values("frame", kind="stable")
    direction = d["src"].astype(str) + ":" + d["sport"].astype(str) + ">" + d["dst"].astype(str) + ":" + d[
        "dport"
    ].astype(str)
    new = direction.ne(direction.shift())
    if "file" in d:
        new |= d["file"].ne(d["file"].shift())
    flight = new.cumsum()
    out = []
    for _, g in d.groupby(flight, sort=True):
        what = [str(h) if isinstance(h, str) and h else str(c) for h, c in zip(g["handshake_type"], g["content_type"],
                                                                                 strict=True)]
        alerts = [str(x) for x in g["alert"] if isinstance(x, str) and x] if "alert" in g else []
        first = g.iloc[0]
        out.append({
            "frame": int(first["frame"]), "ts_ns": int(first["ts_ns"]), "src": str(first["src"]),
            "sport": int(first["sport"]), "dst": str(first["dst"]), "dport": int(first["dport"]),
            "relayed": bool(first["relayed"]), "what": ", ".join(dict.fromkeys(what)),
            "frames": sorted(set(int(f) for f in g["frame"])), "alert": "; ".join(alerts),
            "retransmission": bool(g["retransmission"].any()) if "retransmission" in g else False,
            "file": int(first["file"]) if "file" in g else 0,
        })
    return pd.DataFrame(out, columns=cols)


def media_paths(a, min_packets: int = 10) -> list:
    """Media paths (inner 5-tuple when relayed) that match a candidate pair or carry enough packets to
    be media rather than a heuristic's false positive."""
    paths = a.paths.paths() if hasattr(a, "paths") else []
    ends = pair_ends(a)
    return [p for p in paths if p.packets >= min_packets or frozenset({(p.src, p.sport), (p.dst, p.dport)}) in ends]


def pair_ends(a, selected_only: bool = False) -> dict[frozenset, int]:
    """{ {(local addr, port), (remote addr, port)} : session } for the candidate pairs."""
    pairs = table(a, "pairs")
    out: dict[frozenset, int] = {}
    if pairs is None or len(pairs) == 0:
        return out
    if selected_only:
        pairs = pairs[pairs["selected"]]
    for r in pairs.itertuples(index=False):
        out[frozenset({(str(r.local_address), int(r.local_port)), (str(r.remote_address), int(r.remote_port))})] = int(
            r.session
        )
    return out


def moments(a) -> pd.DataFrame:
    """ICE 'connected', 'nominated' and 'first media' moments, one row each per ICE session."""
    rows = []
    sessions, pairs = table(a, "sessions"), table(a, "pairs")
    if sessions is not None:
        for s in sessions.itertuples(index=False):
            if not pd.isna(s.connected_ts):
                rows.append(("connected", int(s.session), int(s.connected_frame), pd.Timestamp(s.connected_ts).value))
    if pairs is not None and len(pairs):
        nom = pairs[pairs["nominated"] & pairs["first_success_frame"].notna()]
        for sess, g in nom.groupby("session"):
            g = g.sort_values("first_success_frame")
            rows.append(("nominated", int(sess), int(g["first_success_frame"].iloc[0]),
                         pd.Timestamp(g["first_success_ts"].iloc[0]).value))
    first: dict[int, tuple[int, int]] = {}
    ends = pair_ends(a, selected_only=True)
    from .series import media_spans

    for p in media_spans(a, min_packets=1):
        sess = ends.get(frozenset({(p.src, p.sport), (p.dst, p.dport)}))
        if sess is not None and (sess not in first or p.first_ts_ns < first[sess][1]):
            first[sess] = (p.first_frame, p.first_ts_ns)
    for sess, (frame, ts) in first.items():
        rows.append(("first media", sess, frame, ts))
    return pd.DataFrame(rows, columns=["moment", "session", "frame", "ts_ns"]).sort_values("ts_ns", kind="stable")


def pick(df: pd.DataFrame, *names: str) -> str | None:
    """The first of `names` that is a column of df."""
    return next((n for n in names if n in df.columns), None)


def no_call_text(a) -> str:
    """Why no call was found, naming what the capture does hold (an allocation, a stream) and only
    the evidence that is really absent: 'no TURN allocations' for a capture with one misleads."""
    seen, absent = [], []
    al, se, st = table(a, "allocations"), table(a, "sessions"), table(a, "streams")
    if al is not None and len(al):
        states = ", ".join(f"{n} {s}" for s, n in al.state.value_counts().items())
        frames = ", ".join(str(int(f)) for f in al.first_frame.head(5))
        seen.append(f"{len(al)} TURN allocation{'s' * (len(al) > 1)} ({states}; first frame {frames})")
    else:
        absent.append("TURN allocations")
    if se is not None and len(se):
        seen.append(f"{len(se)} ICE session{'s' * (len(se) > 1)}")
    else:
        absent.append("ICE checks")
    if st is not None and len(st):
        from ..topology.calls import MIN_MEDIA_CALL

        most = int(st.packets.max())
        why = f"at most {most} packets, fewer than a call's {MIN_MEDIA_CALL}" if most < MIN_MEDIA_CALL else "no call"
        seen.append(f"{len(st)} RTP stream{'s' * (len(st) > 1)} ({why})")
    else:
        absent.append("RTP media")
    text = "No call found: " + "; ".join(seen)
    if absent:
        text += (", but " if seen else "") + "no " + (", ".join(absent[:-1]) + " or " if len(absent) > 1 else "")
        text += absent[-1]
    return text + " in this capture."
