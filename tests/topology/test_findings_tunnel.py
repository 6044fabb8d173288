"""A VPN tunnel's packet rate is no call: without a call in view it makes at most an info finding, and
only when the rate has a call's shape (steady, sustained, audio-sized packets)."""

from __future__ import annotations

import os

import pandas as pd

from analyzer import analyze
from tests.conftest import public_capture, tshark_fields
from tests.topology.builder import CallBuilder

V, GW = ("192.168.2.10", 47640), ("198.51.100.3", 51820)


def wg_data(size: int) -> bytes:
    return b"\x04\x00\x00\x00" + os.urandom(size - 4)


def tunnel(tmp_path, rates: list[int], size: int = 176, name="wg.pcap"):
    """A WireGuard handshake, then `rates[i]` data packets in second i, split both ways."""
    cb = CallBuilder()
    cb.udp(V, GW, b"\x01\x00\x00\x00" + os.urandom(144))
    cb.udp(GW, V, b"\x02\x00\x00\x00" + os.urandom(88))
    for n in rates:
        start = cb.now
        for i in range(n):
            cb.udp(*((V, GW) if i % 2 else (GW, V)), wg_data(size), dt_ms=0)
            cb.now = start + int((i + 1) * 1e9 / n) - 1
        cb.now = start + 1_000_000_000
    p = tmp_path / name
    cb.write(p)
    return analyze(p)


def test_steady_audio_rate_in_a_tunnel_is_an_info_finding_without_a_call(tmp_path):
    a = tunnel(tmp_path, [100] * 6)
    assert len(a.calls) == 0
    (f,) = a.findings.itertuples()
    assert (f.code, f.severity, f.frames) == ("vpn-call-like-traffic", "info", [1]) and f.call is pd.NA
    assert "6 consecutive seconds of 100-102 packets/s, mean packet 218 bytes" in f.evidence  # +2: the handshake


def test_bursts_short_runs_or_big_packets_are_not_a_call(tmp_path):
    assert len(tunnel(tmp_path, [300, 60, 90, 45, 5, 3], name="bursts.pcap").findings) == 0  # not steady
    assert len(tunnel(tmp_path, [100, 100, 5, 100, 100], name="short.pcap").findings) == 0  # not sustained
    assert len(tunnel(tmp_path, [100] * 6, size=1200, name="bulk.pcap").findings) == 0  # not audio-sized


def test_openvpn_captures_hold_no_call():
    """ntop_nDPI/openvpn.pcap and openvpn_nohmac.pcapng: OpenVPN only (tshark finds no RTP, STUN or
    DTLS in them); their bursts (65 and 81 packets in two seconds; 208, 68, 97, 80) are no call's rate."""
    for rel in ("ntop_nDPI/openvpn.pcap", "ntop_nDPI/openvpn_nohmac.pcapng"):
        path = public_capture(rel)
        assert not tshark_fields(path, ["frame.number"], display_filter="rtp or stun or dtls or rtcp")
        a = analyze(path)
        assert len(a.calls) == 0
        assert not set(a.findings.code) & {"media-over-vpn", "vpn-call-like-traffic"}
