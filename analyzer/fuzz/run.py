"""The fuzzing loop: mutate shared and shipped captures, run everything a user can ask for on each
mutant (analyze, every table, figures, JSON, HTML, the console verdict), and collect what escapes.

Each run draws its own generator from (seed, run), so `--seed S --run N` replays one run exactly."""

from __future__ import annotations

import io
import os
import random
import tempfile
import time
import traceback
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .containers import EPB, Capture, Record, dump, load
from .mutate import damage_file, mutate_records

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCES = (REPO / "captures", REPO.parent / "shared" / "captures" / "public")
REPEATS = (1, 2, 4, 8, 16, 32, 64)
DENSITIES = (0.005, 0.02, 0.05, 0.2, 0.5, 1.0, 1.0)  # one packet in a good call up to every packet


@dataclass
class Crash:
    signature: str  # exception type and the innermost analyzer frame
    message: str
    seed: int
    run: int
    sources: list[str]
    trace: str


@dataclass
class Report:
    runs: int = 0
    mutated_packets: int = 0
    damaged_files: int = 0
    unreadable: int = 0  # CaptureError: the one-line "cannot read" answer, which is right
    crashes: dict[str, Crash] = field(default_factory=dict)
    crash_runs: int = 0
    warnings: dict[str, int] = field(default_factory=dict)
    # rows and packets the analysis left out rather than crash (salvage.py, the dissect stage): each is
    # a stage that could not handle its input, a bug to fix even though nothing escaped
    left_out: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # error -> (count, seed, run)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        rate = self.mutated_packets / self.seconds if self.seconds else 0.0
        out = [
            f"runs {self.runs:,}, mutated packets {self.mutated_packets:,}, damaged files {self.damaged_files:,}, "
            f"unreadable (exit 2) {self.unreadable:,}, {self.seconds:.0f} s ({rate:,.0f} packets/s)",
            f"exceptions escaping: {self.crash_runs:,} runs, {len(self.crashes)} distinct",
        ]
        for sig, c in sorted(self.crashes.items()):
            out.append(f"  {sig}: {c.message[:160]}")
            out.append(f"    replay: python -m analyzer.fuzz --seed {c.seed} --run {c.run}  ({', '.join(c.sources)})")
        for w, n in sorted(self.warnings.items()):
            out.append(f"  warning x{n}: {w[:160]}")
        if self.left_out:
            out.append(f"left out rather than crash: {sum(n for n, _, _ in self.left_out.values()):,} rows or packets")
        for err, (n, seed, run) in sorted(self.left_out.items()):
            out.append(f"  x{n}: {err[:160]}  (--seed {seed} --run {run})")
        return out


def sources(folders: Iterable[Path] = DEFAULT_SOURCES) -> list[tuple[str, Capture]]:
    """Every capture under the folders, split into records (unreadable ones left out)."""
    out = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.suffix not in (".pcap", ".pcapng", ".gz"):
                continue
            cap = load(p.read_bytes())
            if cap is not None and cap.records:
                out.append((str(p.relative_to(folder.parent)), cap))
    return out


def _copy(cap: Capture, reps: int = 1) -> Capture:
    """A copy whose records are repeated `reps` times end to end, each repeat later in time (a longer
    capture of the same traffic: more packets to mutate for the same fixed cost of tables and report)."""
    items = list(cap.items)
    recs = [r for r in items if isinstance(r, Record)]
    for k in range(1, reps):
        items += [_shifted(r, k * _span_s(recs)) for r in recs]
    items = [Record(r.linktype, r.data, r.head, r.block) if isinstance(r, Record) else r for r in items]
    return Capture(cap.kind, cap.endian, cap.header, items)


def _span_s(recs: list[Record]) -> int:
    if recs[0].block == 0:
        return recs[-1].head[0] - recs[0].head[0] + 1
    return 2  # pcapng units vary by interface: a small shift keeps the order


def _shifted(r: Record, secs: int) -> Record:
    if r.block == 0:
        sec, frac, orig = r.head
        return Record(r.linktype, r.data, ((sec + secs) & 0xFFFFFFFF, frac, orig))
    if r.block == EPB:
        iface, hi, lo, orig, opts = r.head
        ts = ((hi << 32) | lo) + secs * 1_000_000
        return Record(r.linktype, r.data, (iface, (ts >> 32) & 0xFFFFFFFF, ts & 0xFFFFFFFF, orig, opts), r.block)
    return r


