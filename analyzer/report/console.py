"""Rich console output, readable at 100 columns; plain text when stdout is not a terminal.

Strings from packets and file names are hostile: a USERNAME can hold ESC[2J or an OSC title sequence.
`printable` shows every control character escaped, as Wireshark shows them (\\x1b, \\n); `_esc` adds
rich's markup escaping for text placed inside markup, and `SafeConsole` applies `printable` to every
string it renders, so nothing raw reaches a terminal even from a place that forgot."""

from __future__ import annotations

import os
import re
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from ..capture.reader import CaptureSummary

# C0 controls, DEL, C1 controls, line/paragraph separators and the bidirectional overrides
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r"}


def _escape_one(m: re.Match) -> str:
    c = m.group()
    o = ord(c)
    return _NAMED.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")


def printable(text: Any) -> str:
    """`text` with every control character shown as an escape (ESC -> \\x1b, newline -> \\n): safe to
    put on a terminal. The one function for packet strings and file names on their way out."""
    return _CONTROL.sub(_escape_one, str(text))


class SafeConsole(Console):
    """A rich Console that renders no raw control character from any string it is given (its own
    styling is added after, and newlines it keeps)."""

    def render_str(self, text: str, **kwargs: Any):
        return super().render_str(_CONTROL_BUT_NEWLINE.sub(_escape_one, text), **kwargs)


def _columns() -> int | None:
    """COLUMNS from the environment, piped or not (`COLUMNS=80 callflow analyze ... | less`)."""
    v = os.environ.get("COLUMNS", "")
    return int(v) if v.isdigit() and int(v) >= 40 else None


def console(file: IO[str] | None = None, *, stderr: bool = False) -> Console:
    if file is not None:
        return SafeConsole(file=file, width=_columns() or 100)
    return SafeConsole(stderr=stderr, width=_columns() or (None if Console(stderr=stderr).is_terminal else 100))


def print_summary(s: CaptureSummary, out: Console | None = None) -> None:
    """One table per capture file."""
    out = out or console()
    t = Table(title=_esc(s.file), show_header=False, title_justify="left")
    t.add_column("field", style="bold")
    t.add_column("value")
    fmt = s.format + (" (gzip)" if s.compressed else "")
    t.add_row("format", fmt)
    t.add_row("link types", ", ".join(f"{k}: {v:,}" for k, v in s.link_types.items()) or "-")
    t.add_row("packets", f"{s.packets:,}")
    t.add_row("bytes", f"{s.bytes_captured:,} captured, {s.bytes_original:,} on the wire")
    d = s.to_dict()
    t.add_row("first", d["first_time"] or "-")
    t.add_row("last", d["last_time"] or "-")
    t.add_row("duration", f"{s.duration_s:.3f} s")
    dmg = sum(s.damaged.values())
    t.add_row("damaged", "none" if not dmg else ", ".join(f"{k}: {v:,}" for k, v in s.damaged.items()))
    for note in s.damage_notes[:5]:
        t.add_row("", f"[dim]{_esc(note)}[/dim]")
    for i, w in enumerate(s.time_warnings[:5]):
        t.add_row("time" if i == 0 else "", f"[yellow]{_esc(w)}[/yellow]")
    t.add_row("network", ", ".join(f"{k} {v:,}" for k, v in s.ip.items()) or "-")
    if s.encapsulations:
        t.add_row("tunnels", ", ".join(f"{k} {v:,}" for k, v in s.encapsulations.items()) + " packets (inner decoded)")
    t.add_row("flows", f"UDP {s.udp_flows:,}, TCP {s.tcp_flows:,}")
    # demultiplexing classes are what a payload's first byte allows (a guess); confirmed counts are what a
    # dissector read whole: the two are told apart in words (issue 17: "dtls 447" with no DTLS at all)
    t.add_row("first byte", ", ".join(f"{k} {v:,}" for k, v in s.classes.items() if v) or "-")
    t.add_row("", "[dim]payloads by their first byte (RFC 7983 ranges): what each could be, before parsing[/dim]")
    if s.confirmed or s.rejected:
        t.add_row("parsed as", ", ".join(f"{k} {v:,}" for k, v in s.confirmed.items()) or "none")
        t.add_row("", "[dim]messages a dissector read whole (the counts to trust)[/dim]")
        t.add_row("not parsed", ", ".join(f"{k} {v:,}" for k, v in s.rejected.items()) or "none")
        t.add_row("", "[dim]first byte in range, but no valid message[/dim]")
        for k, v in s.classes.items():
            if v and k != "other" and not s.confirmed.get(k) and not any(m.startswith(k) for m in s.confirmed):
                why = " (TLS over TCP starts with the same bytes)" if k == "dtls" and s.tcp_flows else ""
                none = f"{k}: {v:,} payloads in its byte range, none parsed as {k.upper()}{why}"
                t.add_row("", f"[yellow]{none}[/yellow]")
    for i, (name, n) in enumerate(s.messages.items()):
        t.add_row("messages" if i == 0 else "", f"{_esc(name)} {n:,}")
    if s.vpn_candidates:
        t.add_row("VPN candidates", f"{s.vpn_candidates:,} packets (ESP/AH, UDP 500/4500/51820/1194)")
    out.print(t)


