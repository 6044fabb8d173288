"""The `callflow` command: a thin layer over analyzer.api."""

from __future__ import annotations

import json
import sys

import click

from . import __version__
from .capture.errors import CaptureError


def _fail(err: CaptureError) -> None:
    click.echo(f"callflow: error: {err}", err=True)
    sys.exit(2)


class _Progress:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def file(self, name: str):
        if self._bar is None:
            return None
        task = self._bar.add_task(name, total=None)

        def update(done: int, total: int) -> None:
            self._bar.update(task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="callflow")
def main() -> None:
    """Call-flow analyzer for WebRTC, Azure Communication Services and Teams captures."""


@main.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")
def summary(captures: tuple[str, ...], as_json: bool, progress: bool) -> None:
    """What is in each capture: format, link types, packets, time span, damage, flows, protocol classes."""
    from .api import analyze

    with _Progress(progress) as bar:
        try:
            result = analyze(list(captures), progress=bar.file)
        except CaptureError as e:
            _fail(e)
    results = result.captures
    if as_json:
        out = [r.to_dict() for r in results]
        click.echo(json.dumps(out[0] if len(out) == 1 else out, indent=2))
        return
    from .report.console import print_summary

    for r in results:
        print_summary(r)


@main.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--network", type=click.Path(exists=True, dir_okay=False), help="Network profile (TOML).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")
def ice(captures: tuple[str, ...], as_json: bool, network: str | None, progress: bool) -> None:
    """The ICE negotiation: sessions, candidates, candidate pairs (nominated and selected) and TURN allocations."""
    from .api import analyze
    from .report.console import print_ice, records

    with _Progress(progress) as bar:
        try:
            a = analyze(list(captures), network=network, progress=bar.file)
        except CaptureError as e:
            _fail(e)
    if as_json:
        doc = {name: records(getattr(a, name)) for name in ("sessions", "candidates", "pairs", "allocations")}
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    print_ice(a)


if __name__ == "__main__":
    main()
