"""The mutation fuzzer (analyzer/fuzz): a small deterministic budget over the shipped and shared
captures lets no exception escape analyze, any table, the figures, JSON, HTML or the console."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from analyzer.fuzz import fuzz, sources
from analyzer.fuzz.containers import dump, load
from analyzer.fuzz.mutate import Layers, lying_payload
from analyzer.fuzz.run import make_run
from tests.conftest import CAPTURES, public_captures


@pytest.fixture(scope="module")
def pool():
    return sources()


def test_containers_round_trip_every_capture():
    paths = sorted(CAPTURES.glob("*/*.pcap")) + [p for p in public_captures() if p.suffix != ".gz"]
    for p in paths:
        raw = p.read_bytes()
        assert dump(load(raw)) == raw, p


def test_stun_length_lies_land_in_the_stun_header():
    from tests.dissect import stunbuild as sb
    from tests.robust.crafted import udp

    frame = udp("10.0.0.1", 1, "10.0.0.2", 3478, sb.message("Binding", "request", [sb.attr(0x0006, b"a:b")]))
    lay = Layers(frame, 1)
    assert (lay.ip, lay.l4, lay.payload, lay.proto) == (14, 34, 42, 17)
    changed = {lying_payload(random.Random(s), frame, lay) for s in range(40)}
    # every mutant differs from the frame only inside the STUN message
    assert all(m[:42] == frame[:42] and m != frame for m in changed)


def test_runs_are_reproducible(pool, tmp_path):
    a = make_run(random.Random("5/3"), pool, str(tmp_path))
    first = [Path(p).read_bytes() for p in a[0]]
    b = make_run(random.Random("5/3"), pool, str(tmp_path))
    assert a[1:] == b[1:] and first == [Path(p).read_bytes() for p in b[0]]


def test_small_budget_no_exception_escapes(pool):
    rep = fuzz(2026, runs=4, seconds=60, pool=pool)
    assert rep.runs >= 1 and rep.mutated_packets > 0
    assert rep.crashes == {}, "\n".join(rep.lines())


def test_an_escaping_exception_is_reported_with_its_seed(pool, monkeypatch):
    from analyzer.ice import allocations

    def broken(stun, traffic):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(allocations, "build_allocations", broken)
    rep = fuzz(11, runs=1, pool=pool)
    (crash,) = rep.crashes.values()
    assert crash.signature.startswith("ZeroDivisionError at ")
    assert (crash.seed, crash.run, crash.message) == (11, 0, "planted")
    assert "python -m analyzer.fuzz --seed 11 --run 0" in "\n".join(rep.lines())
