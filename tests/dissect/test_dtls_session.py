"""DTLS sessions across datagrams: roles, negotiated parameters, completion, fingerprints, retransmissions,
checked against tshark on the shared captures and against crafted handshakes."""

from __future__ import annotations

import hashlib
import re
import subprocess
from decimal import Decimal

from analyzer.capture import iter_payloads
from analyzer.dissect import dtls_tables as T
from analyzer.dissect.dtls import looks_like_dtls, parse_dtls
from analyzer.dissect.dtls_session import DtlsTracker
from tests.conftest import need_tshark, public_capture, tshark_fields
from tests.dissect.test_dtls import client_hello, hs, rec, server_hello

CHROME = "pion_dtls/chrome-123-dtls.pcap"


def _track(rel: str):
    tracker, events = DtlsTracker(), []
    for p in iter_payloads(public_capture(rel), {"dtls"}):
        if p.proto == 17 and looks_like_dtls(p.payload):
            events += tracker.add(p.frame, p.ts_ns, p.src, p.sport, p.dst, p.dport, parse_dtls(p.payload))
    return tracker.summary(), events


def _ns(epoch: str) -> int:
    return int(Decimal(epoch) * 1_000_000_000)


def _tshark_names(rel: str, frame: int) -> tuple[str, str | None]:
    """(cipher suite, SRTP profile) names of the ServerHello in `frame`, as tshark prints them."""
    out = subprocess.run([need_tshark(), "-n", "-r", str(public_capture(rel)), "-V", "-Y", f"frame.number=={frame}"],
                         capture_output=True, text=True, check=True).stdout
    cipher = re.search(r"Cipher Suite: (\S+) \(0x", out).group(1)
    srtp = re.search(r"SRTP Protection Profile: (\S+) \(0x", out)
    return cipher, srtp.group(1) if srtp else None


def _tshark_fingerprint(rel: str, frame: int) -> str:
    (row,) = tshark_fields(public_capture(rel), ["dtls.handshake.certificate"], display_filter=f"frame.number=={frame}")
    der = bytes.fromhex(row[0].split(",")[0])
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_chrome_session_summary_matches_tshark():
    (s,), _ = _track(CHROME)
    rows = {int(r[0]): r[1:] for r in tshark_fields(public_capture(CHROME), [
        "frame.number", "frame.time_epoch", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "dtls.handshake.type",
        "dtls.record.epoch", "dtls.handshake.version"])}
    hello = next(f for f, r in rows.items() if "1" in r[5].split(","))
    assert s.client == (rows[hello][1], int(rows[hello][2])) == ("10.1.0.129", 54427)
    assert s.server == (rows[hello][3], int(rows[hello][4])) == ("10.1.0.129", 59458)
    assert (s.first_frame, s.client_hello_frame, s.server_hello_frame) == (1, 1, 3)
    assert s.start_ts_ns == _ns(rows[1][0]) == 1713468662262775946
    # encrypted records both ways: the client's Finished in frame 4, the server's in frame 5
    enc = [f for f, r in rows.items() if "1" in r[6].split(",")]
    assert enc == [4, 5]
    assert (s.completed, s.completed_ts_ns) == (True, _ns(rows[5][0]))
    assert s.version == T.version_name(int(rows[3][7].split(",")[0], 16)) == "DTLS 1.2"
    assert (s.cipher_suite, s.srtp_profile) == _tshark_names(CHROME, 3) == (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "SRTP_AES128_CM_HMAC_SHA1_80")
    assert s.server_fingerprint == _tshark_fingerprint(CHROME, 3) == (
        "78:A7:99:A1:EA:31:E8:C2:78:B8:78:EE:32:C7:9B:32:77:98:E9:9F:49:D5:A1:0F:5B:EC:0B:85:93:CA:91:15")
    assert s.client_fingerprint == _tshark_fingerprint(CHROME, 4) == (
        "F2:94:3E:72:DA:A1:38:FD:AB:CA:E2:EE:2F:26:15:9B:F8:9E:EB:08:B9:E2:7D:50:C8:A6:69:1A:FF:F6:01:05")
    assert (s.alerts, s.retransmitted_flights, s.hello_verify) == ((), 1, False)


def test_chrome_events_match_tshark():
    _, events = _track(CHROME)
    rows = tshark_fields(public_capture(CHROME), ["frame.number", "dtls.record.content_type", "dtls.record.epoch",
                                                  "dtls.record.sequence_number"], display_filter="dtls")
    want = [(int(f), T.content_name(int(c)), int(e), int(q))
            for f, cts, eps, seqs in rows for c, e, q in zip(cts.split(","), eps.split(","), seqs.split(","),
                                                              strict=True)]
    assert [(e.frame, e.content_type, e.epoch, e.sequence) for e in events] == want
    assert len(events) == 15
    assert [e.handshake_type for e in events if e.frame == 3] == [
        "server_hello", "certificate", "server_key_exchange", "certificate_request", "server_hello_done"]
    assert [(e.frame, e.handshake_type) for e in events if e.retransmission] == [(2, "client_hello")]
    assert [(e.frame, e.encrypted, e.info) for e in events if e.epoch == 1] == [
        (4, True, "encrypted handshake message"), (5, True, "encrypted handshake message")]
    sh = next(e for e in events if e.handshake_type == "server_hello")
    assert sh.info == "cipher=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 version=DTLS 1.2 srtp=SRTP_AES128_CM_HMAC_SHA1_80"
    assert {e.session for e in events} == {0} and {e.alert for e in events} == {None}


