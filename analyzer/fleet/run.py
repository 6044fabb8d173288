"""analyze_many(): a fleet of captures, one Dask task per capture (or per folder of capture points).

The driver only lists, hashes and schedules; workers analyse and (with a dataset) write. A LocalCluster
of `workers` processes (one thread each: the analysis is CPU-bound Python) is started unless a scheduler
address or a Client is given; `workers=0` runs the same tasks in this process, one after the other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import dataset
from .inputs import Unit, find_captures, plan_units
from .task import analyse_unit, captures_frame, failed_row, write_row

PathLike = str | os.PathLike


@dataclass
class Fleet:
    """What a fleet run gives: `run` (the captures rows of the units analysed now), `skipped` (paths
    already in the dataset), and every table (`captures`, `calls`, `findings`, ...) as a DataFrame: read
    from the dataset when there is one (all its captures, not only this run's), else kept in memory."""

    run: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    out: str | None = None
    dashboard: str | None = None
    seconds: float = 0.0
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in (dataset.CAPTURES, *dataset.TABLES):
            raise AttributeError(name)
        tables = self.__dict__["_tables"]
        if name not in tables:
            out = self.__dict__["out"]
            tables[name] = dataset.read_table(out, name) if out is not None else pd.DataFrame()
        return tables[name]


@contextlib.contextmanager
def open_client(workers: int, scheduler: str | None):
    """(client, dashboard address or None): a LocalCluster of worker processes for the block, unless a
    scheduler address is given.

    The LocalCluster's workers run without Dask's statistical profiler: it keeps up to an hour of samples,
    and with it a worker grew by about 0.6 MB per capture analysed here, where without it a worker stays
    at the size its largest capture needs. The setting is held for the whole block, since a nanny reads the
    configuration again when it restarts a worker that died."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client, None
        return
    with (
        dask.config.set({"distributed.worker.profile.enabled": False}),
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client, cluster.dashboard_link


def _todo(units: list[Unit], out: str | None, retry_failed: bool) -> tuple[list[Unit], list[Unit]]:
    """(to run, already in the dataset). A unit that could not be read is always tried again, and the
    row it left is dropped once it reads."""
    if out is None:
        return units, []
    done = dataset.committed(out)
    todo, skipped = [], []
    for u in units:
        stale = Unit(u.path, u.files, None).key  # the key it had if it was unreadable before
        if u.sha256 is not None and stale in done:
            dataset.remove_partitions(out, stale)
        status = done.get(u.key)
        if status is None or u.sha256 is None or (retry_failed and status == "failed"):
            todo.append(u)
        else:
            skipped.append(u)
    return todo, skipped


def analyze_many(
    paths: PathLike | Iterable[PathLike],
    *,
    out: PathLike | None = None,
    network: PathLike | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    client=None,
    group_by_folder: bool = False,
    retry_failed: bool = False,
    on_start: Callable[[dict], None] | None = None,
    on_done: Callable[[dict], None] | None = None,
) -> Fleet:
    """Analyse every capture the inputs name (files, folders searched recursively, globs).

    With `out` the tables go to the Parquet dataset there (docs/fleet.md), captures already in it are
    skipped (`retry_failed` runs the failed ones again); without, they come back in memory. `client` (a
    distributed.Client) or `scheduler` (its address) uses an existing cluster; otherwise a LocalCluster
    of `workers` processes is started for the run, or none at all with workers=0. `on_start` gets
    {"units", "skipped", "dashboard"}; `on_done` each finished unit's captures row.
    Raises FleetInputError for an input that names nothing, OSError/ValueError for a bad profile.
    """
    from ..topology.profile import NetworkProfile

    t0 = time.perf_counter()
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    network = os.path.abspath(network) if network is not None else None
    NetworkProfile.load(network)  # a bad profile fails the run here, not in every task
    out = os.path.abspath(out) if out is not None else None
    units = plan_units(find_captures(items), group_by_folder=group_by_folder)
    if out is not None:
        dataset.prepare(out)
    todo, skipped = _todo(units, out, retry_failed)
    rows: list[dict] = []
    collected: dict[str, list[pd.DataFrame]] = {}

    def finish(unit: Unit, result: dict | None, err: BaseException | None) -> None:
        if err is not None:
            row = failed_row(unit, network, "task failed: " + " ".join(f"{type(err).__name__}: {err}".split()))
            if out is not None:
                write_row(out, unit.key, row)
        elif out is None:
            row = result["captures"]
            for name in dataset.TABLES:
                if name in result and len(result[name]):
                    collected.setdefault(name, []).append(result[name])
        else:
            row = result
        rows.append(row)
        if on_done:
            on_done(row)

    with contextlib.ExitStack() as stack:
        dashboard = None
        if todo and client is None and (workers > 0 or scheduler):
            client, dashboard = stack.enter_context(open_client(workers, scheduler))
        if on_start:
            on_start({"units": len(todo), "skipped": len(skipped), "dashboard": dashboard})
        if todo and client is None:
            for u in todo:
                try:
                    res, err = analyse_unit(u, network, out), None
                except Exception as e:  # the task catches a capture's errors; this is a write failing
                    res, err = None, e
                finish(u, res, err)
        elif todo:
            from distributed import as_completed

            run = uuid.uuid4().hex[:8]
            keys = [f"callflow-{u.key[:16]}-{run}" for u in todo]
            futures = client.map(analyse_unit, todo, network=network, out=out, key=keys, pure=False)
            by_key = dict(zip(keys, todo, strict=True))
            for fut in as_completed(futures):
                unit = by_key[fut.key]
                try:
                    res, err = fut.result(), None
                except Exception as e:  # its workers died on every attempt (KilledWorker), or a write failed
                    res, err = None, e
                fut.release()
                finish(unit, res, err)
    tables: dict[str, pd.DataFrame] = {}
    run_frame = captures_frame(rows) if rows else pd.DataFrame()
    if out is None:
        tables = {
            name: pd.concat(collected[name], ignore_index=True) if name in collected else pd.DataFrame()
            for name in dataset.TABLES
        }
        tables[dataset.CAPTURES] = run_frame
    return Fleet(run_frame, [u.path for u in skipped], out, dashboard, time.perf_counter() - t0, tables)
