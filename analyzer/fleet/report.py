"""`callflow fleet-report`: the fleet's questions answered from the dataset with DuckDB.

Each question is one SQL query over views named after the tables (`calls`, `findings`, ...), so the same
text runs in a notebook: `connect(dataset).sql(QUERIES["findings per code and site"]).df()`. A capture's
site is its egress: the addresses its TURN allocations were seen from (XOR-MAPPED-ADDRESS of the
Allocate success), the only place the dataset states it; "unknown" when no allocation was answered.
"""

from __future__ import annotations

import os

import pandas as pd

from . import dataset

# columns a query needs from a table that no capture of the fleet has rows for (the view is then empty)
_EMPTY = {
    "calls": "capture VARCHAR, capture_sha256 VARCHAR, call BIGINT, topology VARCHAR",
    "findings": "capture VARCHAR, capture_sha256 VARCHAR, call BIGINT, code VARCHAR, severity VARCHAR",
    "allocations": "capture VARCHAR, capture_sha256 VARCHAR, client VARCHAR, server VARCHAR, server_port BIGINT, "
    "transport VARCHAR, state VARCHAR, mapped_address VARCHAR",
    "pairs": "capture VARCHAR, capture_sha256 VARCHAR, local_type VARCHAR, remote_type VARCHAR, transport VARCHAR, "
    "relayed BOOLEAN, selected BOOLEAN",
    "streams": "capture VARCHAR, capture_sha256 VARCHAR, file_name VARCHAR, ssrc_hex VARCHAR, src VARCHAR, "
    "sport BIGINT, dst VARCHAR, dport BIGINT, kind VARCHAR, loss_pct DOUBLE, jitter_ms_max DOUBLE, rtt_ms DOUBLE, "
    "mos DOUBLE, poor BOOLEAN",
    "captures": "capture VARCHAR, capture_sha256 VARCHAR, status VARCHAR, error VARCHAR, damaged BIGINT, "
    "damage VARCHAR, packets BIGINT",
}

_SITES = """sites AS (
    SELECT capture_sha256, string_agg(DISTINCT mapped_address, ', ' ORDER BY mapped_address) AS site
    FROM allocations WHERE mapped_address IS NOT NULL GROUP BY ALL)"""

QUERIES = {
    "captures by status": """
        SELECT status, count(*) AS captures, sum(packets)::BIGINT AS packets, sum(damaged)::BIGINT AS damaged_records
        FROM captures GROUP BY ALL ORDER BY captures DESC, status""",
    "failed and damaged captures": """
        SELECT capture, status, coalesce(error, damage) AS why
        FROM captures WHERE status <> 'ok' ORDER BY status, capture""",
    "verdicts per topology": """
        WITH f AS (SELECT capture_sha256, call, string_agg(DISTINCT code, ', ' ORDER BY code) AS codes
                   FROM findings WHERE call IS NOT NULL GROUP BY ALL)
        SELECT c.topology, count(*) AS calls, count(DISTINCT c.capture_sha256) AS captures,
               count(f.codes) AS calls_with_findings,
               coalesce(string_agg(DISTINCT f.codes, '; ' ORDER BY f.codes), '') AS findings
        FROM calls c LEFT JOIN f ON f.capture_sha256 = c.capture_sha256 AND f.call = c.call
        GROUP BY ALL ORDER BY calls DESC, c.topology""",
    "findings per code and site": f"""
        WITH {_SITES}
        SELECT f.code, f.severity, coalesce(s.site, 'unknown (no answered allocation)') AS site,
               count(*) AS findings, count(DISTINCT f.capture_sha256) AS captures, min(f.capture) AS example
        FROM findings f LEFT JOIN sites s USING (capture_sha256)
        GROUP BY ALL ORDER BY findings DESC, f.code, site""",
    "relays and transports": """
        SELECT server AS relay, server_port AS port, transport, state, count(*) AS allocations,
               count(DISTINCT capture_sha256) AS captures,
               coalesce(string_agg(DISTINCT mapped_address, ', ' ORDER BY mapped_address), '') AS seen_from
        FROM allocations GROUP BY ALL ORDER BY allocations DESC, relay, port, transport, state""",
    "selected paths": """
        SELECT local_type, remote_type, transport, relayed, count(*) AS pairs,
               count(DISTINCT capture_sha256) AS captures
        FROM pairs WHERE selected GROUP BY ALL ORDER BY pairs DESC, local_type, remote_type, transport""",
    "poor calls": """
        WITH t AS (SELECT capture_sha256, string_agg(DISTINCT topology, ', ' ORDER BY topology) AS topologies
                   FROM calls GROUP BY ALL)
        SELECT s.capture, s.file_name, s.ssrc_hex, s.src || ':' || s.sport || ' -> ' || s.dst || ':' || s.dport
               AS stream, s.kind, s.loss_pct, s.jitter_ms_max, s.rtt_ms, s.mos, t.topologies
        FROM streams s LEFT JOIN t USING (capture_sha256)
        WHERE s.poor ORDER BY s.mos NULLS LAST, s.loss_pct DESC, s.capture""",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(root: str | os.PathLike):
    """A DuckDB connection with one view per table of the dataset at `root` (all its partitions)."""
    import duckdb

    if not (os.path.isdir(root) and os.path.exists(os.path.join(root, dataset.MARKER))):
        raise FileNotFoundError(f"{root}: not a callflow fleet dataset")
    con = duckdb.connect()
    for table in (dataset.CAPTURES, *dataset.TABLES):
        if dataset.files(root, table):
            pattern = os.path.join(os.path.abspath(root), table, "*", dataset.PART)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({_quote(pattern)}, union_by_name=true)")
        else:
            cols = _EMPTY.get(table, "capture VARCHAR, capture_sha256 VARCHAR")
            con.execute(f"CREATE TABLE {table} ({cols})")
    return con


def fleet_report(root: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Every question of QUERIES, answered from the dataset at `root`."""
    con = connect(root)
    try:
        return {name: con.sql(sql).df() for name, sql in QUERIES.items()}
    finally:
        con.close()
