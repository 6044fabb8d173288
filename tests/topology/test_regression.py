"""The regression guard over every shared capture and every shipped scenario (tests/topology/regress.py):
no finding without frames, and calls, findings and stream counts as approved in expected_results.json.
A deliberate change of verdict: `python -m tests.topology.regress --update`, then read the diff."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SHARED
from tests.topology import regress

JOBS = regress.jobs()
IDS = [j.key for j in JOBS]


@pytest.mark.parametrize("job", JOBS, ids=IDS)
def test_every_finding_cites_frames(job):
    r = regress.result(job)
    assert "error" not in r, r.get("error")
    empty = [f["code"] for f in r["findings"] if not f["frames"]]
    assert not empty, f"{job.key}: findings without frames: {empty}"


@pytest.mark.parametrize("job", JOBS, ids=IDS)
def test_results_match_the_approved_file(job):
    expected = regress.load()
    assert job.key in expected, f"{job.key} missing: python -m tests.topology.regress --update"
    assert regress.result(job) == expected[job.key], (
        f"{job.key}: verdict changed; if intended, python -m tests.topology.regress --update and review the diff"
    )


def test_no_stale_entries():
    keys = {j.key for j in JOBS}
    stale = [k for k in regress.load() if k not in keys and (SHARED.is_dir() or not k.startswith("public/"))]
    assert not stale, f"entries for captures that no longer exist: {stale}"


def test_the_file_is_json_with_one_finding_per_line():
    text = regress.EXPECTED.read_text()
    data = json.loads(text)
    assert regress.dumps(data) == text  # the writer's layout: an --update of unchanged results is no diff
    lines = text.splitlines()
    findings = sum(len(v.get("findings", [])) for v in data.values())
    assert sum(1 for ln in lines if ln.strip().startswith('{"call"') and '"code"' in ln) == findings
    assert list(data) == sorted(data)
