"""Rich console output, readable at 100 columns; plain text when stdout is not a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..capture.reader import CaptureSummary


def console() -> Console:
    return Console(width=None if Console().is_terminal else 100)


def print_summary(s: CaptureSummary, out: Console | None = None) -> None:
    """One table per capture file."""
    out = out or console()
    t = Table(title=s.file, show_header=False, title_justify="left")
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
    t.add_row("network", ", ".join(f"{k} {v:,}" for k, v in s.ip.items()) or "-")
    t.add_row("flows", f"UDP {s.udp_flows:,}, TCP {s.tcp_flows:,}")
    t.add_row("classes", ", ".join(f"{k} {v:,}" for k, v in s.classes.items() if v) or "-")
    if s.confirmed or s.rejected:
        t.add_row("confirmed", ", ".join(f"{k} {v:,}" for k, v in s.confirmed.items()) or "none")
        t.add_row("rejected", ", ".join(f"{k} {v:,}" for k, v in s.rejected.items()) or "none")
    for i, (name, n) in enumerate(s.messages.items()):
        t.add_row("messages" if i == 0 else "", f"{_esc(name)} {n:,}")
    if s.vpn_candidates:
        t.add_row("VPN candidates", f"{s.vpn_candidates:,} packets (ESP/AH, UDP 500/4500/51820/1194)")
    out.print(t)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
