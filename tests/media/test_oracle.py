"""Streams against Wireshark: packets, lost and max jitter per SSRC agree with `tshark -q -z rtp,streams`
(RTP heuristics on, so RTP on any port and inside STUN Data indications is found) within 1 %.

Where the numbers cannot be compared the specification says why, and the test checks what can be:
- tshark computes jitter only when it knows the clock rate: static payload types (RFC 3551) or a
  dynamic one named in SDP. For a dynamic payload type without SDP it prints 0. There the oracle is
  RFC 3550 A.8 applied one packet at a time to tshark's own per-packet fields (arrival time, RTP
  timestamp) with the clock rate we inferred, which must also be the one the timestamps imply.
- tshark counts sequence cycles with a heuristic that misses a wrap when the packet numbered 65535 (or
  0) is lost, and then prints a large negative loss; RFC 3550 A.1 extends sequence numbers by their
  distance modulo 2^16 (test_loss_at_the_wrap_where_tshark_miscounts_cycles). The benchmark capture
  (`python -m analyzer.bench`) shows it on two of its four streams.
- tshark lists a relayed stream under the wire 5-tuple (client <-> relay); we key it by the inner one
  and keep the wire one beside it: the comparison goes by SSRC.
"""

from __future__ import annotations

import struct
import subprocess

import pandas as pd
import pytest

from analyzer import analyze
from analyzer.media.assemble import MIN_JITTER_PACKETS
from tests.capture.writers import pcap_bytes
from tests.conftest import need_tshark, public_capture, tshark_fields

CAPTURES = [
    "SIPp_sipp/g711a.pcap",
    "membraneframework_membrane_rtp_plugin/demo_rtp.pcap",
    "membraneframework_membrane_rtp_plugin/srtp.pcap",
    "ntop_nDPI/stun.pcap",
    "ntop_nDPI/stun_dtls_rtp.pcapng",
    "ntop_nDPI/sip.pcap",
]
HEUR = ["-o", "rtp.heuristic_rtp:TRUE"]


