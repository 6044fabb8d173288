"""The `callflow` command: a thin layer over analyzer.api."""

from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .capture.errors import CaptureError


def _fail(err: CaptureError) -> None:
    from .report.console import printable

    click.echo(f"callflow: error: {printable(err)}", err=True)
    sys.exit(2)


def _json(doc, **kw) -> str:
    """JSON for a terminal: json escapes every control character but DEL; escape that one too."""
    return json.dumps(doc, **kw).replace("\x7f", "\\u007f")


class _Progress:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            from .report.console import console

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=console(stderr=True),
                transient=True,
            )
            self._bar.__enter__()
        return self

    def file(self, name: str):
        if self._bar is None:
            return None
        from .report.console import safe_markup

        task = self._bar.add_task(safe_markup(name), total=None)

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


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")


def _outputs(captures: tuple[str, ...], **outputs: str | None) -> tuple[list[str], dict[str, str | None]]:
    """Check every output before the analysis runs: a missing folder is an error now, not after the
    verdict is printed. `--json capture.pcap` (an optional value that swallowed the first capture) gives
    the capture back and prints JSON to standard output."""
    files = list(captures)
    for name, value in outputs.items():
        if value is None or value == "-":
            continue
        if value.lower().endswith(CAPTURE_SUFFIXES) and os.path.isfile(value):
            files.insert(0, value)
            outputs[name] = "-"
            continue
        folder = os.path.dirname(os.path.abspath(value))
        if not os.path.isdir(folder):
            _error(f"{value}: folder {folder} does not exist")
    if not files:
        _error("no capture given (callflow COMMAND CAPTURE...)")
    return files, outputs


def _error(message: str) -> None:
    from .report.console import printable

    click.echo(f"callflow: error: {printable(message)}", err=True)
    sys.exit(2)


def _wrote(path: str) -> None:
    from .report.console import printable

    click.echo(f"wrote {printable(path)}", err=True)


