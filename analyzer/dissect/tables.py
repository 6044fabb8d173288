"""The dissect stage's rows as pandas DataFrames (every column: docs/tables.md)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from .control import DTLS_COLUMNS, ControlDissector
from .stun_rows import STUN_COLUMNS

_CATEGORIES = ("transport", "method", "cls", "content_type", "handshake_type", "version", "src", "dst", "username",
               "ufrag_to", "ufrag_from", "ice_role", "mapped_address", "relayed_address", "peer_address",
               "error_reason", "software", "attributes", "realm", "nonce", "outer_src", "outer_dst", "alert", "info")
_NULLABLE_INT = (
    "sport",
    "dport",
    "priority",
    "tie_breaker",
    "mapped_port",
    "relayed_port",
    "peer_port",
    "error_code",
    "lifetime",
    "channel",
    "requested_transport",
    "ms_version",
    "stream_type",
    "network_id",
    "network_cost",
    "outer_sport",
    "outer_dport",
    "outer_channel",
    "session",
    "nomination",
)


def rows(df: pd.DataFrame, columns: Iterable[str] | None = None) -> Iterator[Any]:
    """`df.itertuples(index=False)` (values and names alike) for the columns asked, without its per-cell
    cost: each column is converted once, which on a call's thousands of checks is ten times faster."""
    cols = list(df.columns if columns is None else columns)
    row = namedtuple("Row", cols, rename=True)
    return map(row._make, zip(*(df[c].tolist() for c in cols), strict=True))


def nullable_ints(values: list, dtype: str = "Int64") -> pd.api.extensions.ExtensionArray:
    """A nullable integer array built from the Python ints themselves: pandas would go through float64
    for a column with gaps, which loses the low bits above 2**53 (ICE tie-breakers are 64-bit)."""
    lo, hi, kind = (0, 2**64 - 1, np.uint64) if dtype == "UInt64" else (-(2**63), 2**63 - 1, np.int64)
    # a value that is no integer of the column's range is absent, not the end of the table
    vals = [int(v) if isinstance(v, int | np.integer) and not isinstance(v, bool) and lo <= v <= hi else None
            for v in values]
    mask = np.fromiter((v is None for v in vals), dtype=bool, count=len(vals))
    data = np.fromiter((0 if v is None else v for v in vals), dtype=kind, count=len(vals))
    return pd.arrays.IntegerArray(data, mask)


def frame_table(rows: list[tuple], columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows -> DataFrame: `ts` as UTC datetimes from `ts_ns`, repeated strings as categoricals,
    integers that may be absent as nullable Int64 (tie-breakers UInt64), every bit kept."""
    df = pd.DataFrame.from_records(rows, columns=list(columns))
    df.insert(2, "ts", pd.to_datetime(df["ts_ns"].astype("int64"), unit="ns", utc=True))
    for c in _NULLABLE_INT:
        if c not in df:
            continue
        if c != "tie_breaker":  # 16- and 32-bit fields: exact through float64, and fast
            try:
                df[c] = df[c].astype("Int64")
                continue
            except (TypeError, ValueError, OverflowError):  # a value no integer: built one by one below
                pass
        i = columns.index(c)
        df[c] = nullable_ints([r[i] for r in rows], "UInt64" if c == "tie_breaker" else "Int64")
    for c in _CATEGORIES:
        if c in df:
            df[c] = df[c].astype("category")
    return df


def stun_table(ctrls: list[ControlDissector]) -> pd.DataFrame:
    rows = [r for c in ctrls for r in c.stun_rows]
    df = frame_table(rows, STUN_COLUMNS)
    del rows
    for c in ctrls:  # the table is the rows' home from now on (only once it is built: a failed build
        c.release_rows()  # must leave the rows for the next try)
    return df


def dtls_table(ctrls: list[ControlDissector]) -> pd.DataFrame:
    rows = [r for c in ctrls for r in c.dtls_rows]
    return frame_table(rows, DTLS_COLUMNS)


def transactions_table(ctrls: list[ControlDissector]) -> pd.DataFrame:
    rows = []
    for file, c in enumerate(ctrls):
        for t in c.transactions.results():
            rows.append(
                {
                    "file": file,
                    "transaction_id": t.transaction_id,
                    "method": t.method_name,
                    "request_frame": t.request_frame,
                    "response_frame": t.response_frame,
                    "response_cls": t.response_cls,
                    "error_code": t.error.code if t.error else None,
                    "error_reason": t.error.reason if t.error else None,
                    "rtt_ms": t.rtt_ms,
                    "retransmissions": t.retransmissions,
                    "state": t.state,
                    "asymmetric": t.asymmetric,
                }
            )
    cols = [
        "file",
        "transaction_id",
        "method",
        "request_frame",
        "response_frame",
        "response_cls",
        "error_code",
        "error_reason",
        "rtt_ms",
        "retransmissions",
        "state",
        "asymmetric",
    ]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("response_frame", "error_code"):
        df[c] = df[c].astype("Int64")
    return df


def dtls_sessions_table(ctrls: list[ControlDissector]) -> pd.DataFrame:
    rows = []
    for file, c in enumerate(ctrls):
        for i, s in enumerate(c.dtls.summary()):
            rows.append(
                {
                    "file": file,
                    "session": i,
                    "client": s.client[0],
                    "client_port": s.client[1],
                    "server": s.server[0],
                    "server_port": s.server[1],
                    "first_frame": s.first_frame,
                    "client_hello_frame": s.client_hello_frame,
                    "server_hello_frame": s.server_hello_frame,
                    "start_ts": pd.Timestamp(s.start_ts_ns, unit="ns", tz="UTC"),
                    "completed_ts": pd.Timestamp(s.completed_ts_ns, unit="ns", tz="UTC")
                    if s.completed_ts_ns
                    else pd.NaT,
                    "completed": s.completed,
                    "version": s.version,
                    "cipher_suite": s.cipher_suite,
                    "srtp_profile": s.srtp_profile,
                    "client_fingerprint": s.client_fingerprint,
                    "server_fingerprint": s.server_fingerprint,
                    "alerts": ",".join(s.alerts),
                    "retransmitted_flights": s.retransmitted_flights,
                    "hello_verify": s.hello_verify,
                    "state": s.state,
                    "client_random": s.client_random,
                }
            )
    cols = ["file", "session", "client", "client_port", "server", "server_port", "first_frame",
            "client_hello_frame", "server_hello_frame", "start_ts", "completed_ts", "completed", "version",
            "cipher_suite", "srtp_profile", "client_fingerprint", "server_fingerprint", "alerts",
            "retransmitted_flights", "hello_verify", "state", "client_random"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("client_hello_frame", "server_hello_frame"):
        df[c] = df[c].astype("Int64")
    return df
