"""Flow labels, call topologies and findings on the shared public captures, with a profile written
for each. The expected values were read off the packets with tshark first."""

from __future__ import annotations

from analyzer import analyze
from tests.conftest import public_capture


def flow(a, src, sport, dst, dport):
    f = a.flows
    m = f[(f.src == src) & (f.sport == sport) & (f.dst == dst) & (f.dport == dport)]
    assert len(m) == 1, (src, sport, dst, dport)
    return m.iloc[0]


def test_teams_direct_call_with_cloud_relays(tmp_path):
    prof = tmp_path / "teams.toml"
    prof.write_text('[customer]\nnetworks = ["192.168.1.0/24"]\nreplace_defaults = true\n')
    a = analyze(public_capture("ntop_nDPI/teams.pcap"), network=prof)
    assert list(a.calls.topology) == ["external-direct", "external-direct"]
    # frames 1490, 1497: the far end had closed the video pair's port (tests/capture/test_icmp.py)
    assert set(a.findings.code) == {"icmp-unreachable"}
    # MS-TURN allocation to a published relay: customer -> cloud
    turn = flow(a, "192.168.1.6", 50016, "52.114.250.141", 3478)
    assert (turn.label, turn.src_zone, turn.dst_zone) == ("Flow 4", "customer", "cloud")
    assert "cloud range 52.112.0.0/14" in turn.dst_rule
    # the media went direct to the external peer's public address: Flow 2, initiated by the peer's check
    media = flow(a, "93.71.110.205", 16332, "192.168.1.6", 50016)
    assert (media.label, media.media, media.initiator_rule) == ("Flow 2", True, "sent the first STUN request")
    assert set(media.protocols.split(",")) == {"stun", "rtp", "rtcp"}
    # DNS answers whose first byte looks like RTP are not media
    dns = a.flows[a.flows.dport == 53]
    assert not dns.media.any() and set(dns.label) == {"Flow 5"}
    # HTTPS signaling to the cloud is TLS, Flow 4
    assert flow(a, "192.168.1.6", 60543, "52.114.77.33", 443).protocols == "tls"


def test_stun_pcap_relayed_call_through_a_non_cloud_turn_server():
    a = analyze(public_capture("ntop_nDPI/stun.pcap"))
    s = a.sessions.set_index("ufrags")
    relayed = a.calls[[s.loc["XpJs:kSty"].session in v for v in a.calls.sessions]].iloc[0]
    assert relayed.topology == "external-via-relay"
    assert relayed.observed == "Flow 2, Flow 3"  # client -> Facebook TURN (internet), and the peer's leg
    f = a.findings
    mine = f[f.call == relayed.call]
    assert set(mine.code) == {"non-cloud-relay"}
    # its checks (Send indications, frames 152, 158, 160) begin 0.35 s before the recording of that
    # capture ends (frame 161; frame 162 is 50 days later): not answered yet, not failed
    failed = a.calls[[s.loc["r/El:zo3J"].session in v for v in a.calls.sessions]].iloc[0]
    assert set(f[f.call == failed.call].code) == {"ice-incomplete"}


def test_webrtc_direct_call_has_no_findings():
    a = analyze(public_capture("zeek_zeek/webrtc-stun.pcap"))
    (c,) = a.calls.itertuples()
    assert (c.topology, c.expected, c.observed) == ("external-direct", "Flow 2", "Flow 2")
    assert len(a.findings) == 0


def test_wireguard_tunnel_makes_a_vpn_user_without_a_call():
    a = analyze(public_capture("ntop_nDPI/wireguard.pcap"))
    t = flow(a, "139.162.192.157", 51820, "192.168.0.14", 36116)
    assert t.label == "other" and t.vpn == "wireguard-data"
    assert t.dst_zone == "internet" and "keeps a VPN tunnel" in t.dst_rule  # the VPN user's physical address
    assert len(a.calls) == 0
    # 52 tunnel packets in a few seconds is not the packet rate of a call: no media-over-vpn
    assert "media-over-vpn" not in set(a.findings.code)
