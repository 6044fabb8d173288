"""The dissect stage end to end: demultiplexing confirmed by structure, TURN relaying followed into
the inner packet (with both 5-tuples), message counts in the summary, tables with stable columns."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from analyzer import analyze
from tests.capture.writers import pcap_bytes
from tests.conftest import CAPTURES, public_capture, tshark_fields
from tests.dissect import stunbuild as sb

CLIENT, SERVER, RELAY, PEER = ("10.1.0.11", 50000), ("52.112.1.2", 3478), ("52.112.1.2", 49152), ("203.0.113.9", 61000)
T0 = 1_700_000_000_000_000_000


def udp(src, dst, payload):
    return bytes(Ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1]) / payload)


def relay_capture(tmp_path):
    tids = [bytes([i]) * 12 for i in range(1, 6)]
    pk = [
        udp(CLIENT, SERVER, sb.message("Allocate", "request", [sb.attr(0x0019, b"\x11\0\0\0")], tids[0])),
        udp(
            SERVER,
            CLIENT,
            sb.message(
                "Allocate",
                "success",
                [
                    sb.xor_addr(0x0016, *RELAY, tids[0]),
                    sb.xor_addr(0x0020, "198.51.100.2", 40000, tids[0]),
                    sb.attr(0x000D, (600).to_bytes(4, "big")),
                ],
                tids[0],
            ),
        ),
        udp(
            CLIENT,
            SERVER,
            sb.message(
                "ChannelBind",
                "request",
                [sb.attr(0x000C, b"\x40\x01\0\0"), sb.xor_addr(0x0012, *PEER, tids[1])],
                tids[1],
            ),
        ),
        udp(SERVER, CLIENT, sb.message("ChannelBind", "success", [], tids[1])),
        # an ICE check to the peer, relayed through the channel, and its answer
        udp(
            CLIENT,
            SERVER,
            sb.channeldata(
                0x4001,
                sb.message(
                    "Binding",
                    "request",
                    [sb.attr(0x0006, b"peer:mine"), sb.attr(0x0024, (0x6E7F1EFF).to_bytes(4, "big"))],
                    tids[2],
                ),
            ),
        ),
        udp(
            SERVER,
            CLIENT,
            sb.channeldata(0x4001, sb.message("Binding", "success", [sb.xor_addr(0x0020, *RELAY, tids[2])], tids[2])),
        ),
        # a Send indication carrying a check to a second peer
        udp(
            CLIENT,
            SERVER,
            sb.message(
                "Send",
                "indication",
                [
                    sb.xor_addr(0x0012, "203.0.113.50", 7000, tids[3]),
                    sb.attr(0x0013, sb.message("Binding", "request", [sb.attr(0x0006, b"x:y")], tids[4])),
                ],
                tids[3],
            ),
        ),
    ]
    pk += [udp(CLIENT, SERVER, sb.channeldata(0x4001, sb.rtp(100 + i, 960 * i, 0xABCDEF01))) for i in range(20)]
    p = tmp_path / "relay.pcap"
    p.write_bytes(pcap_bytes([(T0 + i * 20_000_000, x) for i, x in enumerate(pk)]))
    return p


def test_relayed_messages_carry_inner_and_outer_five_tuples(tmp_path):
    a = analyze(relay_capture(tmp_path))
    st = a.stun
    assert list(st["frame"]) == [1, 2, 3, 4, 5, 6, 7, 7]
    assert list(st["relayed"]) == [False, False, False, False, True, True, False, True]
    check = st[(st.frame == 5)].iloc[0]
    assert (check.src, check.sport, check.dst, check.dport) == (*RELAY, *PEER)
    assert (check.outer_src, check.outer_sport, check.outer_dst, check.outer_dport) == (*CLIENT, *SERVER)
    assert check.outer_channel == 0x4001 and check.ufrag_to == "peer" and check.ufrag_from == "mine"
    answer = st[(st.frame == 6)].iloc[0]
    assert (answer.src, answer.sport, answer.dst, answer.dport) == (*PEER, *RELAY)
    inner_send = st[(st.frame == 7) & st.relayed].iloc[0]
    assert (inner_send.src, inner_send.sport, inner_send.dst, inner_send.dport) == (*RELAY, "203.0.113.50", 7000)
    alloc = st[(st.method == "Allocate") & (st.cls == "success")].iloc[0]
    assert (alloc.relayed_address, alloc.relayed_port, alloc.mapped_address, alloc.lifetime) == (
        "52.112.1.2",
        49152,
        "198.51.100.2",
        600,
    )
    s = a.captures[0]
    assert s.messages["TURN ChannelData"] == 22
    assert s.messages["TURN Allocate request"] == 1 and s.messages["STUN Binding request"] == 2
    assert s.confirmed["turn-channel"] == 22
    t = a.transactions
    assert set(t.state) == {"answered"} and len(t) == 2  # Allocate, ChannelBind (relayed checks are not matched)


def test_channeldata_whose_length_does_not_fit_is_rejected(tmp_path):
    bad = sb.channeldata(0x4001, b"\x80" * 40)[:-8]  # claims 40 bytes, carries 32
    p = tmp_path / "bad.pcap"
    p.write_bytes(pcap_bytes([(T0, udp(CLIENT, SERVER, bad))]))
    s = analyze(p).captures[0]
    assert s.rejected == {"turn-channel": 1} and "TURN ChannelData" not in s.messages


def test_shipped_loopback_call_matches_its_ground_truth():
    path = CAPTURES / "loopback-call" / "call.pcap"
    truth = json.loads((path.parent / "truth.json").read_text())
    a = analyze(path)
    st = a.stun
    ufrags = {(r.ufrag_to, r.ufrag_from) for r in st[st.cls == "request"].itertuples()}
    assert ufrags == {(truth["answer_ufrag"], truth["offer_ufrag"]), (truth["offer_ufrag"], truth["answer_ufrag"])}
    (sess,) = a.dtls_sessions.itertuples()
    assert sess.completed and sess.srtp_profile == "SRTP_AEAD_AES_256_GCM"  # tshark: ServerHello use_srtp 0x0008
    # the certificates' SHA-256 are the fingerprints the two SDPs announced
    assert {sess.client_fingerprint, sess.server_fingerprint} == {
        truth["offer_fingerprint"],
        truth["answer_fingerprint"],
    }
    s = a.captures[0]
    assert s.rejected == {}
    rtp_frames = tshark_fields(path, ["frame.number"], display_filter="rtp", extra=["-o", "rtp.heuristic_rtp:TRUE"])
    assert s.confirmed["rtp"] == len(rtp_frames)


def test_teams_outer_stun_messages_match_tshark():
    path = public_capture("ntop_nDPI/teams.pcap")
    # tshark 4.0 shows MS-TURN Data indications (0x0115, no cookie) as classic STUN (RFC 3489)
    rows = tshark_fields(path, ["frame.number", "stun.type", "classicstun.type"], display_filter="stun || classicstun")
    theirs = Counter()
    for frame, types, classic in rows:
        for t in filter(None, (types or classic).split(",")):
            theirs[(int(frame), int(t, 16))] += 1
    st = analyze(path).stun
    outer = st[~st.relayed]
    ours = Counter(zip(outer.frame.astype(int), outer.msg_type.astype(int), strict=True))
    # tshark shows the 0xFF10 multiplexed packets as stun.type 0xff10; we count them as MS-TURN multiplexed
    theirs = Counter({k: v for k, v in theirs.items() if k[1] != 0xFF10})
    assert ours == theirs


@pytest.mark.parametrize(
    "name,rejected",
    [
        ("ntop_nDPI/openvpn_nohmac.pcapng", {"dtls": 400, "turn-channel": 544}),
        ("ntop_nDPI/sip.pcap", {"dtls": 21, "turn-channel": 29}),
    ],
)
def test_false_positives_are_rejected_and_counted(name, rejected):
    s = analyze(public_capture(name)).captures[0]
    assert s.rejected == rejected
    assert not any(k.startswith(("DTLS", "TURN", "STUN")) for k in s.messages)


def test_stun_over_tcp_several_messages_in_one_segment():
    path = public_capture("ntop_nDPI/stun_tcp_multiple_msgs_same_pkt.pcap")
    rows = tshark_fields(path, ["frame.number", "stun.type"], display_filter="stun")
    theirs = Counter()
    for frame, types in rows:
        for t in filter(None, types.split(",")):
            theirs[(int(frame), int(t, 16))] += 1
    st = analyze(path).stun
    assert set(st.transport) == {"tcp"}
    assert Counter(zip(st.frame.astype(int), st.msg_type.astype(int), strict=True)) == theirs
