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
    # KCP segments: a 4-byte little-endian session id opens every one, both ways (0x4B: opcode 9)
    kcp = [struct.pack("<IBBHII", 0x7A3C154B, 81, 0, 128, i, i) + rng.randbytes(rng.randrange(20, 200))
           for i in range(200)]
    short_text = [b"KEEPALIVE\n"] * 60  # text shorter than the 12 bytes looked at
    for name, payloads in (("quic", quic), ("channeldata", chan), ("dtls13", dtls13), ("kcp", kcp),
                           ("keepalive", short_text)):
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
    both = np.arange(10) % 2 == 0
    ev = FlowEvidence(1)
    ev.add(feats([pkt] * 10), both, np.zeros(10, dtype=np.int64), np.zeros(10, dtype=bool))
    assert ev.verdict() is None  # 10 < MIN_PACKETS
    ev.add(feats([pkt] * 10), both, np.zeros(10, dtype=np.int64), np.zeros(10, dtype=bool))
    assert ev.verdict() is not None
    one_way = FlowEvidence(1)
    one_way.add(feats([pkt] * 20), np.ones(20, dtype=bool), np.zeros(20, dtype=np.int64), np.zeros(20, dtype=bool))
    assert one_way.verdict() is None  # a tunnel carries data both ways
    ev.add(feats([bytes([0x48, 0, 0, 0x1D]) + b"\x99" * 60]), np.ones(1, dtype=bool), np.zeros(1, dtype=np.int64),
           np.zeros(1, dtype=bool))
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
def test_call_rate_inside_a_mid_session_openvpn_tunnel_may_be_media(tmp_path, rate, raised):
    """A laptop whose only traffic is an OpenVPN tunnel on 443 carrying 100 packets/s for 5 s (a call's
    steady rate, audio-sized packets): no call is in view, so at most an info finding that media may be
    inside (issue 14: the rate alone invents no call and no error); at 10 packets/s it is not a call."""
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
    assert len(a.calls) == 0 and "media-over-vpn" not in set(a.findings.code)
    f = a.findings[a.findings.code == "vpn-call-like-traffic"]
    assert len(f) == int(raised)
    if raised:
        ev = f.iloc[0].evidence
        assert ev.startswith("192.168.1.10:50000 -> 203.0.113.5:443 (openvpn): 5 consecutive seconds of 100-100")
        assert "the tunnel: " in ev and "P_DATA_V2 with one peer id 0x00001C" in ev
        assert f.iloc[0].severity == "info"


