"""The analyzer's ICE candidates and selected pair on the committed real-call captures equal what the
aiortc stacks reported (truth.json 'peers'), wherever the capture point makes it knowable."""

from __future__ import annotations

import pytest

from analyzer import analyze
from tests.conftest import CAPTURES
from tests.generate.views import candidate_problems, controlling, selected_problems, truths, views

TRUTHS = truths(CAPTURES)

# (scenario, peer, capture file) -> exact discrepancy of the analyzer, for the lead to fix
KNOWN: dict[tuple[str, str, str], str] = {}


def _cases():
    for name, t in TRUTHS.items():
        for key in t["peers"]:
            for f, view in views(t, key).items():
                marks = [pytest.mark.xfail(strict=True, reason=KNOWN[(name, key, f)])] if (name, key, f) in KNOWN else []
                yield pytest.param(name, key, f, view, id=f"{name}:{key}@{f}", marks=marks)


_analyses: dict[tuple[str, ...], object] = {}


def analysis(name: str, *files: str):
    k = (name, *files)
    if k not in _analyses:
        folder = CAPTURES / name
        _analyses[k] = analyze([folder / f for f in files], network=str(folder / TRUTHS[name]["profile"]))
    return _analyses[k]


def test_generated_scenarios_are_committed():
    assert len(TRUTHS) >= 15, sorted(TRUTHS)
    for name, t in TRUTHS.items():
        for f in t["capture_points"]:
            assert (CAPTURES / name / f).is_file(), f"{name}/{f}"
        assert (CAPTURES / name / t["profile"]).is_file()


@pytest.mark.parametrize("name,key,f,view", list(_cases()))
def test_selected_pair_is_the_stacks(name, key, f, view):
    t = TRUTHS[name]
    peer = t["peers"][key]
    problems = selected_problems(analysis(name, f), peer, view, controlling(t, peer))
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name,key,f,view", [c for c in _cases() if c.values[3] == "own"])
def test_candidates_are_the_stacks(name, key, f, view):
    """At the peer's own interface every candidate the analyzer names for it or its remote agent is one the
    stack had, with the stack's type where the packets can tell (see views.type_problem)."""
    problems = candidate_problems(analysis(name, f), TRUTHS[name]["peers"][key])
    assert problems == [], "\n".join(problems)


def test_two_ends_of_one_call_merge_into_one_session():
    """external-direct is captured at both clients: one ICE session, each agent's own view selected."""
    t = TRUTHS["external-direct"]
    a = analysis("external-direct", "client-a.pcap", "client-x.pcap")
    assert len(a.sessions) == 1
    assert set(str(a.sessions.files.iloc[0]).split(",")) == {"0", "1"}
    p = a.pairs
    for key in ("a", "x"):
        peer = t["peers"][key]
        sel = peer["selected"]
        want = (sel["local"]["host"], sel["local"]["port"], sel["remote"]["host"], sel["remote"]["port"])
        mine = p[(p.agent == peer["ufrag"]) & p.selected.astype(bool)]
        got = {(r.local_address, int(r.local_port), r.remote_address, int(r.remote_port)) for r in mine.itertuples()}
        assert want in got, f"{key}: stack {want}, analyzer's selected pairs for {peer['ufrag']}: {got}"
