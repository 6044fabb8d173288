"""Hand the verdict back to Wireshark: annotated pcapng copies of the captures and a display filter per
finding. `annotate()` runs the analysis, words its evidence (notes.py) and copies each capture with those
words as packet comments (copy.py, writing the layouts of pcapng.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .copy import CopyReport, copy_with_comments
from .filters import add_display_filters, display_filter
from .notes import Note, build_notes, per_file

__all__ = [
    "CopyReport",
    "Note",
    "add_display_filters",
    "annotate",
    "annotate_analysis",
    "build_notes",
    "display_filter",
    "output_paths",
]

SUFFIXES = (".gz", ".pcapng", ".pcap", ".cap")


def stem(path: str) -> str:
    """The capture's name without its capture and compression suffixes (call.pcap.gz -> call)."""
    name = os.path.basename(path)
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "capture"


def output_paths(inputs: list[str], output: str, suffix: str = ".annotated.pcapng") -> list[str]:
    """Where each annotated copy goes. `output` is a file for one capture; a pattern with {stem}
    and/or {index} names one file per capture; otherwise (several captures, or an existing directory)
    a directory that receives <stem><suffix> for each. Raises ValueError when two captures would
    be written to one file or a copy would overwrite its input."""
    if "{stem}" in output or "{index}" in output:
        outs = [output.format(stem=stem(p), index=i) for i, p in enumerate(inputs)]
    elif len(inputs) > 1 or os.path.isdir(output):
        outs = [os.path.join(output, f"{stem(p)}{suffix}") for p in inputs]
    else:
        outs = [output]
    if len({os.path.abspath(o) for o in outs}) < len(outs):
        raise ValueError(f"two captures would be written to the same file under {output!r}: use {{index}} in -o")
    for i, o in zip(inputs, outs, strict=True):
        if os.path.exists(o) and os.path.samefile(i, o):
            raise ValueError(f"{o} is the input capture itself")
    return outs


def annotate_analysis(a, outputs: list[str]) -> list[CopyReport]:
    """Write one annotated copy per capture of the analysis `a` to `outputs` (same order as a.files)."""
    frames, heads = per_file(build_notes(a), len(a.files))
    reports = []
    for i, (path, out) in enumerate(zip(a.files, outputs, strict=True)):
        folder = os.path.dirname(out)
        if folder:
            os.makedirs(folder, exist_ok=True)
        reports.append(copy_with_comments(path, out, frames[i], heads[i]))
    return reports


def annotate(paths: str | Iterable[str], output: str, *, network: str | None = None) -> list[CopyReport]:
    """Analyse the captures (of one call, as `analyze`) and write their annotated copies."""
    from ..api import analyze

    files = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files = [os.fspath(f) for f in files]
    outputs = output_paths(files, os.fspath(output))
    return annotate_analysis(analyze(files, network=network), outputs)
