"""The media stage inside analyze(): relayed streams with both 5-tuples, per-direction one-way media and
asymmetric paths, kind from MS-SERVICE-QUALITY, and the shipped loopback call (Opus, DTLS-SRTP)."""

from __future__ import annotations

import json

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from analyzer import analyze
from tests.capture.writers import pcap_bytes
from tests.conftest import CAPTURES
from tests.dissect import stunbuild as sb

CLIENT, SERVER, RELAY, PEER = ("10.1.0.11", 50000), ("52.112.1.2", 3478), ("52.112.1.2", 49152), ("203.0.113.9", 61000)
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def udp(src, dst, payload) -> bytes:
    return bytes(Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload)


def call_capture(tmp_path, *, peer_stops_after_s: float = 4.0) -> str:
    """Client -> peer relayed through a TURN channel for 10 s; peer -> client direct, stopping early."""
    tids = [bytes([i]) * 12 for i in range(1, 4)]
    pk = [
        (0, udp(CLIENT, SERVER, sb.message("Allocate", "request", [sb.attr(0x0019, b"\x11\0\0\0")], tids[0]))),
        (1, udp(SERVER, CLIENT, sb.message("Allocate", "success", [sb.xor_addr(0x0016, *RELAY, tids[0])], tids[0]))),
        (2, udp(CLIENT, SERVER, sb.message("ChannelBind", "request", [
            sb.attr(0x000C, b"\x40\x01\0\0"), sb.xor_addr(0x0012, *PEER, tids[1]),
            sb.attr(0x8055, b"\x00\x01\x00\x00")], tids[1]))),  # MS-SERVICE-QUALITY: audio
        (3, udp(SERVER, CLIENT, sb.message("ChannelBind", "success", [], tids[1]))),
    ]
    t = [T0 + i * MS for i, _ in pk]
    frames = [p for _, p in pk]
    for k in range(500):  # 10 s at 50 packets/s, relayed
        t.append(T0 + 10 * MS + k * 20 * MS)
        frames.append(udp(CLIENT, SERVER, sb.channeldata(0x4001, sb.rtp(k, 960 * k, 0xC11E, pt=111))))
    for k in range(int(peer_stops_after_s * 50)):  # direct, from the peer
        t.append(T0 + 15 * MS + k * 20 * MS)
        frames.append(udp(PEER, CLIENT, sb.rtp(1000 + k, 960 * k, 0x9EE2, pt=111)))
    order = sorted(range(len(t)), key=lambda i: t[i])
    p = tmp_path / "call.pcap"
    p.write_bytes(pcap_bytes([(t[i], frames[i]) for i in order]))
    return str(p)


def test_relayed_stream_keeps_both_five_tuples_and_channel(tmp_path):
    a = analyze(call_capture(tmp_path))
    s = a.streams.set_index("ssrc")
    r = s.loc[0xC11E]
    assert bool(r.relayed) and r.channel == 0x4001 and r.packets == 500 and r.lost == 0
    assert (r.src, r.sport, r.dst, r.dport) == (*RELAY, *PEER)
    assert (r.wire_src, r.wire_sport, r.wire_dst, r.wire_dport) == (*CLIENT, *SERVER)
    assert r.kind == "audio" and r.kind_rule.startswith("MS-SERVICE-QUALITY stream type 1")
    d = s.loc[0x9EE2]
    assert not bool(d.relayed) and (d.src, d.sport, d.dst, d.dport) == (*PEER, *CLIENT)
    assert d.clock_rate == 48000 and d.kind == "audio"
    assert r.first_frame == 5  # Wireshark's numbering: after the four STUN messages


def test_one_way_media_and_asymmetric_path(tmp_path):
    a = analyze(call_capture(tmp_path))
    dirs = a.media_directions
    assert len(dirs) == 2 and set(dirs.conversation) == {0}
    out = dirs[dirs.sender == CLIENT[0]].iloc[0]
    back = dirs[dirs.sender == PEER[0]].iloc[0]
    assert (out.receiver, out.receiver_port, out.path, out.reverse_path) == (*PEER, "relayed", "direct")
    assert bool(out.asymmetric) and bool(back.asymmetric)
    assert not bool(out.one_way) and bool(back.one_way)
    assert 5.9 < back.silent_s < 6.1  # the peer stops at 4 s, the client goes on until 10 s
    iv = back.silent_intervals[0]
    assert iv["end_ts_ns"] == a.streams.set_index("ssrc").loc[0xC11E].last_ts_ns


def test_both_directions_flowing_is_not_one_way(tmp_path):
    a = analyze(call_capture(tmp_path, peer_stops_after_s=9.0))
    assert not a.media_directions.one_way.any()


def test_loopback_call_two_opus_streams_over_dtls_srtp():
    path = CAPTURES / "loopback-call" / "call.pcap"
    truth = json.loads((CAPTURES / "loopback-call" / "truth.json").read_text())
    a = analyze(path)
    s = a.streams
    assert len(s) == 2 and set(s.payload_type) == {96}
    assert set(s.clock_rate) == {48000} and set(s.kind) == {"audio"}
    assert all(s.srtp) and set(s.srtp_profile) == {"SRTP_AEAD_AES_256_GCM"}
    assert (s.packets == 198).all() and (s.lost == 0).all() and (s.duplicates == 0).all()
    # both peers report 195 frames decoded: the capture holds every packet sent, a few not yet played out
    assert all(s.packets >= truth["frames_received"]["a"])
    assert set(zip(s.src, s.sport, s.dport, strict=True)) == {("192.0.2.2", 35780, 39497),
                                                                ("192.0.2.2", 39497, 35780)}
    assert (s.dtls_to_media_ms > 0).all() and (s.dtls_to_media_ms < 50).all()
    assert (s.jitter_ms_max < 5).all() and (s.mos > 4.3).all()
    assert list(a.media_directions.one_way) == [False, False]
    rep = a.rtcp_reports
    assert len(rep) > 0 and rep.srtcp.all() and rep.encrypted.all()  # SRTCP: only the first 8 bytes are clear
    ts = a.media_timeseries
    assert ts.groupby("stream").packets.sum().tolist() == [198, 198]
