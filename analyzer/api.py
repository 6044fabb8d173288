"""The Python API: `analyze()` reads one or more captures of a call and returns an `Analysis`.

Each pipeline stage adds its tables to the Analysis; the CLI and the reports only read them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .capture import CaptureFile, CaptureSummary, SummaryBuilder, iter_batches

if TYPE_CHECKING:  # pandas is imported only when a table is asked for: `callflow summary` stays light
    import pandas as pd

PathLike = str | os.PathLike
Progress = Callable[[int, int], None]


@dataclass
class Analysis:
    """Everything learned from the captures, as pandas DataFrames with stable column names
    (see DESIGN.md). Rows that come from packets carry `file` (index into `files`) and `frame`."""

    files: list[str]
    captures: list[CaptureSummary]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # filled by the later stages

    @property
    def summary(self) -> pd.DataFrame:
        """One row per capture file: what `callflow summary` prints."""
        import pandas as pd

        rows = []
        for i, s in enumerate(self.captures):
            d = s.to_dict()
            rows.append(
                {
                    "file": i,
                    "path": s.file,
                    "format": s.format,
                    "packets": s.packets,
                    "bytes": s.bytes_captured,
                    "first_time": d["first_time"],
                    "last_time": d["last_time"],
                    "duration_s": d["duration_s"],
                    "damaged": d["damaged_total"],
                    "udp_flows": s.udp_flows,
                    "tcp_flows": s.tcp_flows,
                    **{f"class_{k}": v for k, v in s.classes.items()},
                }
            )
        return pd.DataFrame(rows)

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(f"Analysis has no table {name!r} (has: {', '.join(sorted(tables)) or 'none yet'})")


def _as_list(paths: PathLike | Iterable[PathLike]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def analyze(
    paths: PathLike | Iterable[PathLike],
    *,
    progress: Callable[[str], Progress | None] | None = None,
) -> Analysis:
    """Analyse one capture, or several captures of the same call taken at different points.

    Raises analyzer.capture.CaptureError for a file that cannot be read at all; damaged packets are
    counted in the capture's summary instead."""
    files = _as_list(paths)
    summaries = []
    for path in files:
        with CaptureFile(path) as cap:
            sb = SummaryBuilder(cap)
            for batch in iter_batches(cap, progress(path) if progress else None):
                sb.add(batch)
            summaries.append(sb.finish())
    return Analysis(files=files, captures=summaries)
