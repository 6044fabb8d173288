"""SRTP/SRTCP decryption end to end: real aiortc calls captured with the key log their OpenSSL wrote
(captures/decrypt-*, made by captures/generate/keyed_call.py), and a third-party SDES capture whose key
its project publishes. Ground truth: libsrtp's authentication of every packet, the tones the peers sent,
OpenSSL's own exporter (test_keys.py)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from analyzer import analyze
from analyzer.decrypt import KeyError_, Keyring
from tests.conftest import CAPTURES, public_capture

SCENARIOS = ["decrypt-silent-side", "decrypt-relay", "decrypt-gcm256"]
PROFILES = {"decrypt-silent-side": "SRTP_AES128_CM_HMAC_SHA1_80", "decrypt-relay": "SRTP_AEAD_AES_128_GCM",
            "decrypt-gcm256": "SRTP_AEAD_AES_256_GCM"}


def keyed(name: str, **kw):
    d = CAPTURES / name
    return analyze(d / "call.pcap", keylog=d / "keylog.txt", **kw), json.loads((d / "truth.json").read_text())


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    a, truth = keyed(request.param)
    return request.param, a, truth


def test_every_srtp_and_srtcp_packet_authenticates(scenario):
    name, a, _truth = scenario
    ds = a.dtls_sessions
    assert list(ds.srtp_profile) == [PROFILES[name]] and list(ds["keys"]) == ["keys derived"]
    d = a.decryption
    assert (d.auth_failed == 0).all() and (d.repeated == 0).all() and (d.failed_other == 0).all()
    assert d[~d.rtcp].decrypted.sum() == a.streams.packets.sum()  # every RTP packet of every stream
    assert (d[d.rtcp].decrypted > 0).sum() == len(d[d.rtcp]) > 0
    s = a.streams
    assert s.srtp.all() and (s.srtp_decrypted == s.packets).all() and (s.srtp_auth_failed == 0).all()


def test_tones_found_in_the_decrypted_audio(scenario):
    _name, a, truth = scenario
    au = a.audio
    sent = sorted(t for t in (truth["tone_a_hz"], truth["tone_b_hz"]) if t)
    found = sorted({round(h) for h in au.dominant_hz.dropna()})
    assert len(found) == len(sent)
    for f, t in zip(found, sent, strict=True):
        assert abs(f - t) <= 3, (found, sent)  # FFT bin of 10 s at 48 kHz is 0.1 Hz; Opus keeps the pitch
    audible = au[~au.silent]
    assert (audible.level_dbfs_mean > -25).all() and (audible.decode_failed == 0).all()


def test_decrypted_rtcp_receiver_reports(scenario):
    """The receivers' own reports, readable only after decryption, agree with the packets captured."""
    _name, a, _truth = scenario
    rr = a.rtcp_reports
    blocks = rr[rr.source_ssrc.notna()]
    assert len(blocks) > 0 and not rr.encrypted.any()
    assert (blocks.cumulative_lost == 0).all() and (a.streams.lost == 0).all()
    assert blocks.rtt_ms.notna().any() and (blocks.rtt_ms.dropna() < 50).all()  # one host: well under 50 ms
    ssrcs = set(a.streams.ssrc)
    assert set(blocks.source_ssrc.astype(int)) <= ssrcs and set(rr.reporter_ssrc.dropna().astype(int)) <= ssrcs


def test_silent_side_raises_silent_media_and_one_way_audio():
    a, _truth = keyed("decrypt-silent-side")
    f = a.findings.set_index("code")
    assert {"silent-media", "one-way-audio"} <= set(f.index)
    au = a.audio
    silent = au[au.silent]
    assert len(silent) == 1 and silent.silent_seconds.iloc[0] == silent.seconds.iloc[0]
    assert silent.dominant_hz.isna().all()
    frames = f.loc["silent-media", "frames"]
    assert frames and frames[0] == int(silent.first_frame.iloc[0]) and frames[-1] == int(silent.last_frame.iloc[0])
    assert f.loc["one-way-audio", "severity"] == "error" and f.loc["one-way-audio", "frames"]
    # the same capture without keys: nothing to say about the content
    plain = analyze(CAPTURES / "decrypt-silent-side" / "call.pcap")
    assert not {"silent-media", "one-way-audio"} & set(plain.findings.code)


