"""The work of one fleet task, on a worker: analyse one unit, tag its rows, write them or hand them back.

Nothing but the small `captures` row (or, without a dataset, the unit's own small tables) leaves the
worker: the Analysis lives and dies inside the task, so a worker's memory is bounded by its largest capture.
Every failure of the unit becomes its `captures` row (status "failed" and the one-line error); nothing
raises out of the task but the worker's own death, which Dask answers by running the task elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
import traceback

import pandas as pd

from . import dataset
from .inputs import Unit


def one_line(err: BaseException) -> str:
    """The error as one line: CaptureError already names the file; anything else gets its type and origin."""
    from ..capture.errors import CaptureError

    if isinstance(err, CaptureError):
        text = str(err)
    else:
        tb = traceback.extract_tb(err.__traceback__)
        where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
        text = f"internal error {type(err).__name__}: {err}{where}"
    return " ".join(text.split())


def tag(df: pd.DataFrame, unit: Unit, names: list[str]) -> pd.DataFrame:
    """Prefix the capture's path and hash, and the name of the file each row's frames belong to."""
    df = df.reset_index(drop=True).copy()
    if "file" in df.columns:
        index = pd.to_numeric(df["file"], errors="coerce")
        file_name = [names[int(i)] if pd.notna(i) and 0 <= int(i) < len(names) else None for i in index]
    elif "files" in df.columns and len(names) > 1:  # sessions: [0, 2] -> "a.pcap,c.pcap"
        file_name = [
            ",".join(names[int(i)] for i in v if 0 <= int(i) < len(names)) if isinstance(v, list | tuple) else None
            for v in df["files"]
        ]
    else:  # frames of a single-file unit are that file's; of a group they say no file
        file_name = [names[0] if len(names) == 1 else None] * len(df)
    if "frames" in df.columns and df["frames"].dtype == object:
        df["frame_refs"] = [
            [f"{n}:{int(x)}" for x in v] if n is not None and isinstance(v, list | tuple) else None
            for n, v in zip(file_name, df["frames"], strict=True)
        ]
    front = pd.DataFrame(
        {
            "capture": pd.Series([unit.path] * len(df), dtype=object),
            "capture_sha256": pd.Series([unit.sha256] * len(df), dtype=object),
            "file_name": pd.Series(file_name, dtype=object),
        }
    )
    return pd.concat([front, df], axis=1)


def _status_row(unit: Unit, network: str | None, a, error: str | None, seconds: float, tables: dict) -> dict:
    from .. import __version__

    damage: dict[str, int] = {}
    packets = 0
    first = last = None
    formats, notes = [], []
    if a is not None:
        for s in a.captures:
            for k, v in s.damaged.items():
                damage[k] = damage.get(k, 0) + int(v)
            packets += s.packets
            notes += s.damage_notes[: 10 - len(notes)]
            formats.append(s.format + (".gz" if s.compressed else ""))
            if s.first_ts_ns is not None:
                first = s.first_ts_ns if first is None else min(first, s.first_ts_ns)
                last = s.last_ts_ns if last is None else max(last, s.last_ts_ns)
    status = "failed" if error else "damaged" if sum(damage.values()) else "ok"
    calls = tables.get("calls")
    return {
        "capture": unit.path,
        "capture_sha256": unit.sha256,
        "key": unit.key,
        "kind": unit.kind,
        "files": unit.names(),
        "file_sha256": [h or "" for h in unit.file_sha256],
        "also": list(unit.also),
        "size": unit.size,
        "status": status,
        "error": error,
        "damaged": sum(damage.values()),
        "damage": json.dumps(damage, sort_keys=True),
        "damage_notes": notes,
        "packets": packets,
        "formats": ",".join(formats) or None,
        "first_time": pd.Timestamp(first, tz="UTC") if first is not None else pd.NaT,
        "last_time": pd.Timestamp(last, tz="UTC") if last is not None else pd.NaT,
        "calls": len(calls) if calls is not None else 0,
        "findings": len(tables["findings"]) if "findings" in tables else 0,
        "streams": len(tables["streams"]) if "streams" in tables else 0,
        "topologies": ",".join(sorted(set(calls["topology"].astype(str)))) if calls is not None else None,
        "network": network,
        "network_sha256": _profile_hash(network),
        "seconds": round(seconds, 3),
        "worker": socket.gethostname() + f":{os.getpid()}",
        "analyzed_at": pd.Timestamp(dt.datetime.now(dt.UTC)),
        "analyzer_version": __version__,
    }


def _profile_hash(network: str | None) -> str | None:
    from .inputs import file_sha256

    try:
        return file_sha256(network) if network else None
    except OSError:
        return None


def captures_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in ("first_time", "last_time", "analyzed_at"):
        df[c] = pd.to_datetime(df[c], utc=True).astype("datetime64[ns, UTC]")
    return df


def failed_row(unit: Unit, network: str | None, error: str) -> dict:
    """The captures row of a unit that did not run (unreadable, or its task lost beyond Dask's retries)."""
    return {**_status_row(unit, network, None, error, 0.0, {}), "worker": None}


def analyse_unit(unit: Unit, network: str | None = None, out: str | None = None) -> dict:
    """Analyse one unit. With `out`: write its partitions and return its captures row. Without: return
    {"captures": row, <table>: tagged DataFrame, ...}."""
    from ..api import analyze

    t0 = time.perf_counter()
    a, error, tables = None, unit.error, {}
    if error is None:
        try:
            a = analyze(list(unit.files), network=network)
            names = unit.names()
            tables = {name: tag(getattr(a, name), unit, names) for name in dataset.TABLES}
        except Exception as e:  # a capture's failure is its row, never the fleet's end
            error, tables = one_line(e), {}
    row = _status_row(unit, network, a, error, time.perf_counter() - t0, tables)
    del a
    if out is None:
        return {"captures": row, **tables}
    dataset.remove_partitions(out, unit.key)  # what an earlier, interrupted or failed run left of it
    for name, df in tables.items():
        if len(df):
            dataset.write_partition(out, name, unit.key, dataset.to_arrow(df))
    write_row(out, unit.key, row)
    return row


def write_row(out: str, key: str, row: dict) -> None:
    dataset.write_partition(out, dataset.CAPTURES, key, dataset.to_arrow(captures_frame([row])))
