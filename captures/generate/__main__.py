"""python -m captures.generate [--only SCENARIO ...] [--out DIR] [--list]: rebuild the real-call captures."""

from __future__ import annotations

import argparse
import dataclasses
import random
import signal
import sys
import time
from pathlib import Path

from .netns import LabError, missing_tools
from .scenarios import POINTS, SCENARIOS

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
    ap.add_argument(
        "--plan",
        default="shipped",
        help="address plan: 'shipped' (default), 'office' (other prefixes, egress equal to concentrator), "
        "or 'draw' (drawn from --seed)",
    )
    ap.add_argument("--seed", type=int, default=None, help="seed of a drawn plan (default: random)")
    ap.add_argument(
        "--separate-concentrator", action="store_true", help="a drawn plan's VPN head-end gets its own address"
    )
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        choices=sorted(POINTS),
        metavar="POINT",
        help="capture at this point too, in every scenario that has the host (e.g. nat-outside.pcap)",
    )
    args = ap.parse_args(argv)
    from . import world

    if args.plan == "draw":
        seed = args.seed if args.seed is not None else random.randrange(1 << 30)
        plan = world.draw(seed, egress_is_concentrator=not args.separate_concentrator)
    elif args.plan in world.PLANS:
        plan = world.PLANS[args.plan]
    else:
        ap.error(f"unknown plan {args.plan!r}: shipped, office or draw")
    world.use(plan)
    print(
        f"address plan {plan.name}: customer {plan.customer_lan} behind {plan.egress}, VPN head-end "
        f"{plan.concentrator}, homes {plan.home_x} {plan.home_v}, relay {plan.relay}"
    )
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
            sc = SCENARIOS[name]
            extra = tuple(p for p in args.also if p not in sc.points and POINTS[p].host in {*sc.hosts, "cust"})
            run(dataclasses.replace(sc, points=sc.points + extra) if extra else sc, args.out)
        except LabError as e:
            print(f"FAILED {e}", file=sys.stderr)
            failed.append(name)
    print(f"done in {time.monotonic() - t0:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
