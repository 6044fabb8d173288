"""Exports of an Analysis: one JSON document with every table, and one Parquet file per table.

JSON: {"format": "callflow-analysis", "version": 1, "files": [...], "captures": [summary per file],
"tables": {name: [row objects]}}; timestamps as ISO 8601 text (UTC), missing values as null, lists as
arrays, so `pandas.DataFrame(doc["tables"]["stun"])` gives the rows back.

Parquet (pyarrow): `<folder>/<table>.parquet`, written with pandas' metadata so categoricals, nullable
integers (Int64, UInt64, boolean), timestamps (unit and zone) and pandas strings come back as they were. A
column of mixed Python objects that Arrow cannot type is written as text (None kept), and named in the
file's key-value metadata under `callflow.as_text`. List columns (e.g. findings.frames) come back as
numpy arrays.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "callflow-analysis"
VERSION = 1


def _tables(a) -> dict[str, pd.DataFrame]:
    out = {}
    for name in a.tables:
        df = getattr(a, name)
        if isinstance(df, pd.DataFrame):
            out[name] = df
    return out


def json_value(v: Any) -> Any:
    """A cell as a JSON-ready value."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) else v if math.isfinite(v) else str(v)
    if isinstance(v, np.generic):
        return json_value(v.item())
    if isinstance(v, pd.Timestamp | dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, pd.Timedelta | dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [json_value(x) for x in v]
    if isinstance(v, set | frozenset):
        return sorted(json_value(x) for x in v)
    return str(v)


def _column(col: pd.Series) -> list:
    """A column's cells as JSON-ready values: a plain numpy integer or boolean column is its list as is;
    others go cell by cell through json_value (one column at a time, not one row object per row)."""
    if col.dtype.kind in "biu" and isinstance(col.dtype, np.dtype):
        return col.tolist()
    return list(map(json_value, col.tolist()))


def records(df: pd.DataFrame) -> list[dict]:
    cols = [str(c) for c in df.columns]
    values = [_column(df.iloc[:, i]) for i in range(df.shape[1])]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)] if cols else [{}] * len(df)


def to_document(a) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "files": [os.fspath(f) for f in a.files],
        "captures": [json_value(c.to_dict()) for c in a.captures],
        "tables": {name: records(df) for name, df in _tables(a).items()},
    }


def to_json(a, path: str | os.PathLike | None = None, *, indent: int | None = None) -> str:
    """The Analysis as JSON text; also written to `path` when given."""
    text = json.dumps(to_document(a), indent=indent, ensure_ascii=False, allow_nan=False) if indent is not None \
        else _compact(a)
    if path is not None:
        Path(path).write_text(text + "\n", encoding="utf-8")
    return text


CHUNK_ROWS = 5000


def _compact(a) -> str:
    """The same text as json.dumps(to_document(a)), encoded a few thousand rows at a time: a capture of
    200,000 flows never holds every row as a dict at once."""
    def dumps(v) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False)

    head = {"format": FORMAT, "version": VERSION, "files": [os.fspath(f) for f in a.files],
            "captures": [json_value(c.to_dict()) for c in a.captures]}
    parts = [dumps(head)[:-1], ', "tables": {']
    for i, (name, df) in enumerate(_tables(a).items()):
        parts.append((", " if i else "") + dumps(name) + ": [")
        for start in range(0, len(df), CHUNK_ROWS):
            parts.append((", " if start else "") + dumps(records(df.iloc[start : start + CHUNK_ROWS]))[1:-1])
        parts.append("]")
    parts.append("}}")
    return "".join(parts)


def _arrow_table(df: pd.DataFrame):
    import pyarrow as pa

    as_text: list[str] = []
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        df = df.copy()
        for c in df.columns:
            if df[c].dtype == object:
                try:
                    pa.array(df[c], from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    df[c] = df[c].map(lambda v: None if v is None or (np.isscalar(v) and pd.isna(v)) else str(v))
                    as_text.append(str(c))
        table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"callflow.as_text"] = json.dumps(as_text).encode()
    meta[b"callflow.dtypes"] = json.dumps({str(c): str(t) for c, t in df.dtypes.items()}).encode()
    return table.replace_schema_metadata(meta)


def to_parquet(a, folder: str | os.PathLike) -> list[Path]:
    """Write every table to `folder/<table>.parquet` (the folder is created); returns the files written."""
    import pyarrow.parquet as pq

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in _tables(a).items():
        p = out_dir / f"{name}.parquet"
        pq.write_table(_arrow_table(df.reset_index(drop=True)), p)
        written.append(p)
    return written


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """One table written by to_parquet. Arrow keeps nearly every pandas dtype by itself; an empty
    categorical (no categories to infer a type from) and a timestamp in seconds (Parquet's coarsest unit
    is the millisecond) are restored from the dtypes noted at writing."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    df = table.to_pandas()
    noted = json.loads((table.schema.metadata or {}).get(b"callflow.dtypes", b"{}"))
    for c, t in noted.items():
        if c not in df.columns or str(df[c].dtype) == t:
            continue
        if t == "category" or t.startswith(("datetime64[", "timedelta64[")):  # Parquet has no 1-second unit
            df[c] = df[c].astype(t)
    return df


def read_parquet(folder: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The tables written by to_parquet, by name."""
    return {p.stem: read_table(p) for p in sorted(Path(folder).glob("*.parquet"))}
