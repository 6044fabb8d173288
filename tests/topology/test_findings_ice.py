"""ice-failed only when the capture kept recording while the answers were due."""

from __future__ import annotations

from analyzer import analyze
from tests.conftest import public_capture, tshark_fields
from tests.topology.builder import CallBuilder

A, B = ("10.1.0.11", 50000), ("203.0.113.9", 61000)


def test_checks_cut_by_the_end_of_a_glued_capture_are_not_a_failure():
    path = public_capture("ntop_nDPI/stun.pcap")
    t = {int(r[0]): float(r[1]) for r in tshark_fields(path, ["frame.number", "frame.time_epoch"])}
    assert t[161] - t[152] < 0.4 and t[162] - t[161] > 86400 * 40
    a = analyze(path)
    (f,) = a.findings[a.findings.code == "ice-incomplete"].itertuples()
    assert (f.severity, f.frames) == ("info", [152, 158, 160])
    assert "ice-failed" not in set(a.findings.code)


def test_unanswered_checks_while_the_capture_records_are_a_failure(tmp_path):
    cb = CallBuilder()
    for _ in range(4):  # retransmitted for 3 s, never answered, while other traffic goes on for 7 s more
        cb.check(A, B, "bb", "aa", answer=False)
        cb.now += 1_000_000_000
    for _ in range(14):
        cb.udp(("10.1.0.11", 40000), ("10.1.0.1", 53), b"\x12\x34\x01\x00" + bytes(20), dt_ms=250)
        cb.udp(("10.1.0.1", 53), ("10.1.0.11", 40000), b"\x12\x34\x81\x80" + bytes(20), dt_ms=250)
    p = tmp_path / "failed.pcap"
    cb.write(p)
    a = analyze(p)
    assert list(a.findings.code) == ["ice-failed"]
    cut = CallBuilder()
    cut.check(A, B, "bb", "aa", answer=False)  # one check, then the capture ends
    q = tmp_path / "cut.pcap"
    cut.write(q)
    assert "ice-failed" not in set(analyze(q).findings.code)