def test_hello_verify_and_fragmented_certificates():
    rel = "ntop_nDPI/dtls_certificate_fragments.pcap"
    first, second = _track(rel)[0]
    assert (first.client, first.server) == (("10.186.198.149", 39347), ("35.210.59.134", 44443))
    assert (first.hello_verify, first.client_hello_frame, first.server_hello_frame) == (True, 1, 4)
    assert (first.version, first.cipher_suite, first.srtp_profile) == ("DTLS 1.0", *_tshark_names(rel, 4))
    assert first.server_fingerprint == _tshark_fingerprint(rel, 5) and first.client_fingerprint is None
    assert (second.cipher_suite, second.srtp_profile) == _tshark_names(rel, 23)
    assert second.server_fingerprint == _tshark_fingerprint(rel, 24)
    assert second.client_fingerprint == _tshark_fingerprint(rel, 25)
    assert (second.retransmitted_flights, second.hello_verify, second.completed) == (1, False, True)


def test_retransmitted_flights_and_early_application_data():
    """Frames 10 and 11 repeat the client's and the server's last flights (same message_seq 1-3 and 5, new
    record sequence numbers); the server's application data (frame 8) overtook its Finished (frame 9)."""
    rel = "ntop_nDPI/stun_dtls_rtp.pcapng"
    (s,), events = _track(rel)
    assert (s.retransmitted_flights, s.srtp_profile) == (2, "SRTP_AEAD_AES_256_GCM")
    assert (s.cipher_suite, s.srtp_profile) == _tshark_names(rel, 4)
    ts8 = tshark_fields(public_capture(rel), ["frame.time_epoch"], display_filter="frame.number==8")[0][0]
    assert s.completed_ts_ns == _ns(ts8)
    assert sorted({e.frame for e in events if e.retransmission}) == [10, 11]


def test_dtls13_sessions_with_hello_retry_and_connection_ids():
    sessions, events = _track("zeek_zeek/dtls13-cid.pcap")
    assert [s.client[1] for s in sessions] == [52232, 57488, 58771, 56544, 47904]
    done = [s for s in sessions if s.completed]
    assert [(s.first_frame, s.server_hello_frame) for s in done] == [(4, 7), (26, 29)]
    for s in done:
        assert (s.version, s.cipher_suite, s.hello_verify, s.srtp_profile) == (
            "DTLS 1.3", "TLS_AES_128_GCM_SHA256", True, None)
    ts = {e.frame: e.ts_ns for e in events}
    assert [s.completed_ts_ns for s in done] == [ts[14], ts[36]]  # first client ciphertext after the server's
    assert [s.retransmitted_flights for s in sessions] == [1, 0, 1, 1, 0]
    assert {e.frame for e in events if e.retransmission} == {2, 3, 20, 21, 22, 24, 25}


# ------------------------------------------------------------------ crafted handshakes

A, B = ("192.0.2.1", 5000), ("198.51.100.7", 3478)


def _feed(tracker, frame, src, dst, dgram: bytes):
    return tracker.add(frame, frame * 1000, src[0], src[1], dst[0], dst[1], parse_dtls(dgram))


def test_failed_handshake_alerts_and_new_session_on_new_random():
    t = DtlsTracker()
    _feed(t, 1, A, B, rec(22, hs(1, client_hello(b"\x01" * 32))))
    _feed(t, 2, B, A, rec(22, hs(2, server_hello())))
    (ev,) = _feed(t, 3, A, B, rec(21, b"\x02\x28"))
    assert ev.alert == "fatal/handshake_failure"
    _feed(t, 4, B, A, rec(21, bytes(26), epoch=1, seq=1))
    _feed(t, 5, A, B, rec(22, hs(1, client_hello(b"\x01" * 32)), seq=1))  # same random: same session
    events = _feed(t, 6, A, B, rec(22, hs(1, client_hello(b"\x02" * 32))))
    first, second = t.summary()
    assert (first.alerts, first.completed, first.retransmitted_flights) == (
        ("fatal/handshake_failure", "encrypted"), False, 1)
    assert (second.first_frame, second.client, events[0].session) == (6, A, 1)


def test_roles_from_server_hello_and_connection_id_lengths():
    t = DtlsTracker()
    _feed(t, 1, B, A, rec(22, hs(2, server_hello(cid=b"\x07" * 4), seq=0)))
    assert t.is_dtls_flow(*A, *B) and not t.is_dtls_flow(*A, "203.0.113.9", 1)
    assert t.expected_cid_len(*A, *B) == 4 and t.expected_cid_len(*B, *A) is None
    body = bytes(24)
    _feed(t, 2, A, B, b"\x3e" + b"\x07" * 4 + b"\x00\x01" + len(body).to_bytes(2, "big") + body)
    _feed(t, 3, B, A, b"\x2e\x00\x02" + len(body).to_bytes(2, "big") + body)
    (s,) = t.summary()
    assert (s.client, s.server, s.client_hello_frame, s.server_hello_frame) == (A, B, None, 1)
    assert (s.completed, s.completed_ts_ns) == (True, 3000)
