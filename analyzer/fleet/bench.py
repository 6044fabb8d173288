"""`python -m analyzer.bench fleet [--captures N]`: a plain loop against a LocalCluster of 1 and 2 workers.

The fleet is N copies of the shipped captures, renamed, each made distinct (the copy's number in the pcap
header's sigfigs field, which readers ignore) so that none is folded into another by its hash. Each mode
runs in a child process on its own dataset: wall time of the run (the cluster's start is given apart),
captures per second, peak RSS of the loop's process or of each worker process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_fleet(folder: Path, count: int, sources: list[Path] | None = None) -> list[Path]:
    """`count` distinct captures in `folder` (nested one level, as tickets arrive), from the shipped ones."""
    sources = sources or sorted((REPO / "captures").glob("*/*.pcap"))
    if not sources:
        raise FileNotFoundError("no shipped captures in captures/*/*.pcap")
    out = []
    for i in range(count):
        src = sources[i % len(sources)]
        data = bytearray(src.read_bytes())
        if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            data[12:16] = struct.pack("<I", i)
        elif data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            data[12:16] = struct.pack(">I", i)
        dest = folder / f"week{i // 50:02d}" / f"ticket-{i:04d}-{src.parent.name}-{src.stem}.pcap"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(bytes(data))
        out.append(dest)
    return out


def _child(args) -> None:
    """One measured run, in its own process; prints a JSON line."""
    import resource

    import analyzer.api  # noqa: F401  (imported before the clock starts, as the workers are warmed below)

    from . import analyze_many

    if args.workers == 0:
        t0 = time.perf_counter()
        fleet = analyze_many([args.input], out=args.out, workers=0)
        wall = time.perf_counter() - t0
        peaks = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
        start = 0.0
    else:
        from .run import open_client

        t0 = time.perf_counter()
        with open_client(args.workers, None) as (client, _dashboard):  # the cluster `callflow fleet` starts
            client.wait_for_workers(args.workers)
            client.run(lambda: __import__("analyzer.api") and None)  # each worker imports the analyzer once
            start = time.perf_counter() - t0
            t0 = time.perf_counter()
            fleet = analyze_many([args.input], out=args.out, client=client)
            wall = time.perf_counter() - t0
            rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            peaks = sorted(v / 1024 for v in rss.values())
    print(
        json.dumps(
            {
                "captures": len(fleet.run),
                "failed": int((fleet.run.status == "failed").sum()),
                "wall_s": wall,
                "start_s": start,
                "peak_rss_mb": peaks,
            }
        )
    )


def run(captures: int = 200, keep: str | None = None) -> int:
    tmp = Path(keep or tempfile.mkdtemp(prefix="callflow-fleet-bench-"))
    try:
        t0 = time.perf_counter()
        made = make_fleet(tmp / "inputs", captures)
        size = sum(p.stat().st_size for p in made)
        print(
            f"fleet: {len(made)} captures ({size / 1e6:.1f} MB) in {tmp / 'inputs'}, "
            f"made in {time.perf_counter() - t0:.1f} s"
        )
        rows = []
        for workers in (0, 1, 2):
            cmd = [
                sys.executable,
                "-m",
                "analyzer.fleet.bench",
                "--child",
                "--workers",
                str(workers),
                "--input",
                str(tmp / "inputs"),
                "--out",
                str(tmp / f"ds-{workers}"),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                print(f"run with {workers} workers failed:", proc.stderr[-800:])
                return 1
            rows.append((workers, json.loads(proc.stdout.strip().splitlines()[-1])))
        print(
            f"{'mode':<22}{'captures':>9}{'failed':>7}{'run s':>8}{'captures/s':>12}{'start s':>9}"
            f"{'peak RSS MB per process':>26}"
        )
        for workers, m in rows:
            mode = "plain loop" if workers == 0 else f"LocalCluster {workers} worker" + "s" * (workers > 1)
            peaks = ", ".join(f"{p:.0f}" for p in m["peak_rss_mb"])
            print(
                f"{mode:<22}{m['captures']:>9}{m['failed']:>7}{m['wall_s']:>8.1f}"
                f"{m['captures'] / m['wall_s']:>12.2f}{m['start_s']:>9.1f}{peaks:>26}"
            )
        one, two = rows[1][1], rows[2][1]
        scaling = one["wall_s"] / two["wall_s"]
        load = os.getloadavg()
        print(
            f"scaling 1 -> 2 workers: {scaling:.2f}x ({one['captures'] / one['wall_s']:.2f} -> "
            f"{two['captures'] / two['wall_s']:.2f} captures/s); this machine: {os.cpu_count()} CPUs, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        same = len({len(list((tmp / f"ds-{w}" / "calls").glob("*/part-0.parquet"))) for w in (0, 1, 2)}) == 1
        print("the three datasets hold the same partitions:", "yes" if same else "NO")
        return 0
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analyzer.fleet.bench")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--captures", type=int, default=200)
    ap.add_argument("--keep", help="keep the fleet and the datasets in this folder")
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    return run(args.captures, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