def make_run(
    rng: random.Random, pool: list[tuple[str, Capture]], workdir: str
) -> tuple[list[str], list[str], int, bool]:
    """One to four mutated captures (analysed together, as captures of one call taken at several points)
    written to `workdir`: (paths, source names, mutated packets, whether a file structure was damaged)."""
    picks = rng.sample(pool, min(len(pool), rng.choice((1, 2, 3, 4))))
    paths, names, mutated, damaged = [], [], 0, False
    for k, (name, base) in enumerate(picks):
        cap = _copy(base, rng.choice(REPEATS))
        mutated += mutate_records(rng, cap, rng.choice(DENSITIES))
        raw = dump(cap)
        if rng.random() < 0.3:
            raw = damage_file(rng, cap, raw)
            damaged = True
        ext = ".pcapng" if cap.kind == "pcapng" else ".pcap"
        # file names carry escapes and markup too: they reach the console and the report
        path = os.path.join(workdir, f"m{k}-\x1b[31m[red]{rng.randrange(100)}{ext}")
        with open(path, "wb") as f:
            f.write(raw)
        paths.append(path)
        names.append(name)
    return paths, names, mutated, damaged


def exercise(paths: list[str], workdir: str, left_out: list[str] | None = None) -> bool:
    """Everything a user can ask for; False when the files are unreadable (CaptureError: exit 2).
    The notes of rows and packets left out go to `left_out`."""
    from ..api import analyze
    from ..capture.errors import CaptureError
    from ..report.console import console, print_ice, print_summary, print_verdict

    try:
        a = analyze(paths)
    except CaptureError:
        return False
    for name in a.tables:
        getattr(a, name)
    a.to_json()
    a.to_html(os.path.join(workdir, "report.html"))
    buf = io.StringIO()
    out = console(buf)
    for s in a.captures:
        print_summary(s, out)
    print_verdict(a, out, verbose=True)
    print_ice(a, out)
    from .oracle import raw_controls

    if left_out is not None:
        left_out += [n for s in a.captures for n in s.damage_notes if n.endswith("; left out")]
    bad = raw_controls(buf.getvalue())
    if bad:
        raise AssertionError(f"raw control characters on the console: {bad[:5]}")
    return True


def _signature(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}analyzer{os.sep}" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def fuzz(
    seed: int,
    *,
    packets: int | None = None,
    seconds: float | None = None,
    runs: int | None = None,
    only_run: int | None = None,
    pool: list[tuple[str, Capture]] | None = None,
    save: str | None = None,
    progress=None,
) -> Report:
    """Run until `packets` mutated packets, `seconds` or `runs` (whichever first); `only_run` replays one."""
    pool = pool if pool is not None else sources()
    if not pool:
        raise SystemExit("no captures to mutate")
    rep = Report()
    start = time.monotonic()
    run = only_run if only_run is not None else 0
    with tempfile.TemporaryDirectory(prefix="callflow-fuzz-") as workdir:
        while True:
            try:
                _one(rep, seed, run, pool, workdir, save)
            except KeyboardInterrupt:  # stopped from outside (SIGINT, SIGTERM): the report so far
                break
            rep.seconds = time.monotonic() - start
            if progress is not None:
                progress(rep)
            run += 1
            if only_run is not None or (runs is not None and rep.runs >= runs):
                break
            if packets is not None and rep.mutated_packets >= packets:
                break
            if seconds is not None and rep.seconds >= seconds:
                break
    rep.seconds = time.monotonic() - start
    return rep


def _one(rep: Report, seed: int, run: int, pool: list, workdir: str, save: str | None) -> None:
    """One run, its outcome added to `rep`."""
    rng = random.Random(f"{seed}/{run}")
    paths, names, n, damaged = make_run(rng, pool, workdir)
    rep.runs += 1
    rep.mutated_packets += n
    rep.damaged_files += damaged
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if not exercise(paths, workdir, notes):
                rep.unreadable += 1
        except Exception as exc:  # what escaped: the point of the exercise
            sig = _signature(exc)
            rep.crash_runs += 1
            if sig not in rep.crashes:
                rep.crashes[sig] = Crash(sig, str(exc), seed, run, names, traceback.format_exc())
                if save:
                    _save(save, seed, run, paths)
    for note in notes:
        what, _, err = note.partition(" (")  # 'frame N: a stun row the T table could not use (E: msg); left out'
        key = what.split(": ", 1)[-1] + ": " + err.removesuffix("); left out")[:100]
        n0, s0, r0 = rep.left_out.get(key, (0, seed, run))
        rep.left_out[key] = (n0 + 1, s0, r0)
    for w in caught:
        key = f"{w.category.__name__} {Path(w.filename).name}:{w.lineno}: {w.message}"
        rep.warnings[key] = rep.warnings.get(key, 0) + 1
    for p in paths:
        os.unlink(p)


def _save(folder: str, seed: int, run: int, paths: list[str]) -> None:
    os.makedirs(folder, exist_ok=True)
    for k, p in enumerate(paths):
        with open(p, "rb") as src, open(os.path.join(folder, f"seed{seed}-run{run}-{k}{Path(p).suffix}"), "wb") as dst:
            dst.write(src.read())