def test_media_inside_turn_is_decrypted():
    a, _ = keyed("decrypt-relay")
    s = a.streams
    relayed = s[s.relayed.astype(bool)]
    assert len(relayed) >= 2 and (relayed.srtp_decrypted == relayed.packets).all()
    d = a.decryption
    inside = d[(d.wire_dst != d.dst) | (d.wire_dport != d.dport)]
    assert len(inside) > 0 and (inside.decrypted > 0).all()


def test_wrong_master_secret_counts_authentication_failures(tmp_path):
    d = CAPTURES / "decrypt-silent-side"
    bad = tmp_path / "keylog.txt"
    lines = [ln.split() for ln in (d / "keylog.txt").read_text().splitlines()]
    bad.write_text("".join(f"CLIENT_RANDOM {cr} {'00' * 48}\n" for _, cr, _ in lines))
    a = analyze(d / "call.pcap", keylog=bad)
    dec = a.decryption
    assert dec.decrypted.sum() == 0 and dec[~dec.rtcp].auth_failed.sum() == a.streams.packets.sum()
    assert not a.streams.srtp_decrypted.any()
    r = subprocess.run([sys.executable, "-m", "analyzer", "analyze", str(d / "call.pcap"), "--keylog", str(bad)],
                       capture_output=True, text=True)
    n = int(a.streams.packets.iloc[0])
    assert r.returncode == 0 and f"{n:,} of {n:,} packets failed authentication" in " ".join(r.stdout.split())


def test_handshake_without_a_log_line_is_not_an_error(tmp_path):
    other = tmp_path / "keylog.txt"
    other.write_text(f"CLIENT_RANDOM {'11' * 32} {'22' * 48}\n")
    a = analyze(CAPTURES / "decrypt-gcm256" / "call.pcap", keylog=other)
    assert list(a.dtls_sessions["keys"]) == ["keys not available: the key log has no line for this client random"]
    assert len(a.decryption) == 0 and len(a.audio) == 0


def test_dtls13_handshake_keys_not_available(tmp_path):
    log = tmp_path / "keylog.txt"
    log.write_text(f"CLIENT_RANDOM {'11' * 32} {'22' * 48}\n")
    a = analyze(public_capture("zeek_zeek/dtls13-cid.pcap"), keylog=log)
    assert len(a.dtls_sessions) and all(k.startswith("keys not available") for k in a.dtls_sessions["keys"])


def test_sdes_key_opens_a_third_party_capture():
    """membrane_rtp_plugin's srtp.pcap: AES_CM_128_HMAC_SHA1_80, master key and salt 30 x 'a' (its tests)."""
    path = public_capture("membraneframework_membrane_rtp_plugin/srtp.pcap")
    key = base64.b64encode(b"a" * 30).decode()
    a = analyze(path, srtp_keys=[f"AES_CM_128_HMAC_SHA1_80 inline:{key}"], audio=True)
    plain = analyze(path)
    d = a.decryption
    assert d.decrypted.sum() == 972 and d.auth_failed.sum() == 0  # every packet of the file, 80-bit tags checked
    # the 10-byte tag is gone from every payload
    assert (plain.streams.payload_bytes - a.streams.payload_bytes).tolist() == (10 * a.streams.packets).tolist()
    h264 = next(s for k, s in a.audio_payloads[0].streams.items() if set(s.pt) == {96})
    nal = [(p[0] >> 7, p[0] & 0x1F) for p in h264.payload]
    assert all(f == 0 and t in (1, 5, 7, 8, 24, 28) for f, t in nal)  # H.264 NAL headers (RFC 6184)
    wrong = analyze(path, srtp_keys=[f"inline:{base64.b64encode(b'b' * 30).decode()}"])
    assert wrong.decryption.auth_failed.sum() == 972 and wrong.decryption.decrypted.sum() == 0


def test_sdes_key_for_one_sender_or_ssrc():
    path = public_capture("membraneframework_membrane_rtp_plugin/srtp.pcap")
    key = base64.b64encode(b"a" * 30).decode()
    one = analyze(path, srtp_keys=[f"192.168.83.24:50200=inline:{key}"]).decryption
    assert list(one.sport) == [50200] and one.decrypted.sum() == 812
    by_ssrc = analyze(path, srtp_keys=[f"0x562df298=inline:{key}"]).decryption
    assert list(by_ssrc.ssrc) == [0x562DF298] and by_ssrc.decrypted.sum() == 160


def test_key_specs_are_checked():
    ring = Keyring()
    for bad in ("10.0.0.1=inline:AAAA", "0xZZ=inline:" + base64.b64encode(bytes(30)).decode(), "inline:!!"):
        with pytest.raises(KeyError_):
            ring.add_sdes(bad)


