"""The benchmark's capture is a coherent call, and the benchmark prints the figures it promises."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from analyzer import analyze
from analyzer.bench import main, write_capture


@pytest.fixture(scope="module")
def small_bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.pcap"
    return path, write_capture(str(path), 20_000)


def test_bench_capture_is_one_answered_check_stream(small_bench):
    path, info = small_bench
    a = analyze(path)
    assert a.captures[0].packets == info["packets"] == 20_000
    stun = a.stun
    assert len(stun) == info["stun"]
    requests = stun[stun.cls == "request"]
    assert set(requests.src) == {"10.1.0.5"} and set(requests.dst) == {"52.113.4.9"}
    assert requests.transaction_id.is_unique  # each check its own transaction
    tx = a.transactions
    assert len(tx) == len(requests) and set(tx.state) == {"answered"}
    assert list(a.sessions.controlling) == ["abcd"] and list(a.sessions.state) == ["connected"]
    assert sorted(a.streams.ssrc) == [0x11111111, 0x22222222, 0x33333333, 0x44444444]
    # checks straight to a cloud relay candidate, answered: nothing to report (once: non-cloud-relay on 10.x)
    assert list(a.calls.topology) == ["undetermined"] and a.findings.empty


def test_bench_prints_figures(tmp_path, capsys):
    assert main(["capture", "--packets", "5000", "--no-tshark", "--out", str(tmp_path / "b.pcap")]) == 0
    out = capsys.readouterr().out
    assert "5,000 packets" in out
    for name in ("callflow summary", "callflow analyze"):
        row = next(line for line in out.splitlines() if line.startswith(name) and "CPU per" not in line)
        wall, cpu, rss = (float(x.replace(",", "")) for x in row.split()[2:5])
        assert 0 < wall < 60 and 0 < cpu < 60 and 20 < rss < 2000
    assert "floor: starting Python and importing numpy and pandas takes" in out


def test_bench_summary_json_counts(small_bench):
    path, info = small_bench
    out = subprocess.run([sys.executable, "-m", "analyzer.cli", "summary", "--json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    assert doc["packets"] == 20_000
    assert doc["messages"]["STUN Binding request"] + doc["messages"]["STUN Binding success"] == info["stun"]
