"""OpenVPN recognised from its flow when the capture starts mid-session on another port than 1194."""

from __future__ import annotations

import random
import struct

import pytest

from analyzer import analyze
from analyzer.dissect.openvpn_flow import FlowEvidence, features
from tests.capture.writers import pcap_bytes
from tests.conftest import need_tshark, public_capture, public_captures, tshark_fields

SKIP = 40  # the hard resets and the TLS handshake of openvpn_nohmac: the capture starts after them
T0 = 1_700_000_000_000_000_000


def _frame(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    s, d = (bytes(int(x) for x in a.split(".")) for a in (src, dst))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, s, d)
    return b"\0" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def _write(path, packets) -> None:
    path.write_bytes(pcap_bytes([(T0 + i * 20_000_000, _frame(*p)) for i, p in enumerate(packets)]))


@pytest.fixture(scope="module")
def mid_session(tmp_path_factory):
    """openvpn_nohmac's tunnel from packet 41 on, its server moved from port 1194 to 443."""
    src = public_capture("ntop_nDPI/openvpn_nohmac.pcapng")
    rows = tshark_fields(src, ["ip.src", "ip.dst", "udp.srcport", "udp.dstport", "udp.payload"])
    packets = []
    for s, d, sp, dp, payload in rows[SKIP:]:
        sp, dp = (443 if int(p) == 1194 else int(p) for p in (sp, dp))
        packets.append((s, d, sp, dp, bytes.fromhex(payload)))
    path = tmp_path_factory.mktemp("ovpn") / "mid-session-443.pcap"
    _write(path, packets)
    return path, packets


def test_mid_session_tunnel_on_443_is_named_with_its_evidence(mid_session):
    path, packets = mid_session
    flows = analyze(path).flows
    assert len(flows) == 1
    f = flows.iloc[0]
    assert f.vpn == "openvpn" and f.label == "other" and "VPN tunnel" in f.label_reason
    assert f.packets == len(packets) == 944 - SKIP
    assert "P_DATA_V2 with one peer id 0x00001C" in f.vpn_evidence
    assert "control packets with one session id per direction" in f.vpn_evidence
    assert f.vpn_evidence.endswith("from frame 1 (no hard reset in the capture)")
    # every packet of the tunnel counts toward its per-second rate (the call-following test uses it)
    acc = analyze(path).flow_tables[0].rows()[0]
    assert sum(acc.vpn_seconds.values()) == len(packets)


def test_peer_id_is_the_one_wireshark_decodes(mid_session):
    path, _ = mid_session
    exe = need_tshark()
    assert exe
    peers = {int(p, 0) for (p,) in tshark_fields(path, ["openvpn.peerid"], display_filter="openvpn.peerid",
                                                    extra=["-d", "udp.port==443,openvpn"])}
    assert peers == {0x1C}


def test_without_port_1194_or_a_reset_nothing_else_is_needed_but_structure(mid_session):
    """The same tunnel with only the server's P_DATA_V1 half kept: one byte of structure is not enough."""
    path, packets = mid_session
    v1 = [p for p in packets if p[4][0] >> 3 == 6]
    assert len(v1) > 200
    bare = path.with_name("v1-only.pcap")
    _write(bare, v1)
    assert analyze(bare).flows.vpn.isna().all()


def _flow(payloads, tmp_path, name):
    p = tmp_path / name
    _write(p, [("10.0.0.1", "203.0.113.5", 50000, 443, x) if i % 2 == 0 else
               ("203.0.113.5", "10.0.0.1", 443, 50000, x) for i, x in enumerate(payloads)])
    return analyze(p).flows.iloc[0]


