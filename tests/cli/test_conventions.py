"""The command line's conventions: bad profiles and output paths are one-line errors with exit 2 before
any analysis; `--json` prints, `--json FILE` writes; every written file is named on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "captures" / "external-via-relay"
CAPTURE = str(SCENARIO / "client-a.pcap")
NETWORK = str(SCENARIO / "network.toml")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, cwd=cwd)


def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("callflow: error: "), r.stderr
    for w in words:
        assert w in lines[0]
    assert r.stdout == ""  # no verdict printed before the error


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[customer\n", ["not valid TOML"]),
        ('[customer]\nnetworks = ["10.1.0.0/33"]\n', ["10.1.0.0/33", "not an IP address or network"]),
        ('[custmer]\nnetworks = ["10.1.0.0/16"]\n', ["unknown section [custmer]"]),
        ('[customer]\nnetwork = ["10.1.0.0/16"]\n', ["unknown key 'network' in [customer]"]),
        ('[capture]\npoint = "host-a"\n', ["'host-a' is not an IP address"]),
    ],
)
@pytest.mark.parametrize("command", ["analyze", "ice", "timeline", "profile"])
def test_bad_profile_is_one_line_error(tmp_path, body, words, command):
    bad = tmp_path / "net.toml"
    bad.write_text(body)
    if command == "profile":
        r = run("profile", str(bad))
    elif command == "timeline":
        r = run("timeline", CAPTURE, "--network", str(bad), "-o", str(tmp_path / "t.html"))
    else:
        r = run(command, CAPTURE, "--network", str(bad))
    one_line_error(r, str(bad), *words)


def test_missing_profile_is_one_line_error(tmp_path):
    one_line_error(run("analyze", CAPTURE, "--network", str(tmp_path / "none.toml")), "cannot read the profile")


def test_output_folder_checked_before_the_analysis(tmp_path):
    for opt in ("--html", "--json"):
        one_line_error(run("analyze", CAPTURE, opt, str(tmp_path / "no" / "x.out")), "does not exist")
    one_line_error(run("timeline", CAPTURE, "-o", str(tmp_path / "no" / "t.html")), "does not exist")


def test_profile_init_refuses_an_existing_file(tmp_path):
    target = tmp_path / "net.toml"
    r = run("profile", "--init", str(target))
    assert r.returncode == 0 and r.stderr.strip() == f"wrote {target}"
    target.write_text("# mine\n")
    one_line_error(run("profile", "--init", str(target)), "exists", "--force")
    assert target.read_text() == "# mine\n"
    r = run("profile", "--init", str(target), "--force")
    assert r.returncode == 0 and "[customer]" in target.read_text()
    r = run("profile", "--init", "-")
    assert r.returncode == 0 and r.stdout.startswith("# callflow network profile")


@pytest.mark.parametrize("command", ["summary", "ice", "analyze"])
def test_json_prints_or_writes(tmp_path, command):
    printed = run(command, CAPTURE, "--json")
    assert printed.returncode == 0, printed.stderr
    doc = json.loads(printed.stdout)  # standard output is JSON alone, no verdict text around it
    # the optional value must not swallow the capture: `--json CAPTURE` prints too
    swallowed = run(command, "--json", CAPTURE)
    assert swallowed.returncode == 0 and json.loads(swallowed.stdout) == doc
    target = tmp_path / "out.json"
    written = run(command, CAPTURE, "--json", str(target))
    assert written.returncode == 0
    assert json.loads(target.read_text()) == doc
    assert f"wrote {target}" in written.stderr.splitlines()


def test_every_written_file_is_named(tmp_path):
    html, pq = tmp_path / "r.html", tmp_path / "pq"
    r = run("analyze", CAPTURE, "--network", NETWORK, "--html", str(html), "--parquet", str(pq))
    assert r.returncode == 0, r.stderr
    wrote = [line.removeprefix("wrote ") for line in r.stderr.splitlines() if line.startswith("wrote ")]
    assert str(html) in wrote
    assert sorted(p for p in wrote if p.endswith(".parquet")) == sorted(str(p) for p in pq.glob("*.parquet"))
    assert "external-via-relay" in r.stdout  # the verdict still goes to standard output
    t = run("timeline", CAPTURE, "--html", "-")
    assert t.returncode == 0 and t.stdout.lstrip().lower().startswith("<!doctype html")


def test_python_m_analyzer_runs_the_command():
    r = run("--help")
    assert r.returncode == 0 and "analyze" in r.stdout
