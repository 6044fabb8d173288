"""dtls-failed only on what the capture saw: a handshake the capture cuts is not failed, an attempt the
client replaced by one that completed is a retry, and a session without a hello is no handshake at all."""

from __future__ import annotations

from analyzer import analyze
from analyzer.dissect.dtls import parse_dtls
from analyzer.dissect.dtls_session import STATE_BEFORE_CAPTURE, DtlsTracker
from tests.conftest import CAPTURES, public_capture, tshark_fields
from tests.dissect.test_dtls import rec
from tests.topology.builder import CallBuilder

A, B = ("10.1.0.11", 50000), ("203.0.113.9", 61000)
HOURS_NS = 3 * 3600 * 10**9


def client_hello() -> bytes:
    from analyzer.capture import iter_payloads

    hello = next(p.payload for p in iter_payloads(CAPTURES / "loopback-call" / "call.pcap", {"dtls"}))
    assert hello[0] == 22 and hello[13] == 1  # a handshake record holding a ClientHello
    return hello


def by_code(a, code):
    return a.findings[a.findings.code == code]


def test_client_hello_at_the_end_of_a_glued_capture_is_cut_not_failed(tmp_path):
    """Checks, then the ClientHello as the last packet of its stretch; hours later another capture's packets
    (ntop_nDPI/stun.pcap is such a file). The recording ended with the hello: nothing failed."""
    cb = CallBuilder()
    cb.check(A, B, "bb", "aa", nominate=True)
    cb.udp(A, B, client_hello())
    hello_frame = len(cb.frames)
    cb.now += HOURS_NS
    for _ in range(5):
        cb.udp(("192.0.2.50", 5353), ("224.0.0.251", 5353), b"\x00" * 20, dt_ms=500)
    p = tmp_path / "glued.pcap"
    cb.write(p)
    a = analyze(p)
    assert by_code(a, "dtls-failed").empty
    (f,) = by_code(a, "dtls-incomplete").itertuples()
    assert (f.severity, f.frames) == ("info", [hello_frame])
    assert f.title == "DTLS handshake not finished: the capture ends during the handshake"


def test_client_hello_unanswered_while_the_capture_records_is_failed(tmp_path):
    """The same hello with the capture recording 3 s more (checks go on): the evidence of failure."""
    cb = CallBuilder()
    cb.check(A, B, "bb", "aa", nominate=True)
    cb.udp(A, B, client_hello())
    for _ in range(6):
        cb.now += 500_000_000
        cb.check(A, B, "bb", "aa")
    p = tmp_path / "failed.pcap"
    cb.write(p)
    a = analyze(p)
    assert by_code(a, "dtls-incomplete").empty
    (f,) = by_code(a, "dtls-failed").itertuples()
    assert (f.severity, f.frames) == ("error", [3])


def test_stun_pcap_frame_198_is_the_end_of_its_capture():
    path = public_capture("ntop_nDPI/stun.pcap")
    rows = {int(r[0]): r for r in tshark_fields(path, ["frame.number", "frame.time_epoch", "dtls.handshake.type"])}
    assert rows[198][2] == "1"  # a ClientHello
    assert float(rows[199][1]) - float(rows[198][1]) > 3600 * 24  # the next frame is from another capture
    a = analyze(path)
    assert by_code(a, "dtls-failed").empty
    (f,) = by_code(a, "dtls-incomplete").itertuples()
    assert (f.severity, f.frames) == ("info", [198])


def test_unanswered_attempts_followed_by_a_completed_handshake_are_retries():
    """zeek_zeek/dtls13-cid.pcap: ClientHellos from port 52232 (frames 1-3), 58771 (19-22) and 56544 (23-25)
    go unanswered; 57488 (frame 4) and 47904 (frame 26) complete with the same server."""
    path = public_capture("zeek_zeek/dtls13-cid.pcap")
    rows = tshark_fields(path, ["frame.number", "udp.srcport", "udp.dstport", "dtls.handshake.type"])
    hellos = {int(r[0]): int(r[1]) for r in rows if r[3] == "1"}
    assert {hellos[1], hellos[2], hellos[3]} == {52232} and hellos[4] == 57488 and hellos[26] == 47904
    assert not any(int(r[2]) == 52232 for r in rows)  # the server never answered 52232
    a = analyze(path)
    f = by_code(a, "dtls-failed")
    assert list(f.severity) == ["info"] * 3
    assert [fr for fr in f.frames] == [[1, 4], [19, 26], [23, 26]]


def test_session_without_a_hello_is_not_completed_nor_failed(tmp_path):
    """Application data both ways and no handshake: keys agreed before the capture."""
    t = DtlsTracker()
    body = bytes(40)
    for frame, (s, d) in enumerate([(A, B), (B, A), (A, B)], start=1):
        t.add(frame, frame * 10**9, s[0], s[1], d[0], d[1], parse_dtls(rec(23, body, epoch=1, seq=frame)))
    (s,) = t.summary()
    assert (s.completed, s.completed_ts_ns, s.state) == (False, None, STATE_BEFORE_CAPTURE)
    cb = CallBuilder()
    cb.check(A, B, "bb", "aa", nominate=True)
    for i in range(8):
        cb.udp(A, B, rec(23, body, epoch=1, seq=2 * i), dt_ms=500)
        cb.udp(B, A, rec(23, body, epoch=1, seq=2 * i + 1), dt_ms=500)
    p = tmp_path / "nohello.pcap"
    cb.write(p)
    a = analyze(p)
    (row,) = a.dtls_sessions.itertuples()
    assert (row.completed, row.state) == (False, STATE_BEFORE_CAPTURE)
    assert not set(a.findings.code) & {"dtls-failed", "dtls-incomplete"}


def test_stun_dtls_rtp_sessions_called_completed_have_their_handshake():
    a = analyze(public_capture("ntop_nDPI/stun_dtls_rtp.pcapng"))
    ds = a.dtls_sessions
    assert list(ds.state) == ["completed", "completed"]
    assert list(ds.client_hello_frame) == [3, 59] and list(ds.server_hello_frame) == [4, 63]
