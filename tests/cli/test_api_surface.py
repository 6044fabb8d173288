"""The Python API's surface in Jupyter: tables by key and by attribute, tab completion, a short repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer import analyze

SCENARIO = Path(__file__).resolve().parents[2] / "captures" / "external-via-relay"


@pytest.fixture(scope="module")
def a():
    return analyze(SCENARIO / "client-a.pcap", network=str(SCENARIO / "network.toml"))


def test_tables_by_key_and_attribute(a):
    assert a["calls"] is a.calls
    assert list(a["findings"].code) == ["direct-path-blocked"]
    with pytest.raises(KeyError):
        a["no_such_table"]


def test_dir_lists_the_tables(a):
    names = dir(a)
    for t in ("calls", "findings", "sessions", "pairs", "streams", "flows", "allocations", "candidates"):
        assert t in names


def test_repr_is_a_few_lines(a):
    text = repr(a)
    assert len(text.splitlines()) <= 6 and len(text) < 1000
    assert "client-a.pcap" in text and "packets: 287" in text
    assert "calls: 1 (0: external-via-relay)" in text and "findings: 1 (1 warning)" in text


def test_bad_profile_raises_before_reading(tmp_path):
    bad = tmp_path / "net.toml"
    bad.write_text("[vpn]\npools = ['10.8.0.0/24']\nconcentrator = ['198.51.100.3']\n")
    with pytest.raises(ValueError, match="unknown key 'concentrator' in \\[vpn\\]"):
        analyze(tmp_path / "does-not-exist.pcap", network=str(bad))
