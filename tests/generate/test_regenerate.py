"""Regenerate a few scenarios from scratch (network namespaces, coturn, wireguard-go, aiortc, tcpdump) into a
temporary folder and check what must hold whatever the run, so the generator cannot rot.

Needs root and the tools .ci/run installs; skipped with the reason otherwise."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from analyzer import analyze
from captures.generate.netns import missing_tools
from tests.conftest import REPO
from tests.generate.invariants import problems
from tests.generate.views import (
    allocation_problems,
    candidate_problems,
    controlling,
    pair_problems,
    selected_problems,
    truths,
    views,
)

# NAT, firewall, coturn and TURN (external-via-relay); wireguard-go full tunnel (media-over-vpn-internal)
SCENARIOS = ("external-via-relay", "media-over-vpn-internal")
BUDGET_S = 60


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    missing = missing_tools()
    if missing:
        pytest.skip("cannot run the capture generator here: missing " + ", ".join(missing))
    out = tmp_path_factory.mktemp("captures")
    cmd = [sys.executable, "-m", "captures.generate", "--out", str(out)]
    for s in SCENARIOS:
        cmd += ["--only", s]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3 * BUDGET_S)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    return out, truths(out), took


def test_generator_runs_within_budget(regenerated):
    _out, found, took = regenerated
    assert set(found) == set(SCENARIOS)
    assert took < BUDGET_S, f"{took:.0f} s"


@pytest.mark.parametrize("name", SCENARIOS)
def test_regenerated_captures_show_the_scenario(regenerated, name):
    out, found, _ = regenerated
    assert problems(out / name, found[name]) == []


@pytest.mark.parametrize("name", SCENARIOS)
def test_analyzer_agrees_with_the_stacks_on_regenerated_captures(regenerated, name):
    out, found, _ = regenerated
    t = found[name]
    issues = []
    for key, peer in t["peers"].items():
        for f, view in views(t, key).items():
            a = analyze([out / name / f], network=str(out / name / t["profile"]))
            got = selected_problems(a, peer, view, controlling(t, peer))
            if view == "own":
                got += candidate_problems(a, peer)
                got += allocation_problems(a, peer) if peer["turn"] else []
                got += pair_problems(a, peer)
            issues += [f"{key}@{f}: {m}" for m in got]
    assert issues == []
