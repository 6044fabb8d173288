"""JSON and Parquet exports: every table, values and dtypes as they were."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyzer.report.export import json_value, read_parquet, read_table, to_parquet
from tests.report.build import XSS


def assert_same(df: pd.DataFrame, back: pd.DataFrame, name: str) -> None:
    if df.shape[1] == 0:  # a table built from no rows without its columns: nothing to compare but the length
        assert back.shape == df.shape, name
        return
    assert list(back.columns) == list(df.columns), name
    assert back.dtypes.astype(str).to_dict() == df.dtypes.astype(str).to_dict(), name
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), obj=name)


@pytest.mark.parametrize("which", ["scenario", "loopback", "ntop_stun"])
def test_parquet_round_trip_of_every_table(which, request, tmp_path):
    a = request.getfixturevalue(which)
    written = a.to_parquet(tmp_path / "tables")
    assert sorted(p.stem for p in written) == sorted(a.tables)
    back = read_parquet(tmp_path / "tables")
    for name in a.tables:
        assert_same(getattr(a, name), back[name], name)


def test_parquet_keeps_categoricals_nullable_ints_and_timestamps(scenario, tmp_path):
    to_parquet(scenario, tmp_path)
    stun = read_table(tmp_path / "stun.parquet")
    assert isinstance(stun["method"].dtype, pd.CategoricalDtype)
    assert list(stun["method"].cat.categories) == list(scenario.stun["method"].cat.categories)
    assert str(stun["sport"].dtype) == "Int64" and str(stun["error_code"].dtype) == "Int64"
    assert stun["error_code"].isna().sum() == 12 and int(stun["error_code"].iloc[1]) == 401
    assert str(stun["ts"].dtype) == str(scenario.stun["ts"].dtype) and str(stun["ts"].dt.tz) == "UTC"
    assert stun["software"].iloc[0] == XSS  # data stays data: escaping is the HTML report's business


def test_parquet_empty_categorical_survives(scenario, tmp_path):
    # the scenario has no DTLS: an empty table whose categoricals have no categories to infer a type from
    to_parquet(scenario, tmp_path)
    dtls = read_table(tmp_path / "dtls.parquet")
    assert len(dtls) == 0 and isinstance(dtls["content_type"].dtype, pd.CategoricalDtype)


def test_parquet_mixed_object_column_written_as_text(tmp_path):
    from analyzer.report.export import _arrow_table

    df = pd.DataFrame({"x": [1, "two", None], "n": pd.array([1, None, 3], dtype="Int64")})
    table = _arrow_table(df)
    assert json.loads(table.schema.metadata[b"callflow.as_text"]) == ["x"]
    assert table.column("x").to_pylist() == ["1", "two", None]


def test_json_document(scenario, tmp_path):
    path = tmp_path / "a.json"
    text = scenario.to_json(path)
    doc = json.loads(path.read_text())
    assert doc == json.loads(text)
    assert doc["format"] == "callflow-analysis" and doc["version"] == 1
    assert sorted(doc["tables"]) == sorted(scenario.tables)
    for name in scenario.tables:
        assert len(doc["tables"][name]) == len(getattr(scenario, name)), name
    stun = doc["tables"]["stun"]
    assert [r["frame"] for r in stun] == list(range(1, 14))
    assert stun[0]["software"] == XSS and stun[1]["error_code"] == 401 and stun[0]["error_code"] is None
    assert stun[0]["ts"] == "2023-11-14T22:13:20+00:00"
    assert stun[0]["method"] == "Allocate" and stun[0]["sport"] == 50000
    assert doc["captures"][0]["packets"] == 313
    back = pd.DataFrame(doc["tables"]["pairs"])
    assert list(back.columns) == list(scenario.pairs.columns)


def test_json_values():
    import numpy as np

    assert json_value(np.int64(3)) == 3 and json_value(float("nan")) is None and json_value(pd.NA) is None
    assert json_value(pd.NaT) is None and json_value(b"\x01\xff") == "01ff"
    assert json_value(np.array([1, 2])) == [1, 2] and json_value({3, 1}) == [1, 3]
    assert json_value(pd.Timestamp("2024-01-02T03:04:05Z")) == "2024-01-02T03:04:05+00:00"
    assert json_value(float("inf")) == "inf"


def test_parquet_restores_second_resolution_timestamps(tmp_path):
    import pyarrow.parquet as pq

    from analyzer.report.export import _arrow_table

    df = pd.DataFrame({"t": pd.Series([pd.NaT, pd.Timestamp("2024-01-01")], dtype="datetime64[s]"),
                       "c": pd.Categorical(["a", None])})
    pq.write_table(_arrow_table(df), tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), df)
