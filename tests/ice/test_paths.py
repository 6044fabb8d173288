"""Media paths are counted per capture point: two points that see the same 5-tuple are two views of
the same packets, not twice the packets."""

from __future__ import annotations

import shutil
from pathlib import Path

from analyzer import analyze

CLIENT_A = Path(__file__).resolve().parents[2] / "captures/external-via-relay/client-a.pcap"


def test_same_five_tuple_at_two_points_is_not_added_up(tmp_path):
    twin = tmp_path / "same-point-again.pcap"
    shutil.copyfile(CLIENT_A, twin)
    one = analyze(CLIENT_A)
    two = analyze([CLIENT_A, twin])
    alone = one.pairs.set_index("pair").media_packets
    assert alone.max() == 260  # the two pairs that carried the call's media, as in the capture alone
    together = two.pairs.set_index("pair").media_packets
    assert together.to_dict() == alone.to_dict()  # once added up across files: 520
    per_file = {}
    for p in two.paths.paths():
        per_file[p.file] = per_file.get(p.file, 0) + p.packets
    assert per_file == {0: 260, 1: 260}


def test_relayed_inner_flow_is_one_row_per_capture_point(tmp_path):
    relay = CLIENT_A.with_name("relay.pcap")
    twin = tmp_path / "relay-again.pcap"
    shutil.copyfile(relay, twin)
    one = analyze(relay).flows
    two = analyze([relay, twin]).flows
    inner1 = one[one.relayed.astype(bool)]
    inner2 = two[two.relayed.astype(bool)]
    assert len(inner1) == 1 and inner1.iloc[0].packets == 260
    assert sorted(inner2.file) == [0, 1] and set(inner2.packets) == {260}  # once one row of 520
