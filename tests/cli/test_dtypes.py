"""One dtype per kind of column across every table (issue 17): addresses one string dtype, ports
Int64, lists as lists, and `frames` always Wireshark frame numbers."""

from __future__ import annotations

import glob
import re

import pandas as pd
import pytest

from analyzer import analyze
from tests.conftest import CAPTURES

ADDRESS = re.compile(r"^(src|dst|address|client|server|sender|receiver)$|_(src|dst|address)$")
PORT = re.compile(r"(^|_)[sd]?port$")


@pytest.fixture(scope="module", params=["external-via-relay", "tcp-fallback", "intranet-direct"])
def analysis(request):
    files = sorted(glob.glob(str(CAPTURES / request.param / "*.pcap")))
    if not files:
        pytest.skip("capture not generated")
    return analyze(files)


def test_every_table_has_one_dtype_per_kind(analysis):
    seen_address, checked = set(), 0
    for name in analysis.tables:
        df = analysis[name]
        if not isinstance(df, pd.DataFrame):
            continue
        for c in df.columns:
            if ADDRESS.search(str(c)):
                seen_address.add(str(df[c].dtype))
                assert df[c].dtype == "str", (name, c, df[c].dtype)
                checked += 1
            elif PORT.search(str(c)):
                assert df[c].dtype == "Int64", (name, c, df[c].dtype)
                checked += 1
            if c == "frames" or (str(c).endswith("_frames") and c != "video_frames"):
                assert all(isinstance(v, list) for v in df[c].dropna()), (name, c)
    assert seen_address == {"str"} and checked > 30


def test_lists_are_lists(analysis):
    assert all(isinstance(v, list) and all(isinstance(x, int) for x in v) for v in analysis.calls.sessions)
    assert all(isinstance(v, list) for v in analysis.sessions.files)
    assert "frames" not in analysis.streams.columns and "video_frames" in analysis.streams.columns
    for f in analysis.findings.itertuples():
        assert all(type(x) is int for x in f.frames) and len(f.frame_files) == len(f.frames)


def test_sessions_files_name_the_captures():
    files = sorted(glob.glob(str(CAPTURES / "external-via-relay" / "*.pcap")))
    a = analyze(files)
    assert a.sessions.files.iloc[0] == [0, 1, 2]
    assert a.sessions.start_file.iloc[0] == 1  # nat-outside.pcap frame 7: the peer's first check (tshark)
