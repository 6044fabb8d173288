"""`callflow annotate`: where the copies go, one-line errors with status 2; the filter in every report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.annotate import output_paths, stem
from tests.annotate import tshark as T
from tests.conftest import CAPTURES

HAIRPIN = sorted((CAPTURES / "relay-hairpin").glob("*.pcap"))
NET = str(CAPTURES / "relay-hairpin" / "network.toml")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True)


def test_several_captures_into_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "annotated"
    r = run("annotate", *map(str, HAIRPIN), "--network", NET, "-o", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["client-a.annotated.pcapng", "nat-outside.annotated.pcapng", "relay.annotated.pcapng"]
    assert f"wrote {out / 'client-a.annotated.pcapng'}: 284 packets, 9 comments" in r.stdout
    assert 9 in T.comments(out / "client-a.annotated.pcapng")


def test_one_capture_to_a_file_and_patterns() -> None:
    assert output_paths(["a/x.pcap"], "y.pcapng") == ["y.pcapng"]
    assert output_paths(["a/x.pcap.gz", "b/z.pcapng"], "out/{stem}-{index}.pcapng") == [
        "out/x-0.pcapng",
        "out/z-1.pcapng",
    ]
    assert output_paths(["a/x.pcap", "b/z.pcap"], "dir") == ["dir/x.annotated.pcapng", "dir/z.annotated.pcapng"]
    assert stem("call.PCAP.gz") == "call"
    with pytest.raises(ValueError, match="same file"):
        output_paths(["a/x.pcap", "b/x.pcap"], "dir")


def test_errors_are_one_line_and_status_2(tmp_path: Path) -> None:
    src = tmp_path / "c.pcap"
    src.write_bytes(HAIRPIN[0].read_bytes())
    r = run("annotate", str(src), "-o", str(src), "--no-progress")
    assert r.returncode == 2 and r.stderr.strip().endswith("is the input capture itself")
    assert src.read_bytes() == HAIRPIN[0].read_bytes()
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    r = run("annotate", str(junk), "-o", str(tmp_path / "o.pcapng"), "--no-progress")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not a pcap" in r.stderr
    r = run("annotate", str(HAIRPIN[0]), "-o", str(tmp_path / "no" / "such" / "dir" / "x.pcapng"), "--no-progress")
    assert r.returncode == 0  # the folders are made
    r = run("annotate", str(HAIRPIN[0]), "-o", "/proc/version/x.pcapng", "--no-progress")
    assert r.returncode == 2 and r.stderr.startswith("callflow: error:")


def test_the_filter_in_console_json_and_html(tmp_path: Path) -> None:
    js, html = tmp_path / "a.json", tmp_path / "a.html"
    r = run("analyze", *map(str, HAIRPIN), "--network", NET, "--json", str(js), "--html", str(html), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "wireshark: frame.number in {9, 10}" in r.stdout
    rows = json.loads(js.read_text())["tables"]["findings"]
    assert [(x["code"], x["display_filter"], x["frames_file"]) for x in rows] == [
        ("relay-hairpin", "frame.number in {9, 10}", 0)
    ]
    assert '<b>Wireshark filter:</b> <code class="filter">frame.number in {9, 10}</code>' in html.read_text()
    assert T.selected(HAIRPIN[0], "frame.number in {9, 10}") == [9, 10]
