"""summary tells a first-byte guess from a parsed message (issue 17: Teams showed "dtls 447" though
Wireshark finds no DTLS in it: those are TLS records over TCP, whose first bytes share the range)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO, public_capture, tshark_fields


def test_teams_dtls_range_is_not_called_dtls():
    cap = public_capture("ntop_nDPI/teams.pcap")
    assert tshark_fields(cap, ["frame.number"], display_filter="dtls") == []  # the oracle: no DTLS
    assert len(tshark_fields(cap, ["frame.number"], display_filter="tls")) > 400
    out = subprocess.run(
        [sys.executable, "-m", "analyzer", "summary", str(cap)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "first byte" in out and "parsed as" in out and "classes" not in out
    assert "dtls: 447 payloads in its byte range, none parsed as DTLS (TLS over TCP" in out
    parsed = next(line for line in out.splitlines() if "parsed as" in line and "not parsed" not in line)
    assert "dtls" not in parsed and "stun 61" in parsed
