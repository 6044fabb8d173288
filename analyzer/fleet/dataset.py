"""The fleet dataset on disk: one Parquet dataset per table, one partition (folder) per capture.

    DATASET/_callflow-fleet.json              format marker
    DATASET/<table>/<key>/part-0.parquet      <key> = the capture's sha256

Every partition file is written under a dot-name beside its final name and renamed into place
(os.replace, atomic on one filesystem), so a reader globbing `*.parquet` never sees half a file. The
`captures` partition of a capture is written last: it is the commit mark that resume trusts; tables of a
capture without it are rewritten by the next run. Columns are typed by simple, content-independent rules
(so every partition of a table has the same schema): categoricals and text as strings, object columns
named `frames` or `*_frames` as lists of int64, any other object column (lists of dicts, ...) as JSON
text, named in the file's metadata under `callflow.json` so `read_table` gives the objects back; the
captures table's `files`, `file_sha256`, `also`, `damage_notes` and the findings' `frame_refs` are lists of strings.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import pandas as pd

FORMAT = {"format": "callflow-fleet", "version": 1}
MARKER = "_callflow-fleet.json"
# the analysis tables the dataset keeps, then the table of captures (written last)
TABLES = ("calls", "findings", "sessions", "pairs", "candidates", "allocations", "streams", "flows")
CAPTURES = "captures"
PART = "part-0.parquet"


# object columns that hold lists: of frame numbers, and of text (file names, hashes, paths)
LIST_OF_TEXT = frozenset(("frame_refs", "files", "file_sha256", "also", "damage_notes"))


def _is_list_column(name: str) -> bool:
    return name == "frames" or (name.endswith("_frames") and name != "video_frames") or name in LIST_OF_TEXT


def _missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def to_arrow(df: pd.DataFrame):
    """A DataFrame as an Arrow table typed by the module's rules (no pandas metadata: the rules decide)."""
    import pyarrow as pa

    from ..report.export import json_value

    arrays, names, as_json = [], [], []
    for name in df.columns:
        s = df[name]
        name = str(name)
        if isinstance(s.dtype, pd.CategoricalDtype) or (pd.api.types.is_string_dtype(s.dtype) and s.dtype != object):
            arr = pa.array([None if pd.isna(v) else str(v) for v in s], type=pa.string())
        elif s.dtype == object:
            values = [None if _missing(v) else v for v in s]
            if (_is_list_column(name) or name == "sessions") and all(
                v is None or isinstance(v, list | tuple) for v in values
            ):
                text = name in LIST_OF_TEXT and any(isinstance(x, str) for v in values if v for x in v)
                typ = pa.list_(pa.string() if text else pa.int64())
                arr = pa.array([None if v is None else list(v) for v in values], type=typ)
            elif all(v is None or isinstance(v, str) for v in values):
                arr = pa.array(values, type=pa.string())
            else:
                arr = pa.array(
                    [None if v is None else json.dumps(json_value(v), ensure_ascii=False) for v in values],
                    type=pa.string(),
                )
                as_json.append(name)
        else:
            arr = pa.array(s, from_pandas=True)
            if pa.types.is_large_string(arr.type):
                arr = arr.cast(pa.string())
        arrays.append(arr)
        names.append(name)
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({b"callflow.json": json.dumps(as_json).encode()})


def partition(root: str | os.PathLike, table: str, key: str) -> Path:
    return Path(root) / table / key / PART


def write_partition(root: str | os.PathLike, table: str, key: str, arrow_table) -> Path:
    """Write one table's rows of one capture atomically (temporary dot-name, then rename)."""
    import pyarrow.parquet as pq

    final = partition(root, table, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(arrow_table, tmp)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def remove_partitions(root: str | os.PathLike, key: str) -> None:
    """Drop every table's partition of one key (the captures mark first, so it never outlives its rows)."""
    for table in (CAPTURES, *TABLES):
        p = partition(root, table, key)
        if p.exists():
            p.unlink()
            with contextlib.suppress(OSError):
                p.parent.rmdir()


def prepare(root: str | os.PathLike) -> Path:
    """Create the dataset folder (or check that an existing one is a fleet dataset); remove the temporary
    files a killed run left."""
    root = Path(root)
    marker = root / MARKER
    if root.exists() and any(root.iterdir()) and not marker.exists():
        raise FileExistsError(f"{root}: exists and is not a callflow fleet dataset")
    root.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        tmp = root / f".{MARKER}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(FORMAT) + "\n")
        os.replace(tmp, marker)
    for t in root.glob(f"*/*/.{PART}.*.tmp"):
        t.unlink(missing_ok=True)
    return root


def files(root: str | os.PathLike, table: str) -> list[Path]:
    """The partition files of a table, in key order."""
    return sorted((Path(root) / table).glob(f"*/{PART}"))


def read_table(root: str | os.PathLike, table: str, *, keys: set[str] | None = None) -> pd.DataFrame:
    """One table of the dataset as a DataFrame (JSON columns decoded, nullable integers and booleans)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    mapper = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(), pa.string(): pd.StringDtype()}.get
    frames = []
    for p in files(root, table):
        if keys is not None and p.parent.name not in keys:
            continue
        t = pq.read_table(p)
        df = t.to_pandas(types_mapper=mapper)
        for c in json.loads((t.schema.metadata or {}).get(b"callflow.json", b"[]")):
            df[c] = df[c].astype(object).map(lambda v: None if v is None or v is pd.NA else json.loads(v))
        for c in df.columns:
            if _is_list_column(str(c)) and df[c].dtype == object:
                df[c] = df[c].map(lambda v: None if v is None else list(v))
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


def committed(root: str | os.PathLike) -> dict[str, str]:
    """key -> status of every capture the dataset holds (its captures partition exists)."""
    import pyarrow.dataset as pads

    if not files(root, CAPTURES):
        return {}
    t = pads.dataset(Path(root) / CAPTURES, format="parquet").to_table(columns=["key", "status"])
    return dict(zip(t.column("key").to_pylist(), t.column("status").to_pylist(), strict=True))