def tshark_streams(path) -> dict[int, dict]:
    """SSRC -> packets, lost, max jitter (ms), payload name, from `tshark -z rtp,streams`."""
    exe = need_tshark()
    out = subprocess.run([exe, "-n", "-q", "-r", str(path), *HEUR, "-z", "rtp,streams"], capture_output=True,
                         text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        tok = line.split()
        if len(tok) < 17 or not tok[6].startswith("0x"):
            continue
        got[int(tok[6], 16)] = {"packets": int(tok[8]), "lost": int(tok[9]), "payload": tok[7],
                                "jitter_max": float(tok[16])}
    return got


def a8_from_tshark(path, ssrc: int, rate: int) -> float:
    """Max of RFC 3550 A.8 jitter (ms) over tshark's per-packet arrival times and RTP timestamps."""
    rows = tshark_fields(path, ["frame.time_epoch", "rtp.timestamp"], display_filter=f"rtp.ssrc == {ssrc:#x}",
                         extra=HEUR)
    j, jmax, prev = 0.0, 0.0, None
    for t, ts in rows:
        cur = (float(t), int(ts))
        if prev is not None:
            dts = ((cur[1] - prev[1] + (1 << 31)) % (1 << 32)) - (1 << 31)
            d = (cur[0] - prev[0]) * rate - dts
            j += (abs(d) - j) / 16
            jmax = max(jmax, j)
        prev = cur
    return jmax / rate * 1000.0


@pytest.mark.parametrize("rel", CAPTURES)
def test_packets_lost_and_jitter_match_tshark(rel):
    path = public_capture(rel)
    ref = tshark_streams(path)
    ours = analyze(path).streams
    assert len(ref) > 0 and set(ours.ssrc) == set(ref)
    for ssrc, t in ref.items():
        rows = ours[ours.ssrc == ssrc]
        packets, lost = int(rows.packets.sum()), int(rows.lost.sum())
        assert packets == pytest.approx(t["packets"], rel=0.01), hex(ssrc)
        assert lost == pytest.approx(t["lost"], abs=max(1, 0.01 * t["packets"])), hex(ssrc)
        s = rows.iloc[0]
        if s.packets < MIN_JITTER_PACKETS:  # too short for the A.8 filter: absent, not a guess
            assert pd.isna(s.jitter_ms_max) and pd.isna(s.mos), hex(ssrc)
        elif not t["payload"].startswith("RTPType-"):  # tshark knew the clock rate
            assert s.jitter_ms_max == pytest.approx(t["jitter_max"], rel=0.01, abs=0.002), hex(ssrc)
        else:
            assert t["jitter_max"] == 0.0  # no clock rate, no jitter in tshark
            assert s.jitter_ms_max == pytest.approx(a8_from_tshark(path, ssrc, int(s.clock_rate)), rel=0.01,
                                                    abs=0.002), hex(ssrc)


def test_static_payload_types_give_the_numbers_printed_by_tshark():
    """The G.711 call of SIPp, to the digits tshark prints: 236 packets, 0 lost, max jitter 0.829 ms."""
    s = analyze(public_capture("SIPp_sipp/g711a.pcap")).streams.iloc[0]
    assert (s.ssrc, s.packets, s.lost, s.payload_type, s.clock_rate) == (0xDEE0EE8F, 236, 0, 8, 8000)
    assert round(s.jitter_ms_max, 3) == 0.829 and s.kind == "audio" and not s.srtp


def test_relayed_rtp_in_data_indications_matches_tshark_by_ssrc():
    path = public_capture("ntop_nDPI/stun_dtls_rtp.pcapng")
    s = analyze(path).streams.set_index("ssrc")
    r = s.loc[0x321D28BB]
    assert bool(r.relayed) and r.channel == -1 and r.packets == 9
    assert (r.wire_src, r.wire_sport, r.wire_dst, r.wire_dport) == ("142.250.82.249", 3478, "192.168.12.182", 50221)
    assert (r.src, r.sport, r.dst, r.dport) == ("10.13.0.50", 1259, "10.13.0.62", 15530)
    assert r.srtp and r.srtp_profile == "SRTP_AES128_CM_HMAC_SHA1_80"
    direct = s.loc[0x6D1C3CFA]
    assert direct.clock_rate == 48000 and direct.kind == "audio" and direct.srtp_profile == "SRTP_AEAD_AES_256_GCM"


def test_dynamic_clock_rates_fit_the_timestamps():
    s = analyze(public_capture("membraneframework_membrane_rtp_plugin/demo_rtp.pcap")).streams.set_index("ssrc")
    v = s.loc[0x27F8205F]
    assert v.clock_rate == 90000 and v.kind == "video" and bool(v.clock_rate_fit)
    assert v.video_frames == v.markers and v.video_frames > 0


def _udp_frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, src, dst)
    return b"\0" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def test_loss_at_the_wrap_where_tshark_miscounts_cycles(tmp_path):
    """A stream from sequence 0 that loses packet 65535: tshark's wrap detection waits for 65535 -> 0 and
    misses the cycle (its source calls the heuristic imprecise), so it prints a loss of about -65,000.
    RFC 3550 A.1 extends the sequence number by its distance modulo 2^16: 3 expected packets are lost."""
    lost = {65535, 100, 200}
    src, dst = bytes([10, 1, 0, 5]), bytes([10, 1, 0, 6])
    frames = []
    for k in range(66_000):
        if k in lost:
            continue
        rtp = struct.pack("!BBHII", 0x80, 0, k & 0xFFFF, (160 * k) & 0xFFFFFFFF, 0x5EED) + b"\xd5" * 4
        frames.append((1_700_000_000_000_000_000 + k * 20_000_000, _udp_frame(src, dst, 40000, 40002, rtp)))
    path = tmp_path / "wrap.pcap"
    path.write_bytes(pcap_bytes(frames))
    s = analyze(path).streams.iloc[0]
    assert (s.packets, s.expected, s.lost) == (65_997, 66_000, 3)
    t = tshark_streams(path)[0x5EED]
    assert t["packets"] == 65_997 and t["lost"] < -60_000


def test_loss_runs_match_tshark_sequence_numbers(tmp_path):
    """Loss runs of 1, 3, 7 and 2 packets and one packet late by one: the holes read from tshark's own
    per-packet `rtp.seq` (each forward jump of the highest number so far, as Wireshark's sequence errors)
    are those runs plus the hole the late packet opened and filled itself; loss_events leaves that one out,
    and tshark's lost equals ours."""
    lost = {50, 120, 121, 122, 300, 301, 302, 303, 304, 305, 306, 480, 481}
    order = [k for k in range(600) if k not in lost]
    order[200], order[201] = order[201], order[200]  # one packet late by one
    src, dst = bytes([10, 1, 0, 5]), bytes([10, 1, 0, 6])
    frames = []
    for i, k in enumerate(order):
        rtp = struct.pack("!BBHII", 0x80, 0, k, 160 * k, 0xB0B0) + b"\xd5" * 160
        frames.append((1_700_000_000_000_000_000 + i * 20_000_000, _udp_frame(src, dst, 40000, 40002, rtp)))
    path = tmp_path / "runs.pcap"
    path.write_bytes(pcap_bytes(frames))
    seqs = [int(s) for (s,) in tshark_fields(path, ["rtp.seq"], display_filter="rtp.ssrc == 0xb0b0", extra=HEUR)]
    assert len(seqs) == len(order)
    holes, top = [], seqs[0]
    for q in seqs[1:]:
        if q > top + 1:
            holes.append(q - top - 1)
        top = max(top, q)
    assert holes == [1, 3, 1, 7, 2]
    s = analyze(path).streams.iloc[0]
    assert (s.loss_events, s.loss_burst_max, s.lost, s.out_of_order) == (len(holes) - 1, max(holes), 13, 1)
    assert tshark_streams(path)[0xB0B0]["lost"] == s.lost
    assert s.burst_ratio == pytest.approx(1 / (4 / len(order) + 4 / 13))
