"""An RTCP sender report keeps its 64-bit NTP timestamp bit for bit (it went through float64 and lost
its low bits) and its RTP timestamp as the integer it is (it was turned into a 1970 datetime)."""

from __future__ import annotations

import struct

from analyzer import analyze
from tests.dissect import stunbuild as sb
from tests.robust.crafted import udp, write

NTP = 0xE0F1A2B3_12345677  # not representable in float64


def test_sender_report_timestamps(tmp_path):
    frames = []
    for i in range(30):
        frames.append(udp("10.0.0.1", 5000, "10.0.0.2", 6000, sb.rtp(i, 160 * i, 0x1111)))
        frames.append(udp("10.0.0.2", 6000, "10.0.0.1", 5000, sb.rtp(i, 160 * i, 0x2222)))
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, 0x1111, NTP, 123456, 50, 8000)
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0x2222)
    frames += [udp("10.0.0.1", 5000, "10.0.0.2", 6000, sr), udp("10.0.0.2", 6000, "10.0.0.1", 5000, rr)]
    a = analyze(write(tmp_path / "sr.pcap", frames))
    r = a.rtcp_reports
    assert r.packet_type.tolist() == ["SR", "RR"]
    assert r.sr_ntp.tolist()[0] == NTP and str(r.sr_ntp.dtype) == "UInt64"
    assert r.sr_rtp_ts.tolist()[0] == 123456 and str(r.sr_rtp_ts.dtype) == "Int64"
