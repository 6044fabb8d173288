"""A fleet of captures on Dask: one task per capture, one Parquet dataset of calls, paths and findings.

    from analyzer.fleet import analyze_many, read_table
    fleet = analyze_many(["captures/"], out="fleet.parquet", workers=2)
    fleet.calls, fleet.findings, fleet.captures      # pandas DataFrames

docs/fleet.md describes the dataset; `callflow fleet` and `callflow fleet-report` are the commands.
"""

from .dataset import CAPTURES, TABLES, read_table
from .inputs import FleetInputError, Unit, find_captures, plan_units
from .run import Fleet, analyze_many

__all__ = [
    "CAPTURES",
    "TABLES",
    "Fleet",
    "FleetInputError",
    "Unit",
    "analyze_many",
    "find_captures",
    "plan_units",
    "read_table",
]
