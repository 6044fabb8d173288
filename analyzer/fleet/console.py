"""Terminal side of the fleet commands: the progress bar (captures done, failed, rate) and the report."""

from __future__ import annotations

import sys
import time

import pandas as pd


def printable(text: object) -> str:
    """One line with no control characters (a path or an error can carry any byte)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text))


class FleetProgress:
    """A rich progress bar on stderr when stderr is a terminal; silent otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = self._task = None
        self.done = self.failed = 0
        self._t0 = time.perf_counter()

    def start(self, info: dict) -> None:
        if info.get("dashboard"):
            print(f"Dask dashboard: {info['dashboard']}", file=sys.stderr, flush=True)
        self._t0 = time.perf_counter()
        if not self.enabled or not info["units"]:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("captures"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]:.2f}/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("fleet", total=info["units"], failed=0, rate=0.0)

    def done_one(self, row: dict) -> None:
        self.done += 1
        self.failed += row["status"] == "failed"
        if self._bar is not None:
            rate = self.done / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.update(self._task, completed=self.done, failed=self.failed, rate=rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def summary_lines(fleet, out: str) -> list[str]:
    """What a fleet run did, for stdout: counts per status, the failed captures with their errors."""
    run = fleet.run
    counts = run["status"].value_counts().to_dict() if len(run) else {}
    n = len(run)
    rate = n / fleet.seconds if fleet.seconds else 0.0
    lines = [
        f"{n} captures analysed: {counts.get('ok', 0)} ok, {counts.get('damaged', 0)} damaged, "
        f"{counts.get('failed', 0)} failed; {len(fleet.skipped)} already in {printable(out)}; "
        f"{fleet.seconds:.1f} s ({rate:.2f} captures/s)"
    ]
    for row in run.itertuples() if n else ():
        if row.status == "failed":
            lines.append(f"failed: {printable(row.error)}")
        elif row.status == "damaged":
            lines.append(f"damaged: {printable(row.capture)}: {printable(row.damage)}")
        if len(row.also):
            lines.append(f"same content: {printable(row.capture)} = {', '.join(map(printable, row.also))}")
    return lines


def print_report(tables: dict[str, pd.DataFrame]) -> None:
    from ..report.console import _table, console

    out = console()
    for title, df in tables.items():
        if df.empty:
            out.print(f"[bold]{title}[/bold]: none")
            continue
        df = df.map(lambda v: printable(v) if isinstance(v, str) else v)  # paths and packet text reach the terminal
        _table(title, df, [str(c) for c in df.columns], out)
