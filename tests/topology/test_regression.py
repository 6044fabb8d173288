"""The regression guard over every shared capture and every shipped scenario (tests/topology/regress.py):
no finding without frames, and calls, findings and stream counts as approved in expected_results.json.
A deliberate change of verdict: `python -m tests.topology.regress --update`, then read the diff."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SHARED
from tests.topology import regress

JOBS = regress.jobs()
IDS = [j.key for j in JOBS]


@pytest.mark.parametrize("job", JOBS, ids=IDS)
def test_every_finding_cites_frames(job):
    r = regress.result(job)
    assert "error" not in r, r.get("error")
    empty = [f["code"] for f in r["findings"] if not f["frames"]]
    assert not empty, f"{job.key}: findings without frames: {empty}"


@pytest.mark.parametrize("job", JOBS, ids=IDS)
def test_results_match_the_approved_file(job):
    expected = regress.load()
    assert job.key in expected, f"{job.key} missing: python -m tests.topology.regress --update"
    assert regress.result(job) == expected[job.key], (
        f"{job.key}: verdict changed; if intended, python -m tests.topology.regress --update and review the diff"
    )


def test_no_stale_entries():
    keys = {j.key for j in JOBS}
    stale = [k for k in regress.load() if k not in keys and (SHARED.is_dir() or not k.startswith("public/"))]
    assert not stale, f"entries for captures that no longer exist: {stale}"


def test_the_file_is_json_with_one_finding_per_line():
    text = regress.EXPECTED.read_text()
    data = json.loads(text)
    assert regress.dumps(data) == text  # the writer's layout: an --update of unchanged results is no diff
    lines = text.splitlines()
    findings = sum(len(v.get("findings", [])) for v in data.values())
    assert sum(1 for ln in lines if ln.strip().startswith('{"call"') and '"code"' in ln) == findings
    assert list(data) == sorted(data)


def _entry(key: str) -> dict:
    return regress.load()[key]


def test_approved_values_read_off_the_packets():
    """Entries of the approved file checked against tshark (the others by the tests named in them)."""
    from tests.conftest import public_capture, tshark_fields

    # g711a: 236 packets, all 10.1.3.143 -> 10.1.6.18; demo_rtp: two flows from 192.168.83.237, frames 1 and 7
    g711 = tshark_fields(public_capture("SIPp_sipp/g711a.pcap"), ["ip.src", "ip.dst"])
    assert {tuple(r) for r in g711} == {("10.1.3.143", "10.1.6.18")} and len(g711) == 236
    assert _entry("public/SIPp_sipp/g711a.pcap")["findings"] == [
        {"call": None, "code": "one-direction-capture", "frames": [1], "severity": "info"}
    ]
    demo = tshark_fields(
        public_capture("membraneframework_membrane_rtp_plugin/demo_rtp.pcap"), ["frame.number", "ip.src", "udp.srcport"]
    )
    first = {}
    for fr, src, port in demo:
        first.setdefault((src, port), int(fr))
    assert sorted(first.values()) == [1, 7] and {s for s, _ in first} == {"192.168.83.237"}
    # stun_dtls_rtp: 44 the Allocate over TCP 3478, 53 the Send indication carrying the check, 57 its Data
    # indication answer
    rows = tshark_fields(
        public_capture("ntop_nDPI/stun_dtls_rtp.pcapng"),
        ["frame.number", "stun.type"],
        display_filter="frame.number==44 || frame.number==53 || frame.number==57",
    )
    assert [tuple(r) for r in rows] == [("44", "0x0003"), ("53", "0x0016"), ("57", "0x0017")]
    got = {(f["code"], tuple(f["frames"])) for f in _entry("public/ntop_nDPI/stun_dtls_rtp.pcapng")["findings"]}
    # no relay-hairpin: the far peer 10.13.0.50 is heard only through Google's relay (issue 15)
    assert got == {("tcp-fallback", (44, 53)), ("non-cloud-relay", (53,))}
    # stun_tcp_multiple_msgs_same_pkt: the server's SYN-ACK (frame 1), then Allocate requests only (2-5) over 10.9 s
    rows = tshark_fields(
        public_capture("ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap"),
        ["frame.number", "frame.time_relative", "stun.type"],
    )
    assert [r[2].split(",")[0] for r in rows] == ["", "0x0003", "0x0003", "0x0003", "0x0003"]
    assert float(rows[-1][1]) > 10
    assert _entry("public/ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap")["findings"] == [
        {"call": None, "code": "relay-unreachable", "frames": [2, 3, 4, 5], "severity": "error"}
    ]
