"""The analyzer's ICE candidates and selected pair on the committed real-call captures equal what the
aiortc stacks reported (truth.json 'peers'), wherever the capture point makes it knowable."""

from __future__ import annotations

import pytest

from analyzer import analyze
from tests.conftest import CAPTURES
from tests.generate.views import (
    allocation_problems,
    candidate_problems,
    controlling,
    pair_problems,
    selected_problems,
    session_of,
    truths,
    views,
)

TRUTHS = truths(CAPTURES)

# (scenario, peer, capture file) -> exact discrepancy of the analyzer, for the lead to fix
KNOWN: dict[tuple[str, str, str], str] = {}


def _cases():
    for name, t in TRUTHS.items():
        for key in t["peers"]:
            for f, view in views(t, key).items():
                known = KNOWN.get((name, key, f))
                marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
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


@pytest.mark.parametrize(
    "name,key,f,view",
    [c for c in _cases() if c.values[3] == "own" and TRUTHS[c.values[0]]["peers"][c.values[1]]["turn"]],
)
def test_allocations_are_the_stacks_relay_candidates(name, key, f, view):
    problems = allocation_problems(analysis(name, f), TRUTHS[name]["peers"][key])
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("name,key,f,view", [c for c in _cases() if c.values[3] == "own"])
def test_pairs_that_succeeded_for_the_stack_succeeded_for_the_analyzer(name, key, f, view):
    problems = pair_problems(analysis(name, f), TRUTHS[name]["peers"][key])
    assert problems == [], "\n".join(problems)


def _two_ends():
    """(scenario, (file, file), agent key): both ends of a session captured at their own interfaces."""
    for name, t in TRUTHS.items():
        own = {k: f for k in t["peers"] for f, v in views(t, k).items() if v == "own"}
        for key, p in t["peers"].items():
            other = next(k for k, q in t["peers"].items() if q["ufrag"] == p["remote_ufrag"])
            if p["selected"] and key in own and other in own and own[key] != own[other]:
                files = tuple(f for f in t["capture_points"] if f in (own[key], own[other]))
                yield name, files, key


# Merging two ends across a NAT: each file's view of the path it used is marked selected, so each end's agent
# finds its own nominated pair selected (the session's selected_pair is the client-side view).
MERGE_KNOWN: set[tuple[str, str]] = set()  # each capture point's own selected view is marked selected too


def _merge_param(name, files, key):
    t = TRUTHS[name]
    sel = t["peers"][key]["selected"]
    marks = []
    if (name, key) in MERGE_KNOWN:
        reason = (
            f"merged {' + '.join(files)}: {key}'s nominated pair {sel['local']['host']}:{sel['local']['port']} -> "
            f"{sel['remote']['host']}:{sel['remote']['port']}, as its own capture shows it, is not selected; only "
            "the other file's view of the session (NAT-translated addresses) is marked selected"
        )
        marks = [pytest.mark.xfail(strict=True, reason=reason)]
    return pytest.param(name, files, key, id=f"{name}:{key}@{'+'.join(files)}", marks=marks)


def test_two_ends_of_one_call_merge_into_one_session():
    """external-direct is captured at both clients: one ICE session, fed by both files."""
    a = analysis("external-direct", "client-a.pcap", "client-x.pcap")
    assert len(a.sessions) == 1
    assert a.sessions.files.iloc[0] == [0, 1]


@pytest.mark.parametrize("name,files,key", [_merge_param(*c) for c in _two_ends()])
def test_two_ends_select_each_agents_own_view(name, files, key):
    """Merged with the other end's capture, each agent's selected pair is still the one its stack nominated,
    as its own capture shows it."""
    peer = TRUTHS[name]["peers"][key]
    a = analysis(name, *files)
    sel = peer["selected"]
    want = (sel["local"]["host"], sel["local"]["port"], sel["remote"]["host"], sel["remote"]["port"])
    p = a.pairs
    mine = p[(p.agent == peer["ufrag"]) & p.selected.astype(bool)]
    got = {(r.local_address, int(r.local_port), r.remote_address, int(r.remote_port)) for r in mine.itertuples()}
    assert want in got, f"{key}: stack {want}, analyzer's selected pairs for {peer['ufrag']}: {got}"


def _merged_sessions():
    seen = set()
    for name, files, key in _two_ends():
        if (name, files) not in seen:
            seen.add((name, files))
            yield pytest.param(name, files, key, id=f"{name}@{'+'.join(files)}")


@pytest.mark.parametrize("name,files,key", list(_merged_sessions()))
def test_two_ends_report_no_switch(name, files, key):
    """The stacks never switched pairs: merging two views of the session must not invent a switch."""
    (switches,) = session_of(analysis(name, *files), TRUTHS[name]["peers"][key]).switches
    assert not switches, switches
