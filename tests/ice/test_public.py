"""ICE and TURN reconstruction on the shared public captures. Every expected value below was read off
the packets with tshark (frame numbers, addresses, ufrags, attribute values) before being written here."""

from __future__ import annotations

import pandas as pd
import pytest

from analyzer import analyze
from tests.conftest import public_capture, tshark_fields


@pytest.fixture(scope="module")
def webrtc():
    return analyze(public_capture("zeek_zeek/webrtc-stun.pcap"))


def test_webrtc_direct_pair_nominated_then_dtls(webrtc):
    # frame 1: 192.168.6.82:51462 -> 74.201.205.9:43044 Binding request user Tw5XmGABTU55u6F2:31e58bb6,
    # USE-CANDIDATE, ICE-CONTROLLING; frame 2: success, XOR-MAPPED 192.150.187.238:31288; frame 9: ClientHello
    (s,) = webrtc.sessions.itertuples()
    assert s.ufrags == "31e58bb6:Tw5XmGABTU55u6F2"
    assert (s.controlling, s.controlled, s.state, s.connected_frame, s.start_frame) == (
        "31e58bb6",
        "Tw5XmGABTU55u6F2",
        "connected",
        2,
        1,
    )
    p = webrtc.pairs
    nominated = p[p.nominated]
    assert len(nominated) == 1
    n = nominated.iloc[0]
    assert (n.agent, n.local_address, n.local_port, n.remote_address, n.remote_port) == (
        "31e58bb6",
        "192.168.6.82",
        51462,
        "74.201.205.9",
        43044,
    )
    assert n.selected and n.state == "succeeded" and n.checks == 2 and n.successes == 2
    assert s.selected_pair == n.pair and s.selected_by == "DTLS"
    # the reverse view: the peer's checks (frames 3, 7, 10) answered in frames 5, 8, 12
    r = p[p.agent == "Tw5XmGABTU55u6F2"].iloc[0]
    assert (r.checks, r.successes, r.first_check_frame, r.first_success_frame, r.selected) == (3, 3, 3, 5, True)


def test_webrtc_candidates(webrtc):
    c = {(r.agent, r.address, r.port): (r.type, r.frame) for r in webrtc.candidates.itertuples()}
    assert c == {
        ("31e58bb6", "192.168.6.82", 51462): ("host", 1),
        ("31e58bb6", "192.150.187.238", 31288): ("prflx", 2),  # XOR-MAPPED of frame 2, no other candidate
        ("Tw5XmGABTU55u6F2", "74.201.205.9", 43044): ("unknown", 1),  # public: host or srflx, the capture can't say
    }


@pytest.fixture(scope="module")
def ntop_stun():
    return analyze(public_capture("ntop_nDPI/stun.pcap"))


def test_turn_allocation_with_challenge_permissions_channel_and_deallocation(ntop_stun):
    # frames 67-70: Allocate, 401 (realm turner.facebook), authenticated Allocate, success with
    # XOR-MAPPED 93.47.226.1:11162, XOR-RELAYED 31.13.86.54:53789, lifetime 900; frames 71-76 CreatePermission
    # (two 403 Forbidden Address); frame 104 ChannelBind 0x4003 -> 185.170.139.1:12176; frame 141 deallocation
    al = ntop_stun.allocations
    a = al[(al.client == "192.168.12.169") & (al.client_port == 38123)].iloc[0]
    assert (a.server, a.server_port, a.transport) == ("31.13.86.54", 40003, "udp")
    assert (a.relayed_address, a.relayed_port, a.mapped_address, a.mapped_port) == (
        "31.13.86.54",
        53789,
        "93.47.226.1",
        11162,
    )
    assert (a.first_frame, a.allocated_frame, a.challenged, a.realm, a.lifetime) == (
        67,
        70,
        True,
        "turner.facebook",
        900,
    )
    assert a.state == "deallocated" and a.deallocated_frame == 141
    assert "CreatePermission 403 Forbidden Address (frame 73)" in a.errors
    assert a.channels == "0x4003 -> 185.170.139.1:12176 (frame 104)"
    assert "185.170.139.1 (frame 74)" in a.permissions
    # Send indications out and Data indications in, and the channel both ways
    assert a.packets_to_relay > 0 and a.packets_from_relay > 0
    assert "0x4003 out" in a.channel_traffic and "0x4003 in" in a.channel_traffic


def test_checks_through_turn_make_relay_pairs_and_media_selects_one(ntop_stun):
    s = ntop_stun.sessions
    sess = s[s.ufrags == "XpJs:kSty"].iloc[0]
    assert sess.controlling == "XpJs" and sess.state == "connected" and sess.connected_frame == 81
    p = ntop_stun.pairs
    sel = p[(p.session == sess.session) & p.selected & (p.agent == "XpJs")].iloc[0]
    # XpJs's checks leave through its allocation (Send indications, frame 83 on): local is the relay candidate
    assert (sel.local_address, sel.local_port, sel.local_type) == ("31.13.86.54", 53789, "relay")
    assert (sel.remote_address, sel.remote_port) == ("185.170.139.1", 12176)
    assert sel.relayed and sel.nominated and sel.wire == "192.168.12.169:38123 -> 31.13.86.54:40003"
    assert sel.media_packets > 0
    assert sess.path.startswith("192.168.12.169:38123 -> 31.13.86.54:40003 TURN -> 31.13.86.54:53789 relay/udp")
    # the first checks toward 185.170.139.1:44459 (frames 77, 78) were never answered
    first = p[(p.session == sess.session) & (p.remote_port == 44459)].iloc[0]
    assert first.state == "not answered" and first.first_check_frame == 77