def safe_markup(text: Any) -> str:
    """A packet string or file name to place inside rich markup: controls shown escaped, markup inert."""
    from rich.markup import escape

    return escape(printable(text))


_esc = safe_markup


def _table(title: str, df, columns: list[str], out: Console, mark=None) -> None:
    t = Table(
        title=title,
        title_justify="left",
        show_lines=False,
        padding=(0, 1) if (out.width or 100) >= 100 else (0, 0),
        collapse_padding=True,
    )
    rows = []
    for d in df.to_dict(orient="records"):
        cells = [
            "" if d.get(c) is None or (not isinstance(d.get(c), str) and _isna(d.get(c))) else _cell(d[c])
            for c in columns
        ]
        rows.append((cells, mark(d) if mark else None))
    # each column at least as wide as its longest word (an address:port is never broken mid-token; a
    # line wraps at spaces and continues under its own column), the room left shared by need
    lo = [min(max(map(len, [w for cells, _ in rows for w in cells[i].split()] + c.split())), 47)
          for i, c in enumerate(columns)]
    hi = [max([len(cells[i]) for cells, _ in rows] + [len(c), lo[i]]) for i, c in enumerate(columns)]
    pad = 2 if (out.width or 100) >= 100 else 0
    room = (out.width or 100) - (pad + 1) * len(columns) - 1
    if sum(lo) > room:
        _records(title, columns, rows, out)  # too narrow for every column side by side: one block per row
        return
    widths = hi
    if sum(hi) > room:
        need = sum(h - m for h, m in zip(hi, lo, strict=True))
        widths = [m + (room - sum(lo)) * (h - m) // need for h, m in zip(hi, lo, strict=True)]
    for c, w in zip(columns, widths, strict=True):
        t.add_column(c, width=w, overflow="fold")
    for cells, style in rows:
        t.add_row(*cells, style=style)
    out.print(t)


def _records(title: str, columns: list[str], rows: list, out: Console) -> None:
    """A table as one block per row, `column  value`, values wrapping under themselves: every column
    kept at any width."""
    out.print(f"[italic]{_esc(title)}[/italic]")
    for n, (cells, style) in enumerate(rows):
        g = Table.grid(padding=(0, 1))
        g.add_column(style="bold", min_width=max(map(len, columns)), no_wrap=True)
        g.add_column(overflow="fold")
        for c, v in zip(columns, cells, strict=True):
            g.add_row(_esc(c), v, style=style)
        if n:
            out.print()
        out.print(g)


def _cell(v) -> str:
    """A table cell: measured floats to two decimals (the tables carry the full value), the rest escaped."""
    if isinstance(v, float):
        return f"{v:.2f}"
    return _esc(str(v))


def _isna(v) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _file_names(a, df) -> list[str]:
    """A table's `file` column as the capture's name (client-a.pcap), not its index into a.files."""
    names = [os.path.basename(str(f)) for f in a.files]
    return [names[int(i)] if not _isna(i) and 0 <= int(i) < len(names) else "" for i in df["file"]]


def _ref(a, file, frame) -> str:
    """`client-a.pcap#10` when several captures were read, else `10`."""
    if len(a.files) <= 1 or file is None or _isna(file):
        return str(frame)
    return f"{_esc(os.path.basename(str(a.files[int(file)])))}#{frame}"


def print_ice(a, out: Console | None = None) -> None:
    """Sessions, candidates, pairs (selected in bold green, nominated marked) and TURN allocations."""
    out = out or console()
    if len(a.sessions) == 0 and len(a.allocations) == 0:
        out.print("No ICE connectivity checks or TURN allocations in this capture.")
        return
    for s in a.sessions.itertuples(index=False):
        t = Table(title=f"ICE session {s.session}: {_esc(s.ufrags)}", show_header=False, title_justify="left")
        t.add_column("field", style="bold")
        t.add_column("value")
        t.add_row("state", s.state)
        t.add_row("controlling", _esc(str(s.controlling)) if isinstance(s.controlling, str) else "not seen")
        t.add_row("checks from", f"frame {_ref(a, getattr(s, 'start_file', None), s.start_frame)} ({s.start_ts})")
        if not _isna(s.connected_frame):
            t.add_row("connected",
                      f"frame {_ref(a, getattr(s, 'connected_file', None), s.connected_frame)} ({s.connected_ts})")
        if not _isna(s.selected_pair):
            t.add_row("selected pair", f"{s.selected_pair} ({_esc(s.selected_by)})")
            t.add_row("path", _esc(s.path))
        if not _isna(s.nominated_pair):
            t.add_row("nominated pair", str(s.nominated_pair))
        if getattr(s, "nominations", ""):
            t.add_row("nominations", _esc(s.nominations))
        if s.switches:
            t.add_row("media switched", _esc(s.switches))
        if not _isna(s.restart_of):
            t.add_row("ICE restart of", f"session {s.restart_of}")
        if s.role_conflicts:
            t.add_row("role conflicts", f"{s.role_conflicts} (487)")
        out.print(t)
    narrow = (out.width or 100) < 140  # at 100 columns: fewer, joined columns
    cands = a.candidates.copy()
    cands["candidate"] = [f"{ad}:{p}/{t}" for ad, p, t in zip(cands.address, cands.port, cands.transport, strict=True)]
    cands["frame"] = [_ref(a, f, fr) if not _isna(fr) else "" for f, fr in zip(cands.file, cands.frame, strict=True)]
    _table("Candidates", cands, ["agent", "candidate", "type", "frame", "rule"], out)
    pairs = a.pairs.copy()
    pairs["mark"] = [
        "selected" if s else ("nominated" if n else "") for s, n in zip(pairs.selected, pairs.nominated, strict=True)
    ]
    pairs["rtt ms"] = pairs["rtt_ms_median"].round(1)
    pairs["id"] = [f"{s}.{p}" for s, p in zip(pairs.session, pairs.pair, strict=True)]
    pairs["checks/retx/ok"] = [
        f"{c}/{r}/{k}" for c, r, k in zip(pairs.checks, pairs.retransmissions, pairs.successes, strict=True)
    ]
    pairs["frame"] = [_ref(a, f, fr) for f, fr in zip(pairs.file, pairs.first_check_frame, strict=True)]
    pairs["media"] = pairs["media_packets"]
    cols = ["id", "agent", "description", "state", "mark", "checks/retx/ok", "errors", "rtt ms", "frame", "media"]
    if narrow:
        cols = ["id", "description", "state", "mark", "checks/retx/ok", "frame"]
    _table(
        "Candidate pairs (session.pair; selected in green)",
        pairs,
        cols,
        out,
        mark=lambda d: "bold green" if d["selected"] else None,
    )
    if len(a.allocations):
        al = a.allocations.copy()
        al["file"] = _file_names(a, al)
        al["client "] = [f"{c}:{p}" for c, p in zip(al.client, al.client_port, strict=True)]
        al["server "] = [f"{c}:{p}/{t}" for c, p, t in zip(al.server, al.server_port, al.transport, strict=True)]
        al["relayed"] = [
            f"{c}:{p}" if isinstance(c, str) else "" for c, p in zip(al.relayed_address, al.relayed_port, strict=True)
        ]
        al["mapped"] = [
            f"{c}:{p}" if isinstance(c, str) else "" for c, p in zip(al.mapped_address, al.mapped_port, strict=True)
        ]
        cols = ["file", "allocation", "client ", "server ", "state", "relayed", "mapped", "first_frame"]
        if not narrow:
            cols += ["errors", "channels"]
        _table("TURN allocations", al, cols, out)


SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def print_verdict(a, out: Console | None = None, verbose: bool = False) -> None:
    """The answer first: per call its topology, path and findings; tables only when asked (-v)."""
    out = out or console()
    calls, findings = a.calls, a.findings
    for s in a.captures:
        out.print(
            f"[bold]{_esc(s.file)}[/bold]: {s.packets:,} packets, {s.duration_s:.1f} s"
            + (f", [yellow]{sum(s.damaged.values()):,} damaged[/yellow]" if s.damaged else "")
        )
        _left_out(out, s)
        for w in s.time_warnings[:3]:
            out.print(f"  [yellow]time: {_esc(w)}[/yellow]")
    one_way = findings[findings.code == "one-direction-capture"]
    for f in one_way.itertuples(index=False):
        out.print(f"[yellow]{_esc(f.title)}[/yellow]: answers and the other media direction are not in it.")
    if not len(calls):
        if len(one_way):
            out.print("No call can be told from one direction of its packets.")
        else:
            from .common import no_call_text

            out.print(_esc(no_call_text(a)))
    for c in calls.itertuples(index=False):
        out.print(f"\n[bold]Call {c.call}: {c.topology}[/bold]")
        if c.path:
            out.print(f"  path      {_esc(c.path)}")
        if getattr(c, "moves", ""):
            out.print(f"  moved     {_esc(c.moves)}")
        out.print(f"  expected  {c.expected or '-'}; observed {c.observed or '-'}")
        out.print(f"  why       {_esc(c.reason)}")
        _rests_on(out, c)
        mine = findings[findings.call == c.call]
        for f in mine.itertuples(index=False):
            _finding(out, f, len(a.files))
        if not len(mine):
            out.print("  [green]no findings[/green]")
    general = findings[findings.call.isna()]
    if len(general):
        out.print("\n[bold]Capture-wide findings[/bold]")
        for f in general.itertuples(index=False):
            _finding(out, f, len(a.files))
    if verbose:
        out.print()
        print_ice(a, out)
        fl = a.flows.copy()
        fl["flow"] = [
            f"{a_}:{b_} -> {c_}:{d_}/{t_}"
            for a_, b_, c_, d_, t_ in zip(fl.src, fl.sport, fl.dst, fl.dport, fl.transport, strict=True)
        ]
        fl["file"] = _file_names(a, fl)
        fl["zones"] = [f"{x} -> {y}" for x, y in zip(fl.src_zone, fl.dst_zone, strict=True)]
        _table("Flows", fl, ["file", "flow", "zones", "label", "media", "protocols", "packets"], out)
        if "streams" in a.tables and len(a.streams):
            st = a.streams.copy()
            st["stream"] = [f"{int(x):08x}" if x == x else "" for x in st.ssrc]
            st["path"] = [
                f"{a_}:{b_} -> {c_}:{d_}" for a_, b_, c_, d_ in zip(st.src, st.sport, st.dst, st.dport, strict=True)
            ]
            short = {
                "stream": "ssrc",
                "path": "path",
                "kind": "kind",
                "packets": "pkts",
                "lost": "lost",
                "loss_pct": "loss %",
                "jitter_ms_mean": "jitter (ms)",
                "rtt_ms": "RTT (ms)",
                "mos": "MOS",
            }
            st["path"] = [
                p + (" (relayed)" if r else "") for p, r in zip(st.path, st.relayed.astype(bool), strict=True)
            ]
            st = st[[c for c in short if c in st.columns]].rename(columns=short)
            _table("Media streams", st, list(st.columns), out)


def _left_out(out: Console, s: CaptureSummary) -> None:
    """Packets and rows the analysis could not use (dissect stage, analyzer/salvage.py): the verdict
    rests on the others; say which."""
    from ..dissect.stage import DAMAGE_KIND as PACKETS
    from ..salvage import DAMAGE_KIND as ROWS

    for kind in (PACKETS, ROWS):
        n = s.damaged.get(kind, 0)
        if not n:
            continue
        out.print(f"  [yellow]{n:,} {kind}[/yellow] (the verdict rests on the others):")
        notes = [x for x in s.damage_notes if x.endswith("left out") and ("dissectors" in x) == (kind == PACKETS)]
        for note in notes[:3]:
            out.print(f"    {_esc(note)}")
        if len(notes) > 3:
            out.print(f"    ... {len(notes) - 3:,} more (callflow summary, or Analysis.captures)")


def _rests_on(out: Console, c) -> None:
    """What the verdict rests on, next to it, when not the profile alone (issue 15)."""
    confidence = getattr(c, "confidence", "") or ""
    if not confidence or confidence == "profile":
        return
    style = "yellow" if confidence == "default ranges" else "cyan"
    out.print(f"  rests on  [{style}]{_esc(confidence)}[/{style}]")
    for s in getattr(c, "assumptions", None) or []:
        out.print(f"            - {_esc(s)}")
    if getattr(c, "profile_hint", ""):
        out.print(f"  profile   {_esc(c.profile_hint)}")


def _finding(out: Console, f, n_files: int = 1) -> None:
    from ..topology.findings import frame_refs

    style = SEVERITY_STYLE.get(f.severity, "")
    frames = frame_refs(f.frames if isinstance(f.frames, list) else [], getattr(f, "frame_files", None), n_files)
    where = f" (frames {', '.join(frames[:8])}{'...' if len(frames) > 8 else ''})" if frames else ""
    out.print(f"  [{style}]{f.severity.upper():7}[/{style}] {f.code}: {_esc(f.title)}{where}")
    out.print(f"          {_esc(f.explanation)}")
    out.print(f"          evidence: {_esc(str(f.evidence))}")
    out.print(f"          do: {_esc(f.action)}")
    if isinstance(getattr(f, "display_filter", None), str) and f.display_filter:
        out.print(f"          wireshark: {_esc(f.display_filter)}")


def print_decryption(a, out: Console | None = None) -> None:
    """What the keys opened: per sender and SSRC, decrypted and failed packets; handshakes without keys."""
    out = out or console()
    d = a.decryption
    ds = a.dtls_sessions
    for r in ds.itertuples(index=False) if "keys" in ds.columns else ():
        out.print(f"DTLS {_esc(r.client)}:{r.client_port} -> {_esc(r.server)}:{r.server_port}: {_esc(r.keys)}")
    if len(d) == 0:
        out.print("[yellow]SRTP: no packet matched a key[/yellow]")
        return
    for r in d.itertuples(index=False):
        what = "SRTCP" if r.rtcp else "SRTP"
        seen = r.decrypted + r.auth_failed + r.repeated + r.failed_other
        via = ""
        if (r.wire_src, r.wire_sport, r.wire_dst, r.wire_dport) != (r.src, r.sport, r.dst, r.dport):
            via = f" (on the wire {_esc(r.wire_src)}:{r.wire_sport} -> {_esc(r.wire_dst)}:{r.wire_dport})"
        line = (
            f"{what} {_esc(r.src)}:{r.sport} -> {_esc(r.dst)}:{r.dport}{via} SSRC {r.ssrc_hex}: "
            f"{r.decrypted:,} of {seen:,} decrypted"
        )
        if r.auth_failed:
            line += f", [red]{r.auth_failed:,} of {seen:,} packets failed authentication (wrong key?)[/red]"
        if r.repeated:
            line += f", {r.repeated:,} repeated (replay window)"
        out.print(line)


def print_audio(a, out: Console | None = None) -> None:
    """One line per decoded audio stream: codec, seconds, level, silence, strongest tone."""
    out = out or console()
    au = a.audio
    if len(au) == 0:
        out.print("No audio stream could be decoded (encrypted without a key, or an unknown codec).")
        return
    for r in au.itertuples(index=False):
        tone = f", strongest tone {r.dominant_hz:.0f} Hz" if r.dominant_hz == r.dominant_hz else ""
        state = "[yellow]silent[/yellow]" if r.silent else "audible"
        out.print(
            f"{_esc(r.src)}:{r.sport} -> {_esc(r.dst)}:{r.dport} SSRC 0x{r.ssrc:08x} {r.codec}: "
            f"{r.audio_s:.1f} s decoded, {state} ({r.silent_seconds}/{r.seconds} s below -60 dBFS), "
            f"mean {r.level_dbfs_mean:.1f} dBFS{tone}"
        )
