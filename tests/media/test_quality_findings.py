"""Issue 16: quality findings (poor-media, media-gap, high-rtt, far-end-not-receiving) with their frames,
each fired by its evidence and silent without it; and a clean call raises none."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scapy.all import UDP, rdpcap, wrpcap

from analyzer import analyze
from analyzer.media import quality as Q
from tests.capture.writers import pcap_bytes
from tests.conftest import CAPTURES, REPO, public_captures
from tests.media.test_calls import udp
from tests.media.test_streams import rtp_packet

QUALITY = {"poor-media", "media-gap", "high-rtt", "far-end-not-receiving"}
A, B = ("10.1.0.11", 50010), ("203.0.113.9", 61000)
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def quality(a) -> pd.DataFrame:
    f = a.findings
    return f[f.code.isin(QUALITY)].reset_index(drop=True)


def is_rtp(payload: bytes) -> bool:
    """RFC 7983 / 5761: first byte 128-191 and a second byte outside the RTCP packet types."""
    return len(payload) >= 12 and 128 <= payload[0] <= 191 and not 192 <= payload[1] <= 223


def test_dropping_a_quarter_of_the_rtp_raises_poor_media_with_its_frames(tmp_path):
    """Issue 16: 25 % of the RTP dropped from captures/external-direct/client-a.pcap printed 'no findings'."""
    pkts = rdpcap(str(CAPTURES / "external-direct" / "client-a.pcap"))
    rtp_i = [i for i, p in enumerate(pkts) if UDP in p and is_rtp(bytes(p[UDP].payload))]
    rng = np.random.default_rng(16)
    drop = set(rng.choice(rtp_i, len(rtp_i) // 4, replace=False).tolist())
    out = tmp_path / "client-a-25.pcap"
    wrpcap(str(out), [p for i, p in enumerate(pkts) if i not in drop])
    a = analyze(out)
    st = a.streams
    assert len(st) == 2 and (st.loss_pct > 15).all()
    q = quality(a)
    poor = q[q.code == "poor-media"]
    assert len(poor) == 2 and set(poor.severity) == {"warning"} and (poor.call == 0).all()
    rtp_frames = set()
    kept = [p for i, p in enumerate(pkts) if i not in drop]
    for n, p in enumerate(kept, start=1):
        if UDP in p and is_rtp(bytes(p[UDP].payload)):
            rtp_frames.add(n)
    for f in poor.itertuples():
        assert f.frames and set(f.frames) <= rtp_frames  # the worst seconds' first and last RTP frames
        assert "worst seconds" in f.evidence and " UTC (loss " in f.evidence
        if f.title.endswith("203.0.113.2"):  # the far end's stream: lost on the way to the capture point
            assert "lost before the capture point (between the sender 203.0.113.2 and it)" in f.evidence
        else:  # the capture host's own stream: missing from its own capture, not network loss
            assert "missing in the sender's own capture" in f.evidence
        assert "receiver's view is absent" in f.evidence  # SRTCP: the far end's reports are encrypted
    assert (st.poor == True).all() and (st.mos < Q.POOR_MOS).all()  # noqa: E712
    assert set(q.code) == {"poor-media"}
    # the HTML timeline shades the worst seconds; the console lists the finding and exits 0
    marks = [x for x in a.timeline().layout.annotations if x.text == "worst second"]
    assert 2 <= len(marks) <= 6
    run = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", "-v", str(out)], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},  # wide enough that no header wraps (80 columns: test_console_width)
    )
    assert run.returncode == 0 and run.stdout.count("poor-media") == 2
    assert all(h in run.stdout for h in ("loss %", "jitter (ms)", "RTT (ms)", "MOS"))


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(CAPTURES.glob("*/*.pcap*")) if p.parent.name != "decrypt-loss"]  # 10 % dropped on purpose
    + list(public_captures()),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_clean_calls_raise_no_quality_finding(path):
    assert quality(analyze(path)).empty


def pcmu_capture(path, *, n=500, drop=(), gap=None, rtcp=()):
    """A PCMU stream A -> B, 20 ms apart; drop: packet numbers lost; gap: (first packet, seconds) sent late
    by that much from then on; rtcp: (ts_ns, src, dst, bytes) added. Returns the frame of each packet k."""
    events = []
    shift = 0
    for k in range(n):
        if gap and k == gap[0]:
            shift = int(gap[1] * 1e9)
        if k in drop:
            continue
        events.append((T0 + k * 20 * MS + shift, A, B, rtp_packet(k, 160 * (k + shift // (20 * MS)), 0xA0A)))
    events += list(rtcp)
    events.sort(key=lambda e: e[0])
    path.write_bytes(pcap_bytes([(t, udp(s, d, p)) for t, s, d, p in events]))
    return events


def test_media_gap_cites_the_frames_around_it(tmp_path):
    p = tmp_path / "gap.pcap"
    ev = pcmu_capture(p, gap=(200, 1.5))
    f = quality(analyze(p))
    assert list(f.code) == ["media-gap"]
    before = next(i for i, e in enumerate(ev, start=1) if struct.unpack("!H", e[3][2:4])[0] == 199)
    assert f.frames[0] == [before, before + 1]
    # evidence missing: a gap of 0.9 s is no finding
    pcmu_capture(p, gap=(200, 0.88))
    assert quality(analyze(p)).empty


def test_short_stream_with_heavy_loss_gets_no_score(tmp_path):
    p = tmp_path / "short.pcap"
    pcmu_capture(p, n=40, drop=set(range(0, 40, 3)))
    s = analyze(p).streams.iloc[0]
    assert s.loss_pct > 30 and pd.isna(s.poor) and pd.isna(s.mos)
    assert quality(analyze(p)).empty


def sr(ssrc: int, ntp: int) -> bytes:
    return struct.pack("!BBHIQIII", 0x80, 200, 6, ssrc, ntp, 16000, 100, 16000)


def rr(reporter: int, about: int, fraction: float, cum: int, lsr: int = 0, dlsr: int = 0) -> bytes:
    block = struct.pack("!IB3sIIII", about, int(fraction * 256), cum.to_bytes(3, "big"), 100, 40, lsr, dlsr)
    return struct.pack("!BBHI", 0x81, 201, 7, reporter) + block


def test_far_end_reports_heavy_loss_after_the_capture_point(tmp_path):
    """The capture (at A) sees every packet sent; B's receiver reports say 30 % lost: downstream loss."""
    p = tmp_path / "far.pcap"
    reports = [(T0 + (k + 1) * 2000 * MS, B, A, rr(0xB0B, 0xA0A, 0.3, 30 * (k + 1))) for k in range(4)]
    ev = pcmu_capture(p, rtcp=reports)
    a = analyze(p)
    f = quality(a)
    assert list(f.code) == ["poor-media"] and f.severity[0] == "warning"
    assert "lost after the capture point" in f.evidence[0] and "between it and 203.0.113.9" in f.evidence[0]
    assert "24.0 %" in f.evidence[0]  # 120 cumulative lost of 500 sent
    rr_frames = [i for i, e in enumerate(ev, start=1) if e[1] == B]
    assert f.frames[0] == [rr_frames[-1]]  # nothing lost at the capture point: the report is the evidence
    # evidence missing: the same stream without the reports
    pcmu_capture(p)
    assert quality(analyze(p)).empty


