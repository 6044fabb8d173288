"""python -m captures.generate [--only SCENARIO ...] [--out DIR] [--list]: rebuild the real-call captures."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .netns import LabError, missing_tools
from .scenarios import SCENARIOS

DEFAULT_OUT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m captures.generate", description=__doc__.split(":")[1].strip())
    ap.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="SCENARIO",
        help="generate only this scenario (repeatable); default: all",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:26} {s.topology:24} {','.join(s.findings) or '-':32} {s.summary}")
        return 0
    missing = missing_tools()
    if missing:
        print("cannot generate captures, missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    from .run import run

    # SIGTERM ends the run like Ctrl-C: the labs' context managers remove namespaces and processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t0 = time.monotonic()
    failed = []
    for name in args.only or list(SCENARIOS):
        try:
            run(SCENARIOS[name], args.out)
        except LabError as e:
            print(f"FAILED {e}", file=sys.stderr)
            failed.append(name)
    print(f"done in {time.monotonic() - t0:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
