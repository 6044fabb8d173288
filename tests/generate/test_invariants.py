"""The committed real-call captures show what their scenario says (tests/generate/invariants.py), read by an
independent packet classifier, and their truth.json is complete."""

from __future__ import annotations

import tomllib

import pytest

from tests.conftest import CAPTURES
from tests.generate.invariants import SPEC, problems
from tests.generate.views import truths

TRUTHS = truths(CAPTURES)
TOPOLOGIES = {
    "intranet-direct",
    "external-via-relay",
    "external-direct",
    "vpn-internal-via-relay",
    "vpn-internal-direct",
    "vpn-external-direct",
    "pstn-trunk",
    "group-call",
    "undetermined",
}
FINDINGS = {
    "media-over-vpn",
    "relay-hairpin",
    "direct-path-blocked",
    "tcp-fallback",
    "relay-unreachable",
    "ice-failed",
    "dtls-failed",
    "one-way-media",
    "media-not-on-nominated-pair",
    "non-cloud-relay",
    "unsupported-middlebox",
}
CANDIDATE_KEYS = {"type", "host", "port", "transport"}


def test_every_scenario_is_committed():
    assert set(TRUTHS) == set(SPEC)


@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_captures_show_the_scenario(name):
    assert problems(CAPTURES / name, TRUTHS[name]) == []


@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_truth_is_complete(name):
    t = TRUTHS[name]
    assert t["scenario"] == name
    assert t["topology"] in TOPOLOGIES
    assert set(t["findings"]) <= FINDINGS
    profile = tomllib.loads((CAPTURES / name / t["profile"]).read_text())
    assert profile["customer"]["networks"] and profile["cloud"]["relays"]
    assert set(t["capture_points"]) == set(SPEC[name])
    for key, p in t["peers"].items():
        assert p["ufrag"] and p["remote_ufrag"], key
        for c in p["local_candidates"] + p["remote_candidates"]:
            assert set(c) >= CANDIDATE_KEYS, (key, c)
        if p["ice_state"] == "completed":
            assert set(p["selected"]["local"]) >= CANDIDATE_KEYS and set(p["selected"]["remote"]) >= CANDIDATE_KEYS
            assert p["frames_received"] >= 50, (key, p["frames_received"])
        else:
            assert p["selected"] is None
    # every session's two ends are both recorded
    ufrags = {p["ufrag"]: p["remote_ufrag"] for p in t["peers"].values()}
    assert all(ufrags.get(r) == u for u, r in ufrags.items())
    for h in t["hosts"].values():
        assert h["address"] and h["zone"] in ("customer", "internet", "cloud") and h["role"]