def test_lookalikes_are_not_openvpn(tmp_path):
    rng = random.Random(9)
    # QUIC short headers: fixed bit, header-protected low bits, a constant connection id
    quic = [bytes([0x40 | rng.randrange(32)]) + b"\x8a\x11\x07\x3c" + rng.randbytes(60) for _ in range(200)]
    # TURN ChannelData on channel 0x4812 with G.711-sized frames: bytes 1-3 constant like a peer id
    chan = [struct.pack("!HH", 0x4812, 172) + rng.randbytes(172) for _ in range(200)]
    # DTLS 1.3 records with a connection id and an 8-bit sequence number (0x30-0x37 is P_DATA_V1's range)
    dtls13 = [bytes([0x30 | rng.randrange(8)]) + b"\xc1\xd2\xe3\xf4" + rng.randbytes(40) for _ in range(200)]
    for name, payloads in (("quic", quic), ("channeldata", chan), ("dtls13", dtls13)):
        f = _flow(payloads, tmp_path, f"{name}.pcap")
        assert f.vpn is None or "openvpn" not in f.vpn, name
    # and the positive twin: P_DATA_V2 with one peer id, sizes varying
    real = [bytes([0x48]) + b"\x00\x00\x1c" + rng.randbytes(rng.randrange(40, 1200)) for _ in range(200)]
    assert _flow(real, tmp_path, "data-v2.pcap").vpn == "openvpn"


def test_evidence_needs_enough_packets_and_one_peer():
    import numpy as np

    def feats(payloads):
        buf = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        ln = np.array([len(p) for p in payloads])
        return features(buf, np.r_[0, np.cumsum(ln)[:-1]], ln)

    pkt = bytes([0x48, 0, 0, 0x1C]) + b"\x99" * 60
    ev = FlowEvidence(1)
    ev.add(feats([pkt] * 10), np.ones(10, dtype=bool), np.zeros(10, dtype=np.int64))
    assert ev.verdict() is None  # 10 < MIN_PACKETS
    ev.add(feats([pkt] * 10), np.ones(10, dtype=bool), np.zeros(10, dtype=np.int64))
    assert ev.verdict() is not None
    ev.add(feats([bytes([0x48, 0, 0, 0x1D]) + b"\x99" * 60]), np.ones(1, dtype=bool), np.zeros(1, dtype=np.int64))
    assert ev.excluded and ev.verdict() is None  # a second peer id: not one OpenVPN session


def test_no_flow_level_openvpn_in_captures_without_openvpn():
    from pathlib import Path

    shipped = sorted(Path(__file__).resolve().parents[2].glob("captures/*/*.pcap"))
    for path in [*public_captures(), *shipped]:
        flows = analyze(path).flows
        mid = flows[flows.vpn_evidence.fillna("").str.contains("mid-session")]
        if "openvpn" in path.name:
            continue
        assert mid.empty, (path.name, mid[["src", "sport", "dst", "dport"]].to_dict("records"))


@pytest.mark.parametrize("rate, raised", [(100, True), (10, False)])
def test_call_rate_inside_a_mid_session_openvpn_tunnel_is_media_over_vpn(tmp_path, rate, raised):
    """A laptop whose only traffic is an OpenVPN tunnel on 443 carrying 100 packets/s for 5 s (a call's
    rate) is sending its call through the VPN; at 10 packets/s it is not a call."""
    rng = random.Random(4)
    n = rate * 5
    pkts = []
    for i in range(n):
        payload = bytes([0x48]) + b"\x00\x00\x1c" + rng.randbytes(rng.randrange(80, 200))
        pkts.append(("192.168.1.10", "203.0.113.5", 50000, 443, payload) if i % 2 == 0 else
                    ("203.0.113.5", "192.168.1.10", 443, 50000, payload))
    path = tmp_path / "tunnel.pcap"
    path.write_bytes(pcap_bytes([(T0 + i * (1_000_000_000 // rate), _frame(*p)) for i, p in enumerate(pkts)]))
    a = analyze(path)
    f = a.findings[a.findings.code == "media-over-vpn"]
    assert len(f) == int(raised)
    if raised:
        ev = f.iloc[0].evidence
        assert ev.startswith("192.168.1.10:50000 -> 203.0.113.5:443 (openvpn): 5 s at a call's packet rate")
        assert "the tunnel: " in ev and "P_DATA_V2 with one peer id 0x00001C" in ev
        assert f.iloc[0].severity == "error"
