"""The generated scenarios (captures/<scenario>/, real aiortc calls in network namespaces): topology and
findings equal truth.json, for all capture points together and for each point alone. A point that
cannot see what decides the verdict is listed below with what it sees instead, and why."""

from __future__ import annotations

import json

import pytest

from analyzer import analyze
from tests.conftest import CAPTURES

SCENARIOS = sorted(p.parent for p in CAPTURES.glob("*/truth.json")
                   if "topology" in json.loads(p.read_text()))

# (scenario, capture point) -> (topology or None for no call, findings, why this point differs from the truth)
BLIND = {
    ("external-via-relay", "relay.pcap"): (
        "external-via-relay", [], "the relay never sees the direct checks that failed"),
    ("vpn-internal-via-relay", "relay.pcap"): (
        "vpn-internal-via-relay", [], "the relay never sees the direct checks that failed"),
    ("ice-failed", "client-x.pcap"): (
        "external-via-relay", ["ice-failed"], "A's unanswered allocations are on A's side"),
    ("media-over-vpn-external", "client-v.pcap"): (
        None, ["vpn-call-like-traffic"], "only the tunnel is visible: its rate has a call's shape, no call is seen"),
    ("media-over-vpn-internal", "client-v.pcap"): (
        None, ["vpn-call-like-traffic"], "only the tunnel is visible: its rate has a call's shape, no call is seen"),
    ("relay-hairpin", "client-a.pcap"): (
        "undetermined", [], "B is seen only as a relay address: where B sits is not visible from A"),
}


def _verdict(paths, folder, truth):
    a = analyze(paths, network=folder / truth["profile"])
    return sorted(set(a.calls.topology)), sorted(set(a.findings.code))


@pytest.mark.skipif(not SCENARIOS, reason="no generated scenarios under captures/")
@pytest.mark.parametrize("folder", SCENARIOS, ids=lambda p: p.name)
def test_all_capture_points_together(folder):
    truth = json.loads((folder / "truth.json").read_text())
    topologies, findings = _verdict(sorted(folder.glob("*.pcap")), folder, truth)
    assert topologies == [truth["topology"]]
    assert findings == sorted(truth["findings"])


POINTS = [(f, p.name) for f in SCENARIOS for p in sorted(f.glob("*.pcap"))]


@pytest.mark.skipif(not POINTS, reason="no generated scenarios under captures/")
@pytest.mark.parametrize("folder,point", POINTS, ids=lambda x: x if isinstance(x, str) else x.name)
def test_each_capture_point_alone(folder, point):
    truth = json.loads((folder / "truth.json").read_text())
    topology, findings, _why = BLIND.get((folder.name, point), (truth["topology"], truth["findings"], ""))
    got_topologies, got_findings = _verdict(folder / point, folder, truth)
    assert got_topologies == ([topology] if topology else [])
    assert got_findings == sorted(findings)
