"""python -m analyzer.fuzz --packets N --seed S [--seconds T] [--run N] [--save DIR]"""

from __future__ import annotations

import signal
import sys
import time

import click

from .run import fuzz


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--packets", type=int, default=None, help="Stop after this many mutated packets.")
@click.option("--seconds", type=float, default=None, help="Stop after this many seconds.")
@click.option("--runs", type=int, default=None, help="Stop after this many runs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--run", "only_run", type=int, default=None, help="Replay this one run of the seed.")
@click.option("--save", type=click.Path(file_okay=False), default=None, help="Keep the inputs of new crashes here.")
@click.option("--every", type=float, default=60.0, show_default=True, help="Progress line every N seconds.")
def main(packets, seconds, runs, seed, only_run, save, every) -> None:
    """Mutate the shipped and shared captures and report exceptions that escape."""
    if packets is None and seconds is None and runs is None and only_run is None:
        packets = 10_000
    last = [time.monotonic()]

    def progress(rep) -> None:
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            print(
                rep.lines()[0] + f"; {rep.crash_runs} crashing runs, {len(rep.crashes)} distinct",
                file=sys.stderr,
                flush=True,
            )

    signal.signal(signal.SIGTERM, _interrupt)
    rep = fuzz(seed, packets=packets, seconds=seconds, runs=runs, only_run=only_run, save=save, progress=progress)
    print("\n".join(rep.lines()))
    if only_run is not None:
        for c in rep.crashes.values():
            print(c.trace)
    sys.exit(1 if rep.crashes else 0)


main()