def test_cli_audio_writes_wav_with_the_tone(tmp_path):
    d = CAPTURES / "decrypt-gcm256"
    r = subprocess.run([sys.executable, "-m", "analyzer", "audio", str(d / "call.pcap"), "--keylog",
                        str(d / "keylog.txt"), "--out", str(tmp_path / "wav")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wrote = [line.removeprefix("wrote ") for line in r.stderr.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 2
    tones = []
    for p in wrote:
        with wave.open(p) as w:
            assert w.getframerate() == 48_000 and w.getnchannels() == 1
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        tones.append(np.fft.rfftfreq(x.size, 1 / 48_000)[int(np.argmax(spec[1:])) + 1])
    assert sorted(round(t) for t in tones) == [330, 880]


def test_cli_bad_keys_are_one_line_errors(tmp_path):
    cap = str(CAPTURES / "decrypt-gcm256" / "call.pcap")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    for args in (["--keylog", str(tmp_path / "none.txt")], ["--keylog", str(empty)], ["--srtp-key", "inline:@@"]):
        r = subprocess.run([sys.executable, "-m", "analyzer", "analyze", cap, *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stderr.startswith("callflow: error: ") and len(r.stderr.splitlines()) == 1


def test_g711_decoding_equals_sox(tmp_path):
    """Plain RTP needs no key: SIPp's G.711 A-law stream decoded by us equals sox's decoding of the
    payloads tshark extracts, sample for sample."""
    import shutil

    from tests.conftest import tshark_fields

    if shutil.which("sox") is None:
        pytest.skip("sox not installed (.ci/run installs it)")
    path = public_capture("SIPp_sipp/g711a.pcap")
    rows = tshark_fields(path, ["rtp.seq", "rtp.payload"], display_filter="rtp", extra=["-o", "rtp.heuristic_rtp:TRUE"])
    raw = tmp_path / "a.al"
    by_seq = {}
    for seq, payload in rows:
        by_seq.setdefault(int(seq), bytes.fromhex(payload.replace(":", "")))
    raw.write_bytes(b"".join(by_seq[s] for s in sorted(by_seq)))  # one wrap-free run of sequence numbers
    out = tmp_path / "a.s16"
    subprocess.run(["sox", "-t", "al", "-r", "8000", "-c", "1", str(raw), "-t", "s16", str(out)], check=True)
    ref = np.frombuffer(out.read_bytes(), dtype="<i2")
    a = analyze(path, audio=True)
    wav = a.write_audio(tmp_path / "wav")
    assert len(wav) == 1 and a.audio.codec.tolist() == ["pcm_alaw"]
    with wave.open(str(wav[0])) as w:
        ours = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert ours.size == ref.size == sum(len(p) for p in by_seq.values())  # one sample per A-law byte
    assert np.array_equal(ours, ref)


def test_decrypted_receiver_reports_equal_the_loss_the_capture_shows():
    """captures/decrypt-loss: iptables dropped ~10 % of RTP/RTCP before the loopback (the capture sees
    what the receivers got). Each decrypted RR's cumulative loss equals the gap count of the captured
    packets of that SSRC up to the RR's highest sequence number, among packets captured before the RR."""
    a, truth = keyed("decrypt-loss")
    assert truth["rtp_dropped_by_iptables"] > 0
    assert (a.decryption.auth_failed == 0).all()
    s = a.streams
    assert s.lost.sum() > 0
    rr = a.rtcp_reports
    blocks = rr[rr.source_ssrc.notna() & rr.highest_seq.notna()]
    assert len(blocks) >= 4
    from tests.conftest import tshark_fields

    seqs = {}
    fields = ["frame.number", "rtp.ssrc", "rtp.seq"]
    for frame, ssrc, seq in tshark_fields(CAPTURES / "decrypt-loss" / "call.pcap", fields,
                                          display_filter="rtp && !rtcp", extra=["-o", "rtp.heuristic_rtp:TRUE"]):
        seqs.setdefault(int(ssrc, 16), []).append((int(frame), int(seq)))
    for b in blocks.itertuples(index=False):
        got = [(f, q) for f, q in seqs[int(b.source_ssrc)] if f < b.frame]
        first = got[0][1]
        highest = int(b.highest_seq) & 0xFFFF
        received = {q for f, q in got if first <= q <= highest}  # no wrap in a 4 s call
        assert int(b.cumulative_lost) == (highest - first + 1) - len(received), b