def test_far_end_not_receiving(tmp_path):
    p = tmp_path / "deaf.pcap"
    lost_all = [(T0 + (k + 1) * 2000 * MS, B, A, rr(0xB0B, 0xA0A, 0.98, 95 * (k + 1))) for k in range(4)]
    ev = pcmu_capture(p, rtcp=lost_all)
    f = quality(analyze(p))
    deaf = f[f.code == "far-end-not-receiving"]
    assert len(deaf) == 1 and deaf.severity.iloc[0] == "error"
    rr_frames = [i for i, e in enumerate(ev, start=1) if e[1] == B]
    assert set(rr_frames[-4:]) <= set(deaf.frames.iloc[0]) and 1 in deaf.frames.iloc[0]
    # B keeps reporting, never about our SSRC
    other = [(T0 + (k + 1) * 2000 * MS, B, A, rr(0xB0B, 0xC0C, 0.0, 0)) for k in range(4)]
    pcmu_capture(p, rtcp=other)
    deaf = quality(analyze(p))
    assert list(deaf.code) == ["far-end-not-receiving"] and "never reports" in deaf.title.iloc[0]
    # evidence missing: one report only, or none
    pcmu_capture(p, rtcp=other[:1])
    assert quality(analyze(p)).empty


def test_high_rtt_from_rtcp_sr_and_rr(tmp_path):
    """A sends an SR, B answers 650 ms later with DLSR 50 ms: RTT 600 ms (RFC 3550 6.4.1)."""
    p = tmp_path / "rtt.pcap"
    ntp = (3_900_000_000 << 32) | (1 << 31)
    mid = (ntp >> 16) & 0xFFFFFFFF
    rtcp = []
    for k in range(3):
        t = T0 + (1 + 2 * k) * 1000 * MS
        rtcp.append((t, A, B, sr(0xA0A, ntp + (k << 32))))
        rtcp.append((t + 650 * MS, B, A, rr(0xB0B, 0xA0A, 0.0, 0, (mid + (k << 16)) & 0xFFFFFFFF, int(0.05 * 65536))))
    ev = pcmu_capture(p, rtcp=rtcp)
    a = analyze(p)
    rt = a.round_trips
    assert (rt.source == "rtcp").sum() == 3 and rt.rtt_ms.round(1).tolist() == [600.0] * 3
    f = quality(a)
    assert "high-rtt" in set(f.code)
    h = f[f.code == "high-rtt"].iloc[0]
    rr_frames = [i for i, e in enumerate(ev, start=1) if e[1] == B]
    assert set(h.frames) == set(rr_frames) and "600 ms" in h.title
    assert a.streams.iloc[0].poor_rtt  # and the stream's own flag
