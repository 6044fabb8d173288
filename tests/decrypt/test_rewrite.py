"""--decrypt-out: the capture with SRTP replaced by its plaintext, read back with tshark. Every frame keeps
its length and time; each rewritten RTP packet carries the old tag's bytes as RTP padding and its payload
equals what libsrtp decrypted."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analyzer import analyze
from analyzer.decrypt.rewrite import rtcp_in_place, rtp_in_place
from tests.conftest import CAPTURES, tshark_fields

TAG = {"decrypt-gcm256": 16, "decrypt-relay": 16, "decrypt-silent-side": 10}


def plain_copy(name, tmp_path):
    d = CAPTURES / name
    a = analyze(d / "call.pcap", keylog=d / "keylog.txt", plaintext=True, audio=True)
    out = tmp_path / f"{name}.pcapng"
    rep = a.write_decrypted([out])[0]
    return a, out, rep


@pytest.mark.parametrize("name", sorted(TAG))
def test_plaintext_copy_read_by_tshark(name, tmp_path):
    a, out, rep = plain_copy(name, tmp_path)
    src = CAPTURES / name / "call.pcap"
    fields = ["frame.number", "frame.len", "frame.time_epoch"]
    assert tshark_fields(out, fields) == tshark_fields(src, fields)  # every frame, length and time kept
    rtp_decrypted = int(a.decryption[~a.decryption.rtcp].decrypted.sum())
    srtcp = int(a.decryption[a.decryption.rtcp].decrypted.sum())
    assert rep.patched == rtp_decrypted + (srtcp if TAG[name] == 16 else 0)
    assert rep.not_rewritable == (0 if TAG[name] == 16 else srtcp)  # HMAC_SHA1_80: 14 bytes, not whole words
    # the payload tshark sees in the copy is the decrypted one, the padding the tag's length
    ours = {(ssrc, seq): p for c in a.audio_payloads for k, s in c.streams.items()
            for ssrc, seq, p in zip([k[-1]] * len(s.seq), s.seq, s.payload, strict=True)}
    # Wireshark ties the stream to its DTLS-SRTP handshake and shows it as SRTP; with DTLS off it is RTP
    rows = tshark_fields(out, ["rtp.ssrc", "rtp.seq", "rtp.padding.count", "rtp.payload"], display_filter="rtp",
                         extra=["--disable-protocol", "dtls", "-o", "rtp.heuristic_rtp:TRUE"])
    checked = 0
    for ssrc, seq, count, payload in rows:
        key = (int(ssrc, 16), int(seq))
        if key not in ours:
            continue
        assert int(count) == TAG[name]
        assert bytes.fromhex(payload) == ours[key]
        checked += 1
    assert checked >= 0.9 * rtp_decrypted / (3 if name == "decrypt-relay" else 1)


def test_plaintext_rtcp_reports_match_the_decrypted_ones(tmp_path):
    """AEAD's 20 freed bytes become RTCP padding: the copy's reports read without keys equal those read
    with them."""
    a, out, _ = plain_copy("decrypt-gcm256", tmp_path)
    b = analyze(out)
    cols = ["frame", "packet_type", "reporter_ssrc", "source_ssrc", "fraction_lost", "cumulative_lost", "highest_seq"]
    assert not b.rtcp_reports.encrypted.any()
    assert b.rtcp_reports[cols].equals(a.rtcp_reports[cols])


def test_cli_decrypt_out(tmp_path):
    d = CAPTURES / "decrypt-silent-side"
    out = tmp_path / "plain.pcapng"
    r = subprocess.run([sys.executable, "-m", "analyzer", "analyze", str(d / "call.pcap"), "--keylog",
                        str(d / "keylog.txt"), "--decrypt-out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}: 295 packets, 280 with their plaintext, 7 SRTCP left as they were" in r.stderr
    comment = tshark_fields(out, ["frame.comment"], extra=["-c", "1"])
    assert out.exists() and comment
    r = subprocess.run([sys.executable, "-m", "analyzer", "analyze", str(d / "call.pcap"), "--decrypt-out",
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "needs the keys" in r.stderr


def test_in_place_padding():
    head = bytes([0x80, 96]) + bytes(10)
    p = rtp_in_place(head + b"abc", 15 + 10)
    assert p[0] & 0x20 and p[-1] == 10 and p[12:15] == b"abc" and len(p) == 25
    padded = bytes([0xA0, 96]) + bytes(10) + b"abc" + b"\0\0\x03"  # 3 bytes of its own padding
    q = rtp_in_place(padded, len(padded) + 4)
    assert q[-1] == 7 and q[12:15] == b"abc" and len(q) == len(padded) + 4
    rr = bytes([0x81, 201, 0, 7]) + bytes(28)
    sdes = bytes([0x81, 202, 0, 1]) + bytes(4)
    c = rtcp_in_place(rr + sdes, len(rr + sdes) + 8)
    assert c[:32] == rr and c[32] & 0x20 and c[34:36] == b"\x00\x03" and c[-1] == 8
    assert rtcp_in_place(rr, len(rr) + 14) is None  # HMAC_SHA1_80's SRTCP trailer is not whole words
