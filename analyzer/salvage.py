"""One bad row must not end the analysis. When a table cannot be built, the rows of the packet tables
that later stages consume (`stun`, `dtls`) are searched for the ones it cannot handle (bisection over
prefixes: a few builds per bad row); those rows are left out, counted as damaged in their capture's
summary with the frame and the error, and the table is built from the rest. A failure no row explains
is a bug and is raised as it is."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from .api import Analysis

ROW_TABLES = ("stun", "dtls")
KEEP = frozenset(("summary", "stun", "dtls", "transactions", "dtls_sessions"))
MAX_BAD = 32  # beyond this many bad rows the capture is not damaged here and there: it is a bug
DAMAGE_KIND = "rows left out of the analysis"


def salvage(a: Analysis, name: str, build: Callable[[], Any], first: Exception) -> Any:
    """The table `name` built without the rows it cannot handle; raises `first` when no row explains it."""
    cache = a._cache
    bases = {src: getattr(a, src) for src in ROW_TABLES}
    left_out: list[tuple[str, int, int, str]] = []  # (table, file, frame, error)

    def attempt(src: str, rows: pd.DataFrame) -> Exception | None:
        _reset(cache)
        cache.update(bases)
        cache[src] = rows
        try:
            build()
        except Exception as exc:  # the failure under test
            return exc
        return None

    for src in ROW_TABLES:
        table = bases[src]
        if not len(table) or attempt(src, table.iloc[:0]) is not None:
            continue  # fails without any of these rows too: they are not the cause
        keep = list(range(len(table)))
        err = attempt(src, table)
        while err is not None and len(left_out) < MAX_BAD:
            lo, hi = 0, len(keep)  # the first lo rows build, the first hi rows fail
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if attempt(src, table.iloc[keep[:mid]]) is None:
                    lo = mid
                else:
                    hi = mid
            row = table.iloc[keep[hi - 1]]
            left_out.append((src, int(row["file"]), int(row["frame"]), f"{type(err).__name__}: {err}"))
            del keep[hi - 1]
            err = attempt(src, table.iloc[keep])
        bases[src] = table.iloc[keep].reset_index(drop=True)
        if err is None:
            break
    _reset(cache)
    cache.update(bases)
    try:
        result = build()
    except Exception:
        raise first from None
    _record(a, name, left_out)
    return result


def _reset(cache: dict) -> None:
    for k in [k for k in cache if k not in KEEP]:
        del cache[k]


def _record(a: Analysis, name: str, left_out: list[tuple[str, int, int, str]]) -> None:
    """Each row left out, counted and named in its capture's summary."""
    for src, file, frame, err in left_out:
        s = a.captures[file] if 0 <= file < len(a.captures) else a.captures[0]
        s.damaged[DAMAGE_KIND] = s.damaged.get(DAMAGE_KIND, 0) + 1
        s.damage_notes.append(f"frame {frame}: a {src} row the {name} table could not use ({err[:200]}); left out")
    a._cache.pop("summary", None)
