"""The `callflow` command: exit codes, one-line errors, JSON shape."""

from __future__ import annotations

import json
import subprocess
import sys

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from analyzer import __version__, analyze
from tests.capture.writers import pcap_bytes


def run(*args):
    return subprocess.run([sys.executable, "-m", "analyzer.cli", *args], capture_output=True, text=True)


def sample(tmp_path):
    pkts = [
        (
            1_700_000_000_000_000_000 + i * 20_000_000,
            bytes(
                Ether()
                / IP(src="10.0.0.1", dst="10.0.0.2")
                / UDP(sport=5000, dport=6000)
                / Raw(b"\x80\x00" + b"a" * 20)
            ),
        )
        for i in range(10)
    ]
    p = tmp_path / "s.pcap"
    p.write_bytes(pcap_bytes(pkts))
    return p


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"callflow, version {__version__}"
    r = run("--help")
    assert r.returncode == 0 and "summary" in r.stdout


def test_summary_json(tmp_path):
    r = run("summary", "--json", str(sample(tmp_path)))
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["packets"] == 10
    assert d["classes"]["rtp"] == 10 and d["classes"]["stun"] == 0
    assert d["duration_s"] == 0.18
    assert d["udp_flows"] == 1
    assert r.stderr == ""  # no progress bar when stderr is not a terminal


def test_summary_table(tmp_path):
    r = run("summary", str(sample(tmp_path)))
    assert r.returncode == 0
    assert "packets" in r.stdout and "10" in r.stdout and "rtp 10" in r.stdout


def test_unreadable_files_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a capture\n")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    for path, needle in (
        (bad, "not a pcap or pcapng capture"),
        (empty, "empty file"),
        (tmp_path / "missing.pcap", "no such file"),
        (tmp_path, "is a directory"),
    ):
        r = run("summary", str(path))
        assert r.returncode == 2, (path, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("callflow: error: ") and needle in lines[0]
        assert "Traceback" not in r.stderr


def test_analyze_several_files(tmp_path):
    p = sample(tmp_path)
    a = analyze([p, p])
    assert list(a.summary["packets"]) == [10, 10]
    assert list(a.summary["file"]) == [0, 1]
