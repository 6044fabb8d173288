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
            result = analyze(list(captures), progress=bar.file, stages="dissect")
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
    from .report.console import print_ice
    from .report.export import records

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


@main.command(name="analyze")
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--network", type=click.Path(exists=True, dir_okay=False), help="Network profile (TOML).")
@click.option("-v", "--verbose", is_flag=True, help="Also print the ICE, flow and stream tables.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write every table as JSON to this file.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write the HTML report to this file.")
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False), help="Write every table as Parquet here.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")
def analyze_cmd(captures: tuple[str, ...], network: str | None, verbose: bool, json_out: str | None,
                html_out: str | None, parquet_dir: str | None, progress: bool) -> None:
    """Explain the call: topology, path and findings per call (the captures of one call, taken at several
    points, are analysed together). Findings are results: the exit status is 0 unless a file is unreadable."""
    from .api import analyze
    from .report.console import print_verdict

    with _Progress(progress) as bar:
        try:
            a = analyze(list(captures), network=network, progress=bar.file)
        except CaptureError as e:
            _fail(e)
    print_verdict(a, verbose=verbose)
    if json_out:
        a.to_json(json_out)
    if html_out:
        a.to_html(html_out)
    if parquet_dir:
        a.to_parquet(parquet_dir)


@main.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--network", type=click.Path(exists=True, dir_okay=False), help="Network profile (TOML).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")
def timeline(captures: tuple[str, ...], output: str, network: str | None, progress: bool) -> None:
    """Write the call timeline alone as one self-contained HTML file (opens offline)."""
    from .api import analyze
    from .report.html import write_figure

    with _Progress(progress) as bar:
        try:
            a = analyze(list(captures), network=network, progress=bar.file)
        except CaptureError as e:
            _fail(e)
    write_figure(a.timeline(), output, "Call timeline: " + ", ".join(captures))
    click.echo(f"wrote {output}")


@main.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Annotated pcapng to write; with several captures a directory (one <name>.annotated.pcapng "
              "each) or a pattern with {stem} or {index}.")
@click.option("--network", type=click.Path(exists=True, dir_okay=False), help="Network profile (TOML).")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")
def annotate(captures: tuple[str, ...], output: str, network: str | None, progress: bool) -> None:
    """Copy each capture as pcapng with the evidence as packet comments, for Wireshark (docs/annotate.md)."""
    from .annotate import annotate_analysis, output_paths
    from .api import analyze

    try:
        outputs = output_paths(list(captures), output)
    except ValueError as e:
        click.echo(f"callflow: error: {e}", err=True)
        sys.exit(2)
    with _Progress(progress) as bar:
        try:
            a = analyze(list(captures), network=network, progress=bar.file)
            reports = annotate_analysis(a, outputs)
        except CaptureError as e:
            _fail(e)
        except OSError as e:
            click.echo(f"callflow: error: cannot write {e.filename or output}: {e.strerror or e}", err=True)
            sys.exit(2)
    for r in reports:
        extra = f", {r.section_comments} on the section header" if r.section_comments else ""
        click.echo(f"wrote {r.output}: {r.records} packets, {r.comments} comments{extra}")
        if r.dropped_bytes:
            click.echo(f"  {r.dropped_bytes} damaged bytes the reader skipped were left out")
        for frame, texts in sorted(r.unplaced.items()):
            where = f"frame {frame}" if frame else "section header"
            click.echo(f"  {where}: no room for a comment ({'; '.join(texts)})")


PROFILE_EXAMPLE = """# callflow network profile. Every key is optional; lists add to the built-in defaults
# (the service's published media ranges are cloud; private and CGNAT ranges are customer network)
# unless replace_defaults = true stands in that section. Where zones overlap, the most specific wins:
# vpn pools, customer, cloud, internet.

[customer]
networks = ["10.1.0.0/16"]        # internal prefixes
egress = ["198.51.100.2"]         # the customer's NAT public addresses
# replace_defaults = true         # then only the prefixes above are customer network

[vpn]
pools = ["10.8.0.0/24"]           # addresses handed to VPN clients
concentrators = ["198.51.100.3"]  # VPN head-ends

[cloud]
relays = ["192.0.2.10"]           # TURN relays (also learned from Allocate responses)
media = ["192.0.2.20"]            # media processors (group calls, PSTN media)
ranges = ["192.0.2.0/24"]         # anything else of the service

[pstn]
sbc = ["192.0.2.30"]

[capture]
point = "10.1.0.11"               # the host the capture was taken on, if known
"""


@main.command()
@click.option("--init", "init_path", type=click.Path(dir_okay=False), help="Write a commented example profile here.")
@click.argument("profile", required=False, type=click.Path(exists=True, dir_okay=False))
def profile(init_path: str | None, profile: str | None) -> None:
    """Write an example network profile (--init FILE), or show how a profile classifies addresses."""
    if init_path:
        with open(init_path, "x") as f:
            f.write(PROFILE_EXAMPLE)
        click.echo(f"wrote {init_path}")
        return
    from .topology.profile import NetworkProfile

    try:
        p = NetworkProfile.load(profile)
    except (OSError, ValueError) as e:
        click.echo(f"callflow: error: {profile}: {e}", err=True)
        sys.exit(2)
    for name in ("customer", "egress", "vpn_pools", "concentrators", "cloud", "relays", "media", "sbc"):
        nets = getattr(p, name)
        click.echo(f"{name:14} {', '.join(map(str, nets)) or '-'}")
    click.echo(f"{'capture point':14} {p.capture_point or '-'}")


if __name__ == "__main__":
    main()