def test_ice_failure_session(ntop_stun):
    s = ntop_stun.sessions
    failed = s[s.ufrags == "r/El:zo3J"].iloc[0]
    assert failed.state == "failed" and failed.start_frame == 152
    assert failed.connected_frame is None or str(failed.connected_frame) == "<NA>"


def test_teams_ms_turn_allocations_and_ms_ice2_sessions():
    a = analyze(public_capture("ntop_nDPI/teams.pcap"))
    al = a.allocations
    ok = al[al.allocated_frame.notna()]
    # Allocate successes (MS-TURN legacy format, LIFETIME 60): frames 1275, 1298, 1307, 1312; relays on port 3480
    assert sorted(ok.allocated_frame.tolist()) == [1275, 1298, 1307, 1312]
    assert set(ok.relayed_port) == {3480} and set(ok.legacy_ms) == {True} and set(ok.lifetime) == {60}
    # Allocates with LIFETIME 0 end three of them: 1485 -> 1491 (50017), 1494 -> 1507 (50036), 1493 -> 1508 (50037)
    ended = {(r.client_port, r.allocated_frame): (r.state, r.deallocated_frame, r.ended_by) for r in ok.itertuples()}
    assert ended == {
        (50016, 1275): ("allocated", pd.NA, ""),
        (50036, 1298): ("deallocated", 1507, "Allocate LIFETIME 0 (frame 1494)"),
        (50017, 1307): ("deallocated", 1491, "Allocate LIFETIME 0 (frame 1485)"),
        (50037, 1312): ("deallocated", 1508, "Allocate LIFETIME 0 (frame 1493)"),
    }
    d = ok[ok.client_port == 50017].iloc[0]
    assert d.deallocated_ts == pd.Timestamp("2020-04-16 12:54:57.663187", tz="UTC")  # tshark -t ud, frame 1491
    # frame 1275 answers a request sent to 52.114.250.141 from 52.114.250.123
    first = ok[ok.allocated_frame == 1275].iloc[0]
    assert first.server == "52.114.250.141" and first.answered_from == "52.114.250.123:3478"
    s = a.sessions
    assert set(s.ufrags) == {"FY32:o5/I", "+mIv:JFwj"}
    p = a.pairs
    sel = p[p.selected & (p.agent == "FY32")].iloc[0]
    assert (sel.local_address, sel.local_port, sel.remote_address, sel.remote_port) == (
        "192.168.1.6",
        50016,
        "93.71.110.205",
        16332,
    )
    assert sel.media_packets > 0


def test_ice_over_turn_tcp():
    a = analyze(public_capture("ntop_nDPI/stun_dtls_rtp.pcapng"))
    al = a.allocations
    (alloc,) = al.itertuples()
    assert (alloc.transport, alloc.server, alloc.server_port, alloc.relayed_address, alloc.relayed_port) == (
        "tcp",
        "142.250.82.249",
        3478,
        "10.13.0.62",
        15530,
    )
    s = a.sessions
    sess = s[s.ufrags == "kb9A:wGR4"].iloc[0]
    assert sess.path == (
        "192.168.12.182:50221 -> 142.250.82.249:3478 TURN -> 10.13.0.62:15530 relay/udp -> 10.13.0.50:1259 host"
    )


def test_many_checks_and_errors():
    a = analyze(public_capture("corelight_zeek-spicy-stun/stun-ice-testcall.pcap"))
    p = a.pairs.set_index(["agent", "local_port", "remote_port"])
    # frames 25 and 29: the local agent answers a check with 500 SERVER ERROR after a success
    assert "500 (frame 25)" in p.loc[("pLyZHR", 23131, 60020)].errors
    assert p.loc[("GwL3AHBovubLvCqn", 59977, 23130)].checks == 19
    c = a.candidates.set_index(["address", "port"])
    # frame 2: an RFC 3489 server answered MAPPED-ADDRESS 70.199.128.46:4604 -> srflx
    assert c.loc[("70.199.128.46", 4604)].type == "srflx"
    assert c.loc[("70.199.128.46", 4587)].type == "prflx"  # frame 13, a check response's XOR-MAPPED


def test_selected_pair_is_the_rtp_component_not_the_sbc_rtcp_one():
    # stun-ice-testcall.pcap (tshark): 192.168.43.155:59977 checks the SBC's 23130 (frame 7) and 23131 (frame 8),
    # both with USE-CANDIDATE, 19 checks each; the SBC's own checks carry PRIORITY 1862270975 from 23130
    # (frames 17, 26: low byte 0xFF, component 1) and 1862270974 from 23131 (frames 19, 23: 0xFE, component 2)
    p = public_capture("corelight_zeek-spicy-stun/stun-ice-testcall.pcap")
    rows = tshark_fields(
        p,
        ["frame.number", "udp.srcport", "stun.att.priority"],
        display_filter="ip.src==155.212.214.188 && stun.type==0x0001",
    )
    prio = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
    assert prio[17] == (23130, 1862270975) and prio[19] == (23131, 1862270974)
    a = analyze(p)
    pr = a.pairs.set_index(["agent", "local_port", "remote_port"])
    assert pr.loc[("GwL3AHBovubLvCqn", 59977, 23130)].component == 1
    assert pr.loc[("GwL3AHBovubLvCqn", 59977, 23131)].component == 2
    (s,) = a.sessions.itertuples()
    sel = a.pairs[a.pairs.pair == s.selected_pair].iloc[0]
    assert (sel.local_port, sel.remote_port, sel.component) == (59977, 23130, 1)
    assert s.nominated_pair == s.selected_pair
    assert s.path == "192.168.43.155:59977 host/udp -> 155.212.214.188:23130 unknown"
    assert not pr.loc[("GwL3AHBovubLvCqn", 59977, 23131)].selected
