"""RTCP compounds and SRTCP detection, checked against tshark and RFC 3550/3711/4585."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import iter_payloads
from analyzer.dissect.rtcp import ntp_from_unix_ns, ntp_middle32, parse_rtcp, rtt_from_report
from tests.conftest import public_capture, tshark_fields

FIELDS = ["frame.number", "rtcp.pt", "rtcp.length", "rtcp.rc", "rtcp.senderssrc", "rtcp.timestamp.ntp.msw",
          "rtcp.timestamp.ntp.lsw", "rtcp.timestamp.rtp", "rtcp.sender.packetcount", "rtcp.sender.octetcount",
          "rtcp.ssrc.fraction", "rtcp.ssrc.cum_nr", "rtcp.ssrc.ext_high", "rtcp.ssrc.jitter", "rtcp.ssrc.lsr",
          "rtcp.ssrc.dlsr", "rtcp.sdes.type", "rtcp.sdes.text"]


def ints(s: str) -> list[int]:
    return [int(x, 0) for x in s.split(",")] if s else []


@pytest.mark.parametrize(("rel", "frames"), [("ntop_nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap", 5),
                                             ("ntop_nDPI/sip.pcap", 1)])
def test_compounds_match_tshark(rel, frames):
    path = public_capture(rel)
    rows = tshark_fields(path, FIELDS, display_filter="rtcp", extra=["-o", "rtcp.heuristic_rtcp:TRUE"])
    assert len(rows) == frames
    ours = {p.frame: parse_rtcp(p.payload) for p in iter_payloads(path, {"rtcp"})}
    for fr, pt, length, rc, sender, msw, lsw, rts, pc, oc, frac, cum, high, jit, lsr, dlsr, types, text in rows:
        c = ours[int(fr)]
        assert not c.srtcp and c.malformed is None
        assert [p.pt for p in c.packets] == ints(pt)
        assert [p.length for p in c.packets] == ints(length)
        senders = [p for p in c.packets if p.pt in (200, 201)]
        assert [p.ssrc for p in senders] == ints(sender)
        assert [p.count for p in senders] == ints(rc)
        sr = [p.sender_info for p in c.packets if p.sender_info]
        assert [(s.ntp_ts >> 32, s.ntp_ts & 0xFFFFFFFF, s.rtp_ts, s.packets, s.octets) for s in sr] == list(
            zip(ints(msw), ints(lsw), ints(rts), ints(pc), ints(oc), strict=True))
        reps = [r for p in c.packets for r in p.reports]
        assert [(r.fraction_lost, r.cumulative_lost, r.highest_seq, r.jitter, r.lsr, r.dlsr) for r in reps] == list(
            zip(ints(frac), ints(cum), ints(high), ints(jit), ints(lsr), ints(dlsr), strict=True))
        items = [(k, t) for p in c.packets for _, k, t in p.sdes_items]
        assert [k for k, _ in items] == [k for k in ints(types) if k]  # tshark lists the END item as type 0
        byes = [p.bye_reason for p in c.packets if p.bye_reason]
        assert ",".join([t for _, t in items] + byes) == text  # tshark lists BYE reasons with the SDES texts
        cn = [p.cname for p in c.packets if p.pt == 202]
        assert cn == [t for k, t in items if k == 1]


def test_values_of_the_freeswitch_compound():
    path = public_capture("ntop_nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap")
    c = {p.frame: parse_rtcp(p.payload) for p in iter_payloads(path, {"rtcp"})}
    rr = c[4].packets[0]
    assert (rr.name, rr.ssrc, rr.reports[0].ssrc, rr.reports[0].lsr, rr.reports[0].dlsr) == (
        "RR", 0x01932DB4, 0x5D931534, 3245362529, 263452)
    assert c[4].packets[1].cname == "1932db4" and c[1].packets[1].cname == "5d931534"
    bye = parse_rtcp(next(p.payload for p in iter_payloads(public_capture("ntop_nDPI/sip.pcap"), {"rtcp"}))).packets
    assert bye[2].name == "BYE" and bye[2].bye_ssrcs == (0x3796CB71,) and bye[2].bye_reason == "session shutdown"
    assert bye[1].cname == "11894297-4432a9f8@192.168.1.2" and bye[1].sdes_items[1][1:] == (6, "SIPPS")


def test_srtcp_detection_against_tshark_headers():
    # stun.pcap: XR (181, 185) and RR+encrypted rest (186) with HMAC-SHA1-80; tshark dissects the clear header
    path = public_capture("ntop_nDPI/stun.pcap")
    rows = tshark_fields(path, ["frame.number", "rtcp.pt", "rtcp.length", "rtcp.senderssrc"], display_filter="rtcp",
                         extra=["-o", "rtp.heuristic_rtp:TRUE"])
    ours = {p.frame: parse_rtcp(p.payload) for p in iter_payloads(path, {"rtcp"})}
    assert sorted(ours) == [181, 185, 186]
    for fr, pt, length, sender in rows:
        c = ours[int(fr)]
        assert (c.srtcp, c.srtcp_encrypted, c.srtcp_tag_len, c.malformed) == (True, True, 10, None)
        p = c.packets[0]
        assert (len(c.packets), p.pt, p.length, p.ssrc) == (1, int(pt), int(length), int(sender, 16))
    assert [ours[f].srtcp_index for f in (181, 185, 186)] == [1, 2, 1]


def test_srtcp_in_teams_and_aead():
    path = public_capture("ntop_nDPI/teams.pcap")
    got = {p.frame: parse_rtcp(p.payload) for p in iter_payloads(path, {"rtcp"}) if p.proto == 17}
    dns = [got.pop(f) for f in (1372, 1373)]  # DNS ids 0x9fcf: "rtcp" by the first two bytes only
    assert all(not c.srtcp and c.malformed for c in dns)
    assert sorted(got) == [1478, 1483, 1486, 1487, 1488, 1489, 1498, 1499, 1500, 1501, 1502, 1503]
    assert all(c.srtcp and c.srtcp_encrypted and c.srtcp_tag_len == 10 for c in got.values())
    assert [got[f].srtcp_index for f in (1498, 1499, 1500, 1501, 1502, 1503)] == [1, 2, 3, 4, 5, 6]
    # tshark calls 1503 malformed ("expected 84 bytes, found 98"): the 14 extra bytes are index + tag
    p = got[1503].packets[0]
    assert (p.name, p.fb_fmt, p.fb_name, p.size) == ("PSFB", 15, "AFB", 84)
    # Chrome with AEAD_AES_128_GCM: 16-byte tag inside, E+index last
    c = next(parse_rtcp(p.payload) for p in iter_payloads(public_capture("ntop_nDPI/stun_dtls_rtp.pcapng"), {"rtcp"})
             if p.frame == 24)
    assert (c.srtcp, c.srtcp_encrypted, c.srtcp_index, c.srtcp_tag_len, c.packets[0].name) == (True, True, 1, 16, "XR")


def sr(ssrc=0x1234, reports=(), pad=0):
    body = struct.pack("!IQIII", ssrc, 0xE0F1A2B3_80000000, 1000, 50, 8000)
    body += b"".join(struct.pack("!IB3sIIII", s, f, c.to_bytes(3, "big", signed=True), h, j, lsr, dlsr)
                     for s, f, c, h, j, lsr, dlsr in reports)
    body += bytes(pad - 1) + bytes([pad]) if pad else b""
    return struct.pack("!BBH", 0x80 | (0x20 if pad else 0) | len(reports), 200, (len(body) + 4) // 4 - 1) + body


def fb(pt, fmt, sender=1, media=2, fci=b""):
    return struct.pack("!BBHII", 0x80 | fmt, pt, (12 + len(fci)) // 4 - 1, sender, media) + fci


def test_synthetic_compound_and_feedback():
    rep = (0xAABBCCDD, 64, -3, 70000, 12, 0x11112222, 0x00010000)
    data = sr(reports=(rep,), pad=4) + fb(205, 1, fci=b"\x00\x05\x00\x01") + fb(206, 1) + fb(206, 4, fci=bytes(8))
    data += fb(205, 15, fci=bytes(8)) + struct.pack("!BBHI4s", 0x81, 204, 2, 9, b"TEST")
    c = parse_rtcp(data)
    assert not c.srtcp and c.malformed is None
    s = c.packets[0]
    r = s.reports[0]
    assert (s.padding, s.sender_info.packets) == (4, 50)
    assert (r.cumulative_lost, r.fraction_lost, r.highest_seq, r.lsr, r.dlsr) == (-3, 64, 70000, 0x11112222, 0x10000)
    assert [(p.name, p.fb_name) for p in c.packets] == [("SR", None), ("RTPFB", "NACK"), ("PSFB", "PLI"),
                                                        ("PSFB", "FIR"), ("RTPFB", "TCC"), ("APP", None)]
    assert c.packets[1].media_ssrc == 2 and c.packets[5].app_name == "TEST"
    # the same compound as unencrypted SRTCP (E = 0): tiles minus the 14-byte trailer, body parsed in clear
    s2 = parse_rtcp(data + struct.pack("!I", 77) + bytes(10))
    assert (s2.srtcp, s2.srtcp_encrypted, s2.srtcp_index, len(s2.packets)) == (True, False, 77, 6)
    assert parse_rtcp(data + struct.pack("!I", 77) + bytes(10), srtcp=False).malformed.startswith("declared")
    forced = parse_rtcp(data, srtcp=True)  # caller says SRTCP: the last 14 bytes are taken as the trailer
    assert forced.srtcp and forced.srtcp_tag_len == 10
    assert parse_rtcp(b"\x80\xc8").malformed == "shorter than an RTCP header"


def test_rtt_rfc3550_example():
    # RFC 3550 6.4.1: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125 s), DLSR = 0x0005:4000 (5.250 s)
    assert rtt_from_report(0xB7108000, 0xB7052000, 0x00054000) == 6.125
    assert rtt_from_report(0xB7108000, 0, 0x00054000) is None
    assert rtt_from_report(0x00008000, 0xFFFF8000, 0x00008000) == 0.5  # across the 2^32 wrap
    assert ntp_from_unix_ns(0) == 2_208_988_800 << 32 and ntp_middle32(0x0001000200030004) == 0x00020003


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([None, True, False]))
def test_parse_rtcp_never_raises(data, srtcp):
    c = parse_rtcp(data, srtcp=srtcp)
    assert isinstance(c.packets, tuple) and (c.srtcp if srtcp else True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x80, 0x81, 0x82, 0xA1, 0x9F]), st.integers(192, 223),
                          st.binary(max_size=40)), max_size=5), st.binary(max_size=20))
def test_structured_compounds_never_raise(parts, tail):
    data = b"".join(struct.pack("!BBH", b0, pt, (len(body) + 3) // 4) + body + bytes(-len(body) % 4)
                    for b0, pt, body in parts) + tail
    c = parse_rtcp(data)
    if not tail and parts and not c.srtcp:
        assert [p.pt for p in c.packets] == [pt for _, pt, _ in parts]
