"""The eight topologies on the committed second address plan (captures/plans/office: other private and
public prefixes, the customer firewall NATs and terminates the VPN on one address), at the client's
capture and at the customer NAT's outside, with and without the profile; the same on the shipped plan
(captures/<scenario>, the points it has). A plan drawn per run: tests/generate/test_plans_regenerate.py."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CAPTURES
from tests.topology.plans import client_point, expected, verdict

EIGHT = (
    "intranet-direct",
    "external-via-relay",
    "external-direct",
    "vpn-internal-via-relay",
    "vpn-internal-direct",
    "vpn-external-direct",
    "pstn-trunk",
    "group-call",
)
FOLDERS = sorted(p.parent for p in (CAPTURES / "plans").glob("*/*/truth.json"))
SHIPPED = [CAPTURES / s for s in EIGHT if (CAPTURES / s / "truth.json").exists()]
CASES = [
    (f, pt, prof)
    for f in FOLDERS + SHIPPED
    for pt in (client_point(f), "nat-outside.pcap")
    if (f / pt).exists()
    for prof in (True, False)
]


def test_the_office_plan_has_the_eight_topologies_with_egress_equal_to_concentrator():
    office = [json.loads((f / "truth.json").read_text()) for f in FOLDERS if f.parent.name == "office"]
    assert sorted(t["topology"] for t in office) == sorted(
        [
            "intranet-direct",
            "external-via-relay",
            "external-direct",
            "vpn-internal-via-relay",
            "vpn-internal-direct",
            "vpn-external-direct",
            "pstn-trunk",
            "group-call",
        ]
    )
    assert all(t["plan"]["egress"] == t["plan"]["concentrator"] for t in office)


@pytest.mark.parametrize(
    "folder,point,profile",
    CASES,
    ids=[f"{f.parent.name}-{f.name}-{pt}-{'profile' if prof else 'none'}" for f, pt, prof in CASES],
)
def test_verdict_on_another_plan(folder, point, profile):
    assert verdict(folder, point, profile) == expected(folder, point, profile)
