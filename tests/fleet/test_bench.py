"""The fleet benchmark's captures: distinct by content (no copy folded into another), analysed alike."""

from __future__ import annotations

from analyzer import analyze
from analyzer.fleet import find_captures, plan_units
from analyzer.fleet.bench import make_fleet
from analyzer.report.export import records
from tests.conftest import CAPTURES


def test_bench_fleet_copies_are_distinct_and_analyse_as_their_source(tmp_path):
    src = CAPTURES / "relay-hairpin" / "client-a.pcap"
    made = make_fleet(tmp_path, 3, [src])
    units = plan_units(find_captures([tmp_path]))
    assert len(units) == 3 and not any(u.also for u in units)
    assert made[2].read_bytes()[12:16] == b"\x02\0\0\0" and made[2].read_bytes()[16:] == src.read_bytes()[16:]
    a, b = analyze(src), analyze(made[2])
    for table in ("calls", "pairs", "streams", "flows"):
        assert records(getattr(a, table)) == records(getattr(b, table))
