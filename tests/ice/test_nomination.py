"""ICE nomination and path bookkeeping on crafted captures: libwebrtc's NOMINATION attribute and
renomination, USE-CANDIDATE in a retransmission, a private XOR-MAPPED-ADDRESS behind an outer NAT, a
Binding response stamped at time 0 (issue 21). Values are read back with tshark where it decodes them."""

from __future__ import annotations

import itertools

import pandas as pd

from analyzer import analyze
from tests.capture.writers import pcap_bytes
from tests.conftest import tshark_fields
from tests.ice.test_scenarios import A, B, check

_tid = itertools.count(0x9100)


def test_binding_response_at_time_0_is_a_time(tmp_path):
    """Issue 21: a success stamped 1970-01-01T00:00:00 connects the session at that time."""
    req, resp = check(A, B, "bb", "aa", nominate=True)
    p = tmp_path / "t0.pcap"
    p.write_bytes(pcap_bytes([(0, req), (0, resp)]))
    assert tshark_fields(p, ["frame.number", "frame.time_epoch"]) == [["1", "0.000000000"], ["2", "0.000000000"]]
    a = analyze(p)
    (s,) = a.sessions.itertuples()
    assert (s.state, s.connected_frame) == ("connected", 2)
    assert s.connected_ts == pd.Timestamp(0, tz="UTC")
    assert a.pairs.first_success_ts.iloc[0] == pd.Timestamp(0, tz="UTC")
    a.timeline()
