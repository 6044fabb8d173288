"""Issue 21: a table build that fails leaves the Analysis usable: asking again builds the table."""

from __future__ import annotations

import pytest

from analyzer import analyze
from analyzer.dissect import tables
from tests.conftest import CAPTURES


def test_second_stun_after_a_failed_build(monkeypatch):
    a = analyze(CAPTURES / "loopback-call" / "call.pcap")
    real = tables.frame_table
    calls = []

    def failing(rows, columns):
        calls.append(len(rows))
        if len(calls) == 1:
            raise TypeError("cannot safely cast non-equivalent float64 to uint64")
        return real(rows, columns)

    monkeypatch.setattr(tables, "frame_table", failing)
    with pytest.raises(TypeError):
        _ = a.stun
    st = a.stun  # was: RuntimeError("the STUN rows now live in Analysis.stun")
    assert len(st) == calls[0] == calls[1] > 0
    assert len(a.sessions) >= 1
