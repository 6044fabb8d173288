"""one-way-media on what the silent side still sends: RTCP (SR/RR, transport-cc) or DTLS application
data (SCTP, the data channel) from it mean the path works both ways and the far end is not sending."""

from __future__ import annotations

import struct

from analyzer import analyze
from tests.dissect import stunbuild as sb
from tests.dissect.test_dtls import rec
from tests.topology.builder import CallBuilder

A, B = ("10.1.0.11", 50000), ("203.0.113.9", 61000)


def receiver_report() -> bytes:
    """RR from SSRC 0x2222 about 0x1111, then a transport-cc feedback (RTPFB, PT 205, FMT 15)."""
    rr = struct.pack(">BBHI", 0x81, 201, 7, 0x2222) + struct.pack(">IIIIII", 0x1111, 0, 120, 0, 0, 0)
    twcc_body = struct.pack(">IIHHIHH", 0x2222, 0x1111, 0, 1, 0x000100, 0x2001, 0x0400)
    twcc = struct.pack(">BBH", 0x80 | 15, 205, len(twcc_body) // 4) + twcc_body
    return rr + twcc


def one_way_call(tmp_path, *, rtcp: bool, app_data: bool):
    cb = CallBuilder()
    cb.check(A, B, "bb", "aa", nominate=True)
    cb.check(B, A, "aa", "bb", role="controlled")
    back = []
    for i in range(200):  # 4 s of audio A -> B; B sends no RTP
        cb.udp(A, B, sb.rtp(i, 960 * i, 0x1111), dt_ms=20)
        if i % 25 == 12:
            if rtcp:
                cb.udp(B, A, receiver_report(), dt_ms=0)
                back.append(len(cb.frames))
            if app_data:
                cb.udp(B, A, rec(23, bytes(48), epoch=1, seq=i), dt_ms=0)
                back.append(len(cb.frames))
    p = tmp_path / "oneway.pcap"
    cb.write(p)
    return analyze(p), back


def test_silent_side_that_sends_rtcp_and_data_channel_is_not_a_blocked_path(tmp_path):
    a, back = one_way_call(tmp_path, rtcp=True, app_data=True)
    (f,) = a.findings[a.findings.code == "one-way-media"].itertuples()
    assert f.severity == "warning" and f.call == 0
    assert "the path works both ways" in f.title
    assert "firewall" not in f.explanation and "muted, receive-only, or an SFU" in f.explanation
    assert "RTCP packets (RR)" in f.evidence and "DTLS application data records" in f.evidence
    # B's own packets during the silence (up to 10), and A's media: its first and last frame
    st = a.streams.iloc[0]
    assert (st.src, st.first_frame) == ("10.1.0.11", 5)  # the four check frames come first
    assert f.frames == sorted([*back[:10], 5, int(st.last_frame)])


def test_rtcp_alone_is_enough(tmp_path):
    a, back = one_way_call(tmp_path, rtcp=True, app_data=False)
    (f,) = a.findings[a.findings.code == "one-way-media"].itertuples()
    assert f.severity == "warning" and set(back[:10]) <= set(f.frames)


def test_nothing_back_is_still_an_error_with_the_media_frames(tmp_path):
    a, _ = one_way_call(tmp_path, rtcp=False, app_data=False)
    (f,) = a.findings[a.findings.code == "one-way-media"].itertuples()
    assert f.severity == "error" and "no RTCP or DTLS from 203.0.113.9" in f.evidence
    st = a.streams.iloc[0]
    assert f.frames == [int(st.first_frame), int(st.last_frame)]