def _emit(text: str, target: str) -> None:
    """Text to standard output ('-') or to a file, named on stderr."""
    if target == "-":
        click.echo(text)
        return
    with open(target, "w", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    _wrote(target)


def _profile(network: str | None):
    """The network profile, read before any capture: a bad profile is a one-line error and exit 2."""
    from .topology.profile import NetworkProfile

    try:
        return NetworkProfile.load(network)
    except OSError as e:
        _error(f"{network}: cannot read the profile: {e.strerror or e}")
    except ValueError as e:
        _error(f"{network}: {e}")


def _analyze(files: list[str], network: str | None, progress: bool, stages: str = "all", keylog: str | None = None,
             srtp_key: tuple[str, ...] = (), audio: bool | None = None, plaintext: bool = False):
    from .api import analyze
    from .decrypt import KeyError_

    profile = _profile(network)
    with _Progress(progress) as bar:
        try:
            return analyze(files, network=profile, progress=bar.file, stages=stages, keylog=keylog,
                           srtp_keys=srtp_key, audio=audio, plaintext=plaintext)
        except CaptureError as e:
            _fail(e)
        except KeyError_ as e:
            _error(str(e))


def _keys(f):
    """--keylog and --srtp-key: open SRTP/SRTCP with the user's keys (docs/decrypt.md)."""
    f = click.option("--srtp-key", "srtp_key", multiple=True, metavar="[ADDR:PORT=|0xSSRC=]KEY",
                     help="SDES key as SDP's a=crypto gives it ([SUITE] inline:BASE64), for one sender, one SSRC, "
                     "or every stream; repeatable.")(f)
    return click.option("--keylog", type=click.Path(dir_okay=False),
                        help="NSS key log (CLIENT_RANDOM lines) of the DTLS handshakes: decrypts SRTP and SRTCP.")(f)


_captures = click.argument("captures", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
_network = click.option("--network", type=click.Path(dir_okay=False), help="Network profile (TOML).")
_progress = click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")


def _json_option(what: str):
    return click.option("--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="[FILE]",
                        help=f"{what} as JSON: to standard output, or to FILE.")


@main.command()
@_captures
@_json_option("The summary")
@_progress
def summary(captures: tuple[str, ...], json_out: str | None, progress: bool) -> None:
    """What is in each capture: format, link types, packets, time span, damage, flows, protocol classes."""
    files, out = _outputs(captures, json_out=json_out)
    result = _analyze(files, None, progress, stages="dissect")
    results = result.captures
    if out["json_out"]:
        doc = [r.to_dict() for r in results]
        _emit(_json(doc[0] if len(doc) == 1 else doc, indent=2), out["json_out"])
        return
    from .report.console import print_summary

    for r in results:
        print_summary(r)


@main.command()
@_captures
@_json_option("Sessions, candidates, pairs and allocations")
@_network
@_progress
def ice(captures: tuple[str, ...], json_out: str | None, network: str | None, progress: bool) -> None:
    """The ICE negotiation: sessions, candidates, candidate pairs (nominated and selected) and TURN allocations."""
    from .report.console import print_ice
    from .report.export import records

    files, out = _outputs(captures, json_out=json_out)
    a = _analyze(files, network, progress)
    if out["json_out"]:
        doc = {name: records(getattr(a, name)) for name in ("sessions", "candidates", "pairs", "allocations")}
        _emit(_json(doc, indent=2, default=str), out["json_out"])
        return
    print_ice(a)


@main.command(name="analyze")
@_captures
@_network
@click.option("-v", "--verbose", is_flag=True, help="Also print the ICE, flow and stream tables.")
@_json_option("Every table")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the HTML report to this file ('-': standard output).")
@click.option("--parquet", "parquet_dir", type=click.Path(file_okay=False), help="Write every table as Parquet here.")
@_keys
@click.option("--decrypt-out", "decrypt_out", type=click.Path(),
              help="With keys: write the capture as pcapng with SRTP replaced by its plaintext (several captures: "
              "a folder, or a pattern with {stem}).")
@_progress
def analyze_cmd(captures: tuple[str, ...], network: str | None, verbose: bool, json_out: str | None,
                html_out: str | None, parquet_dir: str | None, keylog: str | None, srtp_key: tuple[str, ...],
                decrypt_out: str | None, progress: bool) -> None:
    """Explain the call: topology, path and findings per call (the captures of one call, taken at several
    points, are analysed together). Findings are results: the exit status is 0 unless a file or the
    profile is unreadable (2)."""
    from .report.console import print_verdict

    files, out = _outputs(captures, json_out=json_out, html_out=html_out)
    if parquet_dir and not os.path.isdir(os.path.dirname(os.path.abspath(parquet_dir))):
        _error(f"{parquet_dir}: its parent folder does not exist")
    plain_outs = None
    if decrypt_out:
        from .annotate import output_paths

        if not keylog and not srtp_key:
            _error("--decrypt-out needs the keys: --keylog or --srtp-key")
        try:
            plain_outs = output_paths(files, decrypt_out, suffix=".decrypted.pcapng")
        except ValueError as e:
            _error(str(e))
        for o in plain_outs:
            if not os.path.isdir(os.path.dirname(os.path.abspath(o))):
                _error(f"{o}: folder {os.path.dirname(os.path.abspath(o))} does not exist")
    a = _analyze(files, network, progress, keylog=keylog, srtp_key=srtp_key, plaintext=bool(plain_outs))
    to_stdout = "-" in (out["json_out"], out["html_out"])
    if not to_stdout:
        print_verdict(a, verbose=verbose)
        if a.decrypt:
            from .report.console import print_decryption

            print_decryption(a)
    if out["json_out"]:
        _emit(a.to_json(), out["json_out"])
    if out["html_out"]:
        if out["html_out"] == "-":
            from .report.html import render

            click.echo(render(a))
        else:
            a.to_html(out["html_out"])
            _wrote(out["html_out"])
    if parquet_dir:
        for p in a.to_parquet(parquet_dir):
            _wrote(str(p))
    if plain_outs:
        for r in a.write_decrypted(plain_outs):
            kept = f", {r.not_rewritable:,} SRTCP left as they were (no room for RTCP padding)" * bool(r.not_rewritable)
            _wrote(f"{r.output}: {r.records:,} packets, {r.patched:,} with their plaintext{kept}")


@main.command()
@_captures
@click.option("-o", "--output", "--html", "output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="HTML file to write ('-': standard output).")
@_network
@_progress
def timeline(captures: tuple[str, ...], output: str, network: str | None, progress: bool) -> None:
    """Write the call timeline alone as one self-contained HTML file (opens offline)."""
    from .report.html import figure_page

    files, out = _outputs(captures, output=output)
    a = _analyze(files, network, progress)
    _emit(figure_page(a.timeline(), "Call timeline: " + ", ".join(files)), out["output"])


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


@main.command()
@_captures
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for one WAV file per audio stream.")
@_keys
@_network
@_progress
def audio(captures: tuple[str, ...], out_dir: str, keylog: str | None, srtp_key: tuple[str, ...],
          network: str | None, progress: bool) -> None:
    """Decode every audio stream (Opus, G.711, G.722) to WAV, decrypting SRTP with --keylog or --srtp-key
    (plain RTP needs no key); prints each stream's level, silence and strongest tone."""
    files, _ = _outputs(captures)
    if not os.path.isdir(os.path.dirname(os.path.abspath(out_dir))):
        _error(f"{out_dir}: its parent folder does not exist")
    a = _analyze(files, network, progress, keylog=keylog, srtp_key=srtp_key, audio=True)
    from .report.console import print_audio

    print_audio(a)
    for p in a.write_audio(out_dir):
        _wrote(str(p))


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
@click.option("--init", "init_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write a commented example profile here ('-': standard output).")
@click.option("--force", is_flag=True, help="With --init: overwrite an existing file.")
@click.argument("profile", required=False, type=click.Path(dir_okay=False))
def profile(init_path: str | None, force: bool, profile: str | None) -> None:
    """Write an example network profile (--init FILE), or show how a profile classifies addresses."""
    if init_path:
        if init_path != "-" and os.path.exists(init_path) and not force:
            _error(f"{init_path} exists (add --force to overwrite it)")
        if init_path != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(init_path))):
            _error(f"{init_path}: folder {os.path.dirname(os.path.abspath(init_path))} does not exist")
        _emit(PROFILE_EXAMPLE, init_path)
        return
    from .report.console import printable

    p = _profile(profile)
    for name in ("customer", "egress", "vpn_pools", "concentrators", "cloud", "relays", "media", "sbc"):
        nets = getattr(p, name)
        click.echo(f"{name:14} {printable(', '.join(map(str, nets))) or '-'}")
    click.echo(f"{'capture point':14} {printable(p.capture_point or '-')}")


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder (created or added to).")
@click.option("--network", type=click.Path(exists=True, dir_okay=False), help="Network profile (TOML), all captures.")
@click.option("--scheduler", help="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786).")
@click.option("--workers", type=click.IntRange(min=0), help="LocalCluster worker processes (default: CPUs; 0: none).")
@click.option("--group-by-folder", is_flag=True, help="The captures of one folder are the capture points of one call.")
@click.option("--retry-failed", is_flag=True, help="Analyse again the captures the dataset records as failed.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr (terminal only).")
def fleet(inputs: tuple[str, ...], out: str, network: str | None, scheduler: str | None, workers: int | None,
          group_by_folder: bool, retry_failed: bool, progress: bool) -> None:
    """Analyse a fleet of captures on Dask into a Parquet dataset. INPUTS are files, folders (searched for
    pcap, pcapng and .gz) or globs; captures already in the dataset are skipped. A capture that fails is
    recorded in the dataset's captures table; the exit status is 2 only for bad inputs or options."""
    import os

    try:
        from .fleet import FleetInputError, analyze_many
        from .fleet.console import FleetProgress, summary_lines
    except ImportError as e:
        click.echo(f"callflow: error: {e.name} is missing: pip install 'callflow-analyzer[fleet]'", err=True)
        sys.exit(2)

    if scheduler and workers is not None:
        click.echo("callflow: error: --scheduler and --workers exclude each other", err=True)
        sys.exit(2)
    bar = FleetProgress(progress)
    try:
        result = analyze_many(list(inputs), out=out, network=network, scheduler=scheduler,
                              workers=(os.cpu_count() or 1) if workers is None else workers,
                              group_by_folder=group_by_folder, retry_failed=retry_failed, on_start=bar.start,
                              on_done=bar.done_one)
    except (FleetInputError, FileExistsError, OSError, ValueError) as e:
        bar.close()
        click.echo(f"callflow: error: {e}", err=True)
        sys.exit(2)
    bar.close()
    for line in summary_lines(result, out):
        click.echo(line)


@main.command(name="fleet-report")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON ({question: [rows]}) instead of tables.")
def fleet_report_cmd(dataset: str, as_json: bool) -> None:
    """Answer the fleet's questions from a dataset written by `callflow fleet` (DuckDB): captures by status,
    verdicts per topology, findings per code and site, relays and transports, selected paths, poor calls."""
    from .fleet.report import fleet_report

    try:
        tables = fleet_report(dataset)
    except FileNotFoundError as e:
        click.echo(f"callflow: error: {e}", err=True)
        sys.exit(2)
    if as_json:
        from .report.export import records

        click.echo(json.dumps({k: records(v) for k, v in tables.items()}, indent=2))
        return
    from .fleet.console import print_report

    print_report(tables)


if __name__ == "__main__":
    main()
