"""The words an annotated capture carries: one note per piece of evidence, on the frame that shows it.

Notes come from the analysis tables, each row already naming its file and frame: ICE checks and their
answers (pairs), nomination (stun), the selected pair's first media (streams), DTLS handshakes
(dtls_sessions, dtls), TURN allocations (allocations) and the findings. A finding's frames do not name
their file yet; `finding_frame_files` tells it where the tables can.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import pandas as pd

# The table columns a finding's frame numbers are drawn from (topology/findings.py), per finding code; a
# code not listed may draw on any of them. A frame of a finding lies in file F when every row of its
# code's columns holding that number is F's (pairs: only the finding's call's pairs).
_PAIRS = (("pairs", "first_check_frame"), ("pairs", "first_success_frame"))
_DTLS = tuple(("dtls_sessions", c) for c in ("first_frame", "client_hello_frame", "server_hello_frame"))
ANY_SOURCE = (*_PAIRS, ("allocations", "first_frame"), *_DTLS, ("flows", "first_frame"))
FINDING_FRAME_SOURCES = {
    "ice-failed": _PAIRS,
    "direct-path-blocked": _PAIRS,
    "relay-hairpin": _PAIRS,
    "non-cloud-relay": _PAIRS,
    "media-not-on-nominated-pair": _PAIRS,
    "tcp-fallback": (*_PAIRS, ("allocations", "first_frame"), ("flows", "first_frame")),
    "media-over-vpn": (*_PAIRS, ("flows", "first_frame")),
    "relay-unreachable": (("allocations", "first_frame"),),
    "dtls-failed": _DTLS,
    "unsupported-middlebox": (("flows", "first_frame"),),
}


class Note(NamedTuple):
    file: int | None  # None: a finding frame whose file the analysis cannot tell
    frame: int | None  # None: a note for the whole capture (its first section header)
    text: str


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _ep(addr, port) -> str:
    a = str(addr)
    return f"[{a}]:{int(port)}" if ":" in a else f"{a}:{int(port)}"


def _tables(a) -> set[str]:
    return set(a.tables)


def frame_sources(a, code: str = "", call=None) -> dict[int, set[int]]:
    """Frame number -> the files whose rows, in the columns finding `code` draws on, hold it."""
    out: dict[int, set[int]] = {}
    have = _tables(a)
    sessions = _call_sessions(a, call)
    for table, col in FINDING_FRAME_SOURCES.get(code, ANY_SOURCE):
        if table not in have:
            continue
        df = getattr(a, table)
        if col not in df.columns or "file" not in df.columns or not len(df):
            continue
        if table == "pairs" and sessions is not None:
            df = df[df.session.isin(sessions)]
        sub = df[[col, "file"]].dropna()
        for frame, file in zip(sub[col].astype("int64"), sub["file"].astype("int64"), strict=True):
            out.setdefault(int(frame), set()).add(int(file))
    return out


def _call_sessions(a, call) -> list[int] | None:
    """The ICE sessions of a finding's call (findings.py takes a call's pairs from these), None if unknown."""
    if call is None or pd.isna(call) or "calls" not in _tables(a):
        return None
    rows = a.calls[a.calls.call == int(call)]
    if not len(rows):
        return None
    v = rows.sessions.iloc[0]
    return [int(x) for x in v] if isinstance(v, list | tuple) else None


def finding_frame_files(a, r) -> dict[int, int | None]:
    """Each frame of finding `r` (a findings row): its file, the only one when there is one capture;
    otherwise the file whose source rows alone hold that frame number, None when several do (or none)."""
    frames = [int(f) for f in (r.frames if isinstance(r.frames, list) else [])]
    if len(a.files) == 1:
        return {f: 0 for f in frames}
    named = getattr(r, "frame_files", None)  # the rule said which file each frame is in
    index = {os.path.basename(str(f)): i for i, f in enumerate(a.files)}
    if (
        isinstance(named, list)
        and len(named) == len(frames)
        and len(set(frames)) == len(frames)
        and all(n in index for n in named)
    ):
        return {f: index[n] for f, n in zip(frames, named, strict=True)}
    sources = frame_sources(a, str(r.code), r.call)
    out: dict[int, int | None] = {}
    for f in frames:
        files = sources.get(f, set())
        out[f] = next(iter(files)) if len(files) == 1 else None
    return out


def pair_text(p) -> str:
    text = f"pair {_ep(p.local_address, p.local_port)} -> {_ep(p.remote_address, p.remote_port)} "
    text += f"({p.local_type} -> {p.remote_type}, {p.transport})"
    if bool(p.relayed) and isinstance(p.wire, str):
        text += f" through TURN, on the wire {p.wire}"
    return text


def _pair_notes(a) -> list[Note]:
    out = []
    media_seen: set = set()  # the two agents' rows of one selected pair: one first-media note
    for p in a.pairs.itertuples(index=False):
        flags = (
            [str(p.state)] + (["nominated"] if bool(p.nominated) else []) + (["selected"] if bool(p.selected) else [])
        )
        f = int(p.file)
        out.append(Note(f, _int(p.first_check_frame), f"ICE check, {pair_text(p)}, {', '.join(flags)}"))
        ok = _int(p.first_success_frame)
        if ok is not None:
            rtt = f", rtt {p.rtt_ms_min:.1f} ms" if pd.notna(p.rtt_ms_min) else ""
            out.append(Note(f, ok, f"ICE check answered (success), {pair_text(p)}{rtt}"))
        nom = _nomination_frame(a.stun, p) if bool(p.nominated) else None
        if nom is not None:
            out.append(Note(f, nom, f"ICE nomination (USE-CANDIDATE), {pair_text(p)}"))
        ends = (f, frozenset(((p.local_address, int(p.local_port)), (p.remote_address, int(p.remote_port)))))
        if bool(p.selected) and ends not in media_seen:
            media_seen.add(ends)
            first = _first_media(a, p)
            if first is not None:
                out.append(Note(f, first[0], f"selected pair: first media ({first[1]}), {pair_text(p)}"))
    return [n for n in out if n.frame is not None]


def _ends_match(df: pd.DataFrame, p) -> pd.Series:
    la, lp, ra, rp = p.local_address, int(p.local_port), p.remote_address, int(p.remote_port)
    fwd = (df.src == la) & (df.sport == lp) & (df.dst == ra) & (df.dport == rp)
    rev = (df.src == ra) & (df.sport == rp) & (df.dst == la) & (df.dport == lp)
    return (df.file == int(p.file)) & (fwd | rev)


def _nomination_frame(stun: pd.DataFrame, p) -> int | None:
    """The pair's first Binding request with USE-CANDIDATE, sent by the pair's agent."""
    if not len(stun):
        return None
    s = stun[(stun.method == "Binding") & (stun.cls == "request") & stun.use_candidate.fillna(False).astype(bool)]
    s = s[
        (s.file == int(p.file))
        & (s.src == p.local_address)
        & (s.sport == int(p.local_port))
        & (s.dst == p.remote_address)
        & (s.dport == int(p.remote_port))
    ]
    return int(s.frame.min()) if len(s) else None


def _first_media(a, p) -> tuple[int, str] | None:
    """The first RTP frame between the pair's ends in the pair's file, else its first DTLS record."""
    st = a.streams
    if len(st):
        m = st[_ends_match(st, p)]
        if len(m):
            r = m.loc[m.first_frame.idxmin()]
            return int(r.first_frame), f"RTP {r.kind} SSRC {r.ssrc_hex}"
    d = a.dtls
    if len(d):
        m = d[_ends_match(d, p)]
        if len(m):
            return int(m.frame.min()), "DTLS"
    return None


def _dtls_notes(a) -> list[Note]:
    out = []
    ds, d = a.dtls_sessions, a.dtls
    for r in ds.itertuples(index=False):
        f = int(r.file)
        who = f"{_ep(r.client, r.client_port)} -> {_ep(r.server, r.server_port)}"
        ch = _int(r.client_hello_frame)
        if ch is not None:
            out.append(Note(f, ch, f"DTLS ClientHello, {who}"))
        if bool(r.completed) and pd.notna(r.completed_ts):
            rows = d[(d.file == f) & (d.session == r.session) & (d.ts_ns == r.completed_ts.value)]
            if len(rows):
                prof = r.srtp_profile if isinstance(r.srtp_profile, str) and r.srtp_profile else "no SRTP profile"
                out.append(Note(f, int(rows.frame.min()), f"DTLS handshake complete ({prof}), {who}"))
        elif ch is not None:
            alerts = f", alerts {r.alerts}" if isinstance(r.alerts, str) and r.alerts else ""
            out.append(Note(f, _int(r.first_frame), f"DTLS handshake started here, never completed{alerts}, {who}"))
    return [n for n in out if n.frame is not None]


def _allocation_notes(a) -> list[Note]:
    out = []
    for r in a.allocations.itertuples(index=False):
        f = int(r.file)
        who = f"{_ep(r.client, r.client_port)} -> {_ep(r.server, r.server_port)}/{r.transport}"
        done = _int(r.allocated_frame)
        if done is not None and isinstance(r.relayed_address, str):
            mapped = f", mapped {_ep(r.mapped_address, r.mapped_port)}" if isinstance(r.mapped_address, str) else ""
            out.append(
                Note(f, done, f"TURN allocation {_ep(r.relayed_address, r.relayed_port)} (relayed){mapped}, {who}")
            )
        elif r.state in ("unanswered", "failed"):
            errors = f" ({r.errors})" if isinstance(r.errors, str) and r.errors else ""
            out.append(Note(f, _int(r.first_frame), f"TURN Allocate {r.state}{errors}, {who}"))
    return [n for n in out if n.frame is not None]


def finding_text(r) -> str:
    return f"finding {r.code} ({r.severity}): {r.title}"


def _finding_notes(a) -> list[Note]:
    out = []
    for r in a.findings.itertuples(index=False):
        frames = [int(f) for f in (r.frames if isinstance(r.frames, list) else [])]
        files = finding_frame_files(a, r)
        unknown = [f for f in frames if files[f] is None]
        for f in frames:
            if files[f] is not None:
                out.append(Note(files[f], f, finding_text(r)))
        if unknown:
            out.append(
                Note(
                    None,
                    None,
                    f"{finding_text(r)}; frames {', '.join(map(str, unknown))} of one of the "
                    f"captures {', '.join(a.files)} (the analysis does not tell which)",
                )
            )
    return out


def build_notes(a) -> list[Note]:
    """Every note, in the order they are written on a frame: ICE, DTLS, TURN, then findings."""
    return _pair_notes(a) + _dtls_notes(a) + _allocation_notes(a) + _finding_notes(a)


def per_file(notes: list[Note], files: int) -> tuple[list[dict[int, list[str]]], list[list[str]]]:
    """(frame -> texts) and the section-header texts, for each file; a note of unknown file goes on every
    file's section header."""
    frames: list[dict[int, list[str]]] = [{} for _ in range(files)]
    heads: list[list[str]] = [[] for _ in range(files)]
    for n in notes:
        targets = range(files) if n.file is None else [n.file]
        for i in targets:
            if n.frame is None or n.file is None:
                heads[i].append(n.text)
            else:
                texts = frames[i].setdefault(n.frame, [])
                if n.text not in texts:
                    texts.append(n.text)
    return frames, heads
