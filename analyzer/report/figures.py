"""The three plotly figures of an Analysis: `timeline(a)`, `ladder(a)`, `path_diagram(a)`.

Each lives in its own module (timeline.py, ladder.py, path.py) with its traces described there; all
read the Analysis tables, work with whichever tables exist, and aggregate (1-second media bins,
per-path counters) so a long call does not turn into one point per packet.
"""

from __future__ import annotations

from .ladder import ladder
from .path import path_diagram
from .timeline import timeline

__all__ = ["ladder", "path_diagram", "timeline"]
