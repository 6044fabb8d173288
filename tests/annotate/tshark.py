"""tshark as the oracle for annotated copies: comments per frame, timestamps, filters; scapy for bytes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import need_tshark

SEP = "\x1f"  # no comment contains it (they do contain commas and semicolons)
# the frame.* fields need no dissection past the link layer: tshark reads a large capture fast without it
FRAME_ONLY = ["--disable-protocol", "eth", "--disable-protocol", "sll"]


def run(path: Path, fields: list[str], display_filter: str = "", extra: list[str] | None = None) -> list[list[str]]:
    cmd = [need_tshark(), "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", f"aggregator={SEP}"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd + (extra or []), capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def frames(path: Path) -> tuple[list[str], dict[int, list[str]]]:
    """One tshark pass: each frame's time, length and captured length; and frame -> its comments."""
    rows = run(
        path, ["frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "frame.comment"], "", FRAME_ONLY
    )
    return [" ".join(r[1:4]) for r in rows], {int(r[0]): r[4].split(SEP) for r in rows if r[4]}


def comments(path: Path) -> dict[int, list[str]]:
    """Frame number -> its packet comments, as Wireshark reads them."""
    rows = run(path, ["frame.number", "frame.comment"], "frame.comment", FRAME_ONLY)
    return {int(n): c.split(SEP) for n, c in rows}


def capture_comments(path: Path) -> list[str]:
    """The section header comments (capinfos -k)."""
    out = subprocess.run(["capinfos", "-k", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Capture comment:")]


def selected(path: Path, display_filter: str) -> list[int]:
    return [int(r[0]) for r in run(path, ["frame.number"], display_filter)]


def records(path: Path) -> list[tuple[bytes, int]]:
    """(bytes, original length) of every record, read by scapy (an implementation of its own)."""
    from scapy.utils import RawPcapReader

    with RawPcapReader(str(path)) as r:
        return [(bytes(d), int(getattr(m, "wirelen", 0) or 0)) for d, m in r]
