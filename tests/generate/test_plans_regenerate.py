"""Two scenarios regenerated on an address plan drawn for this run (other private and public prefixes, the
customer firewall NATs and terminates the VPN on one address): the verdicts at the client and at the
customer NAT's outside, with and without the profile, are the ones the scenario was generated for. A rule
that passes on the shipped plan only is tuned, not right; the seed is in the failure message.

Needs root and the tools .ci/run installs; skipped with the reason otherwise."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from captures.generate.netns import missing_tools
from captures.generate.world import draw
from tests.conftest import REPO
from tests.generate.views import truths
from tests.topology.plans import client_point, expected, verdict

SCENARIOS = ("vpn-internal-direct", "external-via-relay")
BUDGET_S = 60


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    missing = missing_tools()
    if missing:
        pytest.skip("cannot run the capture generator here: missing " + ", ".join(missing))
    seed = random.randrange(1 << 30)
    out = tmp_path_factory.mktemp("plan")
    cmd = [
        sys.executable,
        "-m",
        "captures.generate",
        "--plan",
        "draw",
        "--seed",
        str(seed),
        "--out",
        str(out),
        "--also",
        "nat-outside.pcap",
    ]
    for s in SCENARIOS:
        cmd += ["--only", s]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3 * BUDGET_S)
    took = time.monotonic() - t0
    assert r.returncode == 0, f"seed {seed}: " + r.stdout + r.stderr
    return out, seed, took


def test_drawn_plan_generates_within_budget(drawn):
    out, seed, took = drawn
    found = truths(out)
    assert set(found) == set(SCENARIOS)
    plan = draw(seed)
    assert all(t["plan"]["egress"] == t["plan"]["concentrator"] == plan.egress for t in found.values())
    assert took < BUDGET_S, f"{took:.0f} s"


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("point", ["client", "nat-outside.pcap"])
@pytest.mark.parametrize("profile", [True, False], ids=["profile", "none"])
def test_verdict_on_a_drawn_plan(drawn, name, point, profile):
    out, seed, _ = drawn
    folder = out / name
    pt = client_point(folder) if point == "client" else point
    assert verdict(folder, pt, profile) == expected(folder, pt, profile), f"plan drawn from seed {seed}"
