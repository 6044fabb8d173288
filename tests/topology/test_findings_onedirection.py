"""A capture of one direction (a one-way SPAN port) says so, and the rules that rest on an answer not
arriving stay silent: in such a file no answer could ever be."""

from __future__ import annotations

import io

from rich.console import Console
from scapy.layers.inet import IP
from scapy.utils import rdpcap, wrpcap

from analyzer import analyze
from analyzer.report.console import print_verdict
from tests.conftest import CAPTURES, public_capture, tshark_fields

SCENARIO = CAPTURES / "external-direct"
CLIENT = "10.1.0.11"


def one_way_span(tmp_path, keep) -> str:
    """Packets of client-a.pcap whose outer IP header passes `keep` (as a one-way SPAN mirror sees them)."""
    pkts = [p for p in rdpcap(str(SCENARIO / "client-a.pcap")) if IP in p and keep(p[IP])]
    out = tmp_path / "span.pcap"
    wrpcap(str(out), pkts)
    return str(out)


def verdict_text(a) -> str:
    buf = io.StringIO()
    print_verdict(a, Console(file=buf, width=200, color_system=None))
    return buf.getvalue()


def test_outbound_only_capture_says_so_and_judges_no_answer(tmp_path):
    path = one_way_span(tmp_path, lambda ip: ip.src == CLIENT)
    assert {r[0] for r in tshark_fields(path, ["ip.src"], extra=["-E", "occurrence=f"])} == {CLIENT}
    full = analyze(SCENARIO / "client-a.pcap", network=SCENARIO / "network.toml")
    assert "one-direction-capture" not in set(full.findings.code)  # the full capture holds both directions
    a = analyze(path, network=SCENARIO / "network.toml")
    (f,) = a.findings.itertuples()  # no relay-unreachable, dtls-failed or one-way-media
    assert (f.code, f.severity) == ("one-direction-capture", "info")
    assert f.title == "The capture holds one direction only: every packet is sent by 10.1.0.11"
    assert f.frames[0] == 1 and len(f.frames) == len(a.flows)
    assert "The capture holds one direction only: every packet is sent by 10.1.0.11" in verdict_text(a)


def test_inbound_only_capture_says_so(tmp_path):
    a = analyze(one_way_span(tmp_path, lambda ip: ip.dst == CLIENT), network=SCENARIO / "network.toml")
    assert list(a.findings.code) == ["one-direction-capture"]
    assert a.findings.iloc[0].title == "The capture holds one direction only: every packet is sent to 10.1.0.11"


def test_icmp_errors_back_to_the_client_are_answers():
    """ice-failed/client-a.pcap: every check and allocation unanswered, but the gateway's ICMP port
    unreachables (frames 2 and 24) come back: both directions are captured, the failure stands."""
    path = CAPTURES / "ice-failed" / "client-a.pcap"
    rows = tshark_fields(path, ["frame.number", "ip.src", "icmp.type"], extra=["-E", "occurrence=f"])
    assert [(r[0], r[1], r[2]) for r in rows if r[2]] == [("2", "10.1.0.1", "3"), ("24", "10.1.0.1", "3")]
    a = analyze(path, network=CAPTURES / "ice-failed" / "network.toml")
    assert set(a.findings.code) == {"ice-failed", "relay-unreachable"}


def test_rtp_only_fixture_in_one_direction_is_not_one_way_media():
    """membraneframework srtp.pcap: 972 packets, all from 192.168.83.24 (tshark): a fixture of one side."""
    path = public_capture("membraneframework_membrane_rtp_plugin/srtp.pcap")
    assert {r[0] for r in tshark_fields(path, ["ip.src"])} == {"192.168.83.24"}
    a = analyze(path)
    assert list(a.findings.code) == ["one-direction-capture"]
