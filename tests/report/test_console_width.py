"""At 80 columns (COLUMNS, piped) no table loses a column and no address:port is broken (issue 17)."""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

import pytest

from analyzer import analyze
from tests.conftest import CAPTURES, REPO

EVR = sorted(glob.glob(str(CAPTURES / "external-via-relay" / "*.pcap")))
CASES = [
    EVR,
    [str(CAPTURES / "intranet-direct" / "client-a.pcap")],
    sorted(glob.glob(str(CAPTURES / "tcp-fallback" / "*.pcap"))),
]


def _run(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *args], capture_output=True, text=True, cwd=REPO, env=env, check=False
    ).stdout


@pytest.mark.parametrize("files", CASES, ids=["external-via-relay", "intranet-direct", "tcp-fallback"])
def test_80_columns(files):
    files = [f for f in files if os.path.exists(f)]
    if not files:
        pytest.skip("capture not generated")
    a = analyze(files)
    for out in (_run("analyze", "-v", *files), _run("ice", *files)):
        lines = out.splitlines()
        assert max(map(len, lines)) <= 80, max(lines, key=len)
        for header in ("agent", "candidate", "type", "frame", "rule", "description", "state", "checks/retx/ok"):
            assert re.search(rf"\b{re.escape(header)}\b", out), header
        # every endpoint of the pairs table appears whole on one line
        for p in a.pairs.itertuples():
            for ep in (f"{p.local_address}:{p.local_port}", f"{p.remote_address}:{p.remote_port}"):
                if ":" not in p.local_address:
                    assert re.search(rf"(?<![\d.]){re.escape(ep)}(?!\d)", out), ep
        # no table cropped at the edge: a row that starts with a border ends with one
        for line in lines:
            if line.startswith(("│", "┃", "┏", "┡", "└", "┌")):
                assert line.rstrip()[-1] in "│┃┓┩┘┐", line
        # no line ends inside an address:port ("52.112.10." then "10:3478/ud" below)
        for line in lines:
            assert not re.search(r"\d\.$|\d:$|/ud$", line.rstrip(" │┃")), line
    out = _run("analyze", "-v", *files)
    for header in ("file", "flow", "zones", "label", "packets", "jitter", "MOS"):
        if header in ("jitter", "MOS") and not len(a.streams):
            continue
        assert header in out, header