def test_text_that_opens_like_p_data_v2_is_not_openvpn(tmp_path):
    """SSDP answers and searches, SIP requests: 'H', 'M', 'N', 'O' read as opcode 9 and a fixed keyword as
    one peer id. Both ways, as a SIP dialog or an SSDP exchange would be."""
    ssdp = [b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nST: upnp:rootdevice\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n"]
    sip = [b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\n\r\n",
           b"NOTIFY sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5\r\n\r\n"]
    for name, pair in (("ssdp", ssdp), ("sip", sip)):
        f = _flow([pair[i % 2] for i in range(60)], tmp_path, f"{name}.pcap")
        assert f.vpn is None, name


@pytest.mark.parametrize("first", ["concentrator", "laptop"])
def test_tunnel_ends_on_an_unusual_port(tmp_path, first):
    """OpenVPN on 1197 (neither 443 nor 1194): the laptop on the private address is the VPN user, the
    public end the concentrator, whoever spoke first."""
    from analyzer.api import _zones

    rng = random.Random(6)
    pkts = []
    for i in range(400):
        payload = bytes([0x48]) + b"\x00\x00\x1c" + rng.randbytes(rng.randrange(80, 200))
        down = ("203.0.113.5", "192.168.1.10", 1197, 50000, payload)
        up = ("192.168.1.10", "203.0.113.5", 50000, 1197, payload)
        leader, other = (down, up) if first == "concentrator" else (up, down)
        pkts.append(leader if i % 2 == 0 else other)
    path = tmp_path / "tunnel-1197.pcap"
    path.write_bytes(pcap_bytes([(T0 + i * 10_000_000, _frame(*p)) for i, p in enumerate(pkts)]))
    a = analyze(path)
    (t,) = _zones(a).tunnels
    assert (t.client, t.server) == (("192.168.1.10", 50000), ("203.0.113.5", 1197))
    f = a.findings[a.findings.code == "vpn-call-like-traffic"].iloc[0]  # no call in view: info at most
    assert f.evidence.startswith("192.168.1.10:50000 -> 203.0.113.5:1197 (openvpn)")


def test_a_reset_later_in_the_flow_keeps_the_seconds_before_it(tmp_path):
    """10 s of tunnel data, then a new session's hard resets on the same 5-tuple, then 2 s more: every
    second counts, whatever the chunk boundaries."""
    from analyzer.topology.zones import BUSY_RATE

    rng = random.Random(8)
    client, server = ("192.168.1.10", 50000), ("203.0.113.5", 443)
    pkts, t = [], []
    for i in range(1200):  # 100 packets/s for 12 s
        if i == 1000:
            reset = bytes([0x38]) + rng.randbytes(8) + b"\x00" * 5
            pkts.append((client[0], server[0], client[1], server[1], reset))
        else:
            payload = bytes([0x48]) + b"\x00\x00\x1c" + rng.randbytes(rng.randrange(80, 200))
            src, dst = (client, server) if i % 2 == 0 else (server, client)
            pkts.append((src[0], dst[0], src[1], dst[1], payload))
        t.append(T0 + i * 10_000_000)
    path = tmp_path / "restart.pcap"
    path.write_bytes(pcap_bytes([(ts, _frame(*p)) for ts, p in zip(t, pkts, strict=True)]))
    from analyzer.capture import iter_batches

    busy = set()
    for chunk in CHUNKS:
        acc = _one_flow_in_chunks(path, chunk)
        assert "openvpn" in acc.vpn
        busy.add(sum(1 for n in acc.vpn_seconds.values() if n >= BUSY_RATE))
    assert busy == {12}
    assert iter_batches  # the reader the analysis uses walks the same chunks
    # one reset is one packet with a signature: the flow's own evidence still makes it a tunnel
    a = analyze(path)
    f = a.flows.iloc[0]
    assert f.vpn_evidence.endswith("from frame 1, with 1 hard reset in the flow")
    assert list(a.findings.code) == ["vpn-call-like-traffic"]  # no call in view: the rate alone is info


def reader_decode(chunk):
    from analyzer.capture.reader import decode, flow_keys

    b = decode(chunk)
    flow_keys(b)
    return b


CHUNKS = (16 << 20, 64 << 10)  # the default chunk, and one small enough to split these captures


def _one_flow_in_chunks(path, chunk: int):
    """The single flow of a capture, read through the flow table in chunks of `chunk` bytes."""
    from analyzer.capture import CaptureFile
    from analyzer.topology.flows import FlowTable

    with CaptureFile(str(path)) as cap:
        ft = FlowTable(0)
        for batch in (reader_decode(c) for c in cap.chunks(chunk)):
            ft.add(batch)
        (acc,) = ft.rows()
    return acc


def test_a_capture_point_that_sees_one_direction_still_names_the_tunnel(mid_session, tmp_path):
    """Asymmetric routing: only the client's half (P_DATA_V2 with one peer id, control packets with one
    session id). Both kinds of structure stand in for the missing direction."""
    _, packets = mid_session
    up = [p for p in packets if p[0] == "3.111.166.78"]
    assert 500 < len(up) < len(packets)
    path = tmp_path / "one-way.pcap"
    _write(path, up)
    f = analyze(path).flows.iloc[0]
    assert f.vpn == "openvpn"
    assert "P_DATA_V2 with one peer id 0x00001C" in f.vpn_evidence and "session id" in f.vpn_evidence
    data_only = [p for p in up if p[4][0] >> 3 == 9]  # one way, one kind of structure: not enough
    path2 = tmp_path / "one-way-data.pcap"
    _write(path2, data_only)
    assert analyze(path2).flows.iloc[0].vpn is None


def _data_v2(rng, peer: bytes, n: int, client=("192.168.1.10", 50000), server=("203.0.113.5", 443)):
    """n P_DATA_V2 datagrams with one peer id, alternating client -> server and back."""
    pkts = []
    for i in range(n):
        payload = bytes([0x48]) + peer + rng.randbytes(rng.randrange(80, 200))
        src, dst = (client, server) if i % 2 == 0 else (server, client)
        pkts.append((src[0], dst[0], src[1], dst[1], payload))
    return pkts


@pytest.mark.parametrize(("peer", "named"), [(b"\x76\x70\x6e", True), (b"\x3a\x91\xc2", False)])
def test_peer_to_peer_tunnel_of_openvpn_26(tmp_path, peer, named):
    """OpenVPN 2.6 peer-to-peer mode numbers its one peer 0x76706E ("vpn") unless the id comes from TLS key
    export; a random 3-byte id without control packets is no more structure than a KCP session id."""
    path = tmp_path / "p2p.pcap"
    _write(path, _data_v2(random.Random(4), peer, 400))
    f = analyze(path).flows.iloc[0]
    if named:
        assert f.vpn == "openvpn" and "P_DATA_V2 with one peer id 0x76706E" in f.vpn_evidence
    else:
        assert f.vpn is None or "openvpn" not in f.vpn


def test_port_1194_without_a_reset_says_so(tmp_path):
    """The port names the flow packet by packet; the evidence still says no reset was in the capture."""
    path = tmp_path / "ovpn-1194.pcap"
    _write(path, _data_v2(random.Random(5), b"\x00\x00\x1c", 400, server=("203.0.113.5", 1194)))
    f = analyze(path).flows.iloc[0]
    assert f.vpn == "openvpn"
    assert f.vpn_evidence.endswith("mid-session, from frame 1 (no hard reset in the capture)")


def test_another_signature_later_in_the_flow_gives_the_same_answer_for_any_chunk_size(tmp_path):
    """10 s of OpenVPN-like data, one AnyConnect-DTLS-looking record, 10 s more: the flow is named by the
    signature (one packet, so not a tunnel), the same way whether the record falls in the first chunk or a
    later one."""

    rng = random.Random(4)
    client, server = ("192.168.1.10", 50000), ("203.0.113.5", 443)
    record = b"\x17\x01\x00" + b"\x00" * 8 + b"\x00\x10" + bytes(16)
    pkts = [*_data_v2(rng, b"\x00\x00\x1c", 1000), (client[0], server[0], client[1], server[1], record),
            *_data_v2(rng, b"\x00\x00\x1c", 1000)]
    path = tmp_path / "mixed.pcap"
    _write(path, pkts)
    seen = set()
    for chunk in CHUNKS:
        acc = _one_flow_in_chunks(path, chunk)
        seen.add((tuple(sorted(acc.vpn.items())), sum(acc.vpn_seconds.values()), acc.vpn_evidence))
    assert seen == {((("anyconnect-dtls", 1),), 1, None)}
    assert "media-over-vpn" not in set(analyze(path).findings.code)


@pytest.mark.parametrize("named", [False, True])
def test_server_behind_a_port_forward_is_told_by_the_profile(tmp_path, named):
    """A public client on an ephemeral port and a private end on 1194 read, by addresses and ports, like a
    laptop bound to 1194 reaching a provider on a high port: the laptop is the VPN user. A server behind a
    port forward, captured on its LAN, is told apart by naming it a concentrator in the profile."""
    from analyzer.api import _zones

    path = tmp_path / "forward.pcap"
    _write(path, _data_v2(random.Random(4), b"\x00\x00\x1c", 500, client=("198.51.100.7", 51234),
                          server=("192.168.1.2", 1194)))
    net = tmp_path / "net.toml"
    net.write_text('[vpn]\nconcentrators = ["192.168.1.2/32"]\n' if named else "")
    (t,) = _zones(analyze(path, network=net)).tunnels
    ends = (("198.51.100.7", 51234), ("192.168.1.2", 1194))
    assert (t.client, t.server) == (ends if named else ends[::-1])


def test_a_reset_opcode_without_the_reset_signature_is_not_called_a_reset(tmp_path):
    """A 100-byte datagram opening with 0x38 (P_CONTROL_HARD_RESET_CLIENT_V2, key id 0) that vpn.py's exact
    check rejects: the flow is still OpenVPN by its data, and the evidence says no reset was seen."""
    from analyzer.dissect.vpn import classify_vpn

    rng = random.Random(4)
    pkts = _data_v2(rng, b"\x00\x00\x1c", 400)
    bogus = b"\x38" + rng.randbytes(99)
    assert classify_vpn(17, 50000, 443, bogus) is None
    pkts.insert(200, ("192.168.1.10", "203.0.113.5", 50000, 443, bogus))
    path = tmp_path / "fake-reset.pcap"
    _write(path, pkts)
    f = analyze(path).flows.iloc[0]
    assert f.vpn == "openvpn"
    assert f.vpn_evidence.endswith("mid-session, from frame 1 (no hard reset in the capture)")
