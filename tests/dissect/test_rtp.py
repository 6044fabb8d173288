"""RTP columns, scalar parser and structural confirmation, checked against tshark and RFC 3550/8285."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import CaptureFile, iter_batches
from analyzer.dissect.rtp import RtpConfirmer, confirm_rtp, parse_rtp, rtcp_mask, rtp_columns
from analyzer.dissect.rtp_tables import STATIC_PAYLOAD_TYPES, fb_name
from tests.conftest import public_capture, tshark_fields

HEUR = ["-o", "rtp.heuristic_rtp:TRUE"]
UDP = 17


def udp_rows(path):
    """Per UDP packet with a payload: frame, flow key, payload, and our columns, over the whole file."""
    frames, payloads, cols, rtcp, groups = [], [], [], [], []
    for b in iter_batches(CaptureFile(path)):
        idx = np.flatnonzero((b.proto == UDP) & (b.payload_len > 0))
        off, ln = b.payload_off[idx], b.payload_len[idx]
        frames.append(b.frame[idx])
        cols.append(rtp_columns(b.buf, off, ln))
        rtcp.append(rtcp_mask(b.buf, off, ln))
        groups.append((b.sport[idx].astype(np.uint64) << np.uint64(16)) | b.dport[idx].astype(np.uint64))
        payloads += [b.payload(i) for i in idx]
    cat = {f: np.concatenate([getattr(c, f) for c in cols]) for f in cols[0]._fields}
    return np.concatenate(frames), payloads, cat, np.concatenate(rtcp), np.concatenate(groups)


ORACLE = [
    ("membraneframework_membrane_rtp_plugin/demo_rtp.pcap", 862),
    ("membraneframework_membrane_rtp_plugin/srtp.pcap", 972),
    ("SIPp_sipp/g711a.pcap", 236),
    ("ntop_nDPI/stun_dtls_rtp.pcapng", 11),
    ("ntop_nDPI/teams.pcap", 18),
    ("ntop_nDPI/sip.pcap", 9),
    ("ntop_nDPI/stun.pcap", 6),
]


@pytest.mark.parametrize(("rel", "count"), ORACLE)
def test_columns_match_tshark_packet_by_packet(rel, count):
    path = public_capture(rel)
    rows = tshark_fields(path, ["frame.number", "rtp.ssrc", "rtp.seq", "rtp.timestamp", "rtp.p_type", "rtp.marker",
                                "rtp.ext", "rtp.cc", "rtp.padding"], display_filter="udp && rtp.ssrc", extra=HEUR)
    assert len(rows) == count
    frames, _, c, rtcp, groups = udp_rows(path)
    where = {int(f): i for i, f in enumerate(frames)}
    for fr, ssrc, seq, ts, pt, marker, ext, cc, pad in rows:
        i = where[int(fr)]
        assert c["valid"][i] and not rtcp[i], fr
        got = (c["ssrc"][i], c["seq"][i], c["ts"][i], c["pt"][i], c["marker"][i], c["extension"][i], c["cc"][i],
               c["padding"][i])
        assert got == (int(ssrc, 16), int(seq), int(ts), int(pt), marker == "1", ext == "1", int(cc), pad == "1"), fr
    # structural confirmation picks exactly the packets tshark's heuristic calls RTP
    conf = confirm_rtp(groups, c["ssrc"], c["seq"], c["ts"], c["valid"] & ~rtcp)
    assert sorted(frames[conf].tolist()) == sorted(int(r[0]) for r in rows)


def test_extension_elements_match_tshark():
    path = public_capture("ntop_nDPI/stun_dtls_rtp.pcapng")
    rows = tshark_fields(path, ["frame.number", "rtp.ext.len", "rtp.ext.rfc5285.id", "rtp.ext.rfc5285.len"],
                         display_filter="udp && rtp.ssrc", extra=HEUR)
    frames, payloads, c, _, _ = udp_rows(path)
    where = {int(f): i for i, f in enumerate(frames)}
    assert len(rows) == 11
    for fr, xlen, ids, lens in rows:
        h = parse_rtp(payloads[where[int(fr)]])
        assert h.valid and h.ext_profile == 0xBEDE and h.malformed is None
        assert h.header_len == 12 + 4 + 4 * int(xlen) == c["header_len"][where[int(fr)]]
        assert h.ext_elements == tuple(zip(map(int, ids.split(",")), map(int, lens.split(",")), strict=True))


def test_header_lengths_of_known_packets():
    # g711a: 252-byte PCMA packets, 30 ms = 240 samples (the timestamp steps by 240);
    # stun_dtls_rtp frame 27: 0xBEDE extension of 7 words
    frames, payloads, c, _, _ = udp_rows(public_capture("SIPp_sipp/g711a.pcap"))
    assert set(c["header_len"].tolist()) == {12} and set(c["payload_len"].tolist()) == {240}
    assert set(np.diff(c["ts"].astype(np.int64)).tolist()) == {240}
    assert STATIC_PAYLOAD_TYPES[8] == ("PCMA", 8000, "audio")
    frames, payloads, c, _, _ = udp_rows(public_capture("ntop_nDPI/stun_dtls_rtp.pcapng"))
    i = int(np.flatnonzero(frames == 27)[0])
    got = (c["header_len"][i], c["ext_profile"][i], c["payload_len"][i])
    assert got == (12 + 4 + 28, 0xBEDE, len(payloads[i]) - 44)


def test_rtcp_mask_rfc5761():
    frames, _, _, rtcp, _ = udp_rows(public_capture("ntop_nDPI/sip.pcap"))
    assert frames[rtcp].tolist() == [104]  # the SR+SDES+BYE; frames 95..103 are PCMU/PCMA RTP
    frames, _, _, rtcp, _ = udp_rows(public_capture("ntop_nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap"))
    assert frames[rtcp].tolist() == [1, 2, 3, 4, 5]


def test_confirm_sip_and_openvpn_captures():
    # sip.pcap: the only 0x80..0xBF UDP payloads are one PCMA stream (9 packets) and one RTCP compound
    frames, payloads, c, rtcp, groups = udp_rows(public_capture("ntop_nDPI/sip.pcap"))
    first = np.array([p[0] for p in payloads])
    cand = (first >= 0x80) & (first <= 0xBF)
    assert int(cand.sum()) == 10
    conf = confirm_rtp(groups, c["ssrc"], c["seq"], c["ts"], c["valid"] & ~rtcp)
    assert frames[conf].tolist() == list(range(95, 104))
    # SIP text never starts with 0x80..0xBF: none of the 69+12 SIP datagrams is even a candidate
    assert not (conf & ~cand).any()
    # openvpn_nohmac: OpenVPN opcodes put byte 0 in 0x20..0x4F, so no payload is an RTP candidate at all
    frames, payloads, c, rtcp, groups = udp_rows(public_capture("ntop_nDPI/openvpn_nohmac.pcapng"))
    assert len(frames) == 944 and int(c["valid"].sum()) == 0
    assert int(confirm_rtp(groups, c["ssrc"], c["seq"], c["ts"], c["valid"]).sum()) == 0


def test_confirm_rejects_dns_and_tcp_payloads_in_teams():
    _, payloads, c, rtcp, groups = udp_rows(public_capture("ntop_nDPI/teams.pcap"))
    port53 = ((groups >> np.uint64(16)) == 53) | ((groups & np.uint64(0xFFFF)) == 53)
    dns = np.array([0x80 <= p[0] <= 0xBF for p in payloads]) & port53
    assert int(dns.sum()) == 13 and int((dns & c["valid"]).sum()) == 7  # DNS ids 0x8000..0xBFFF (P: unchecked)
    conf = confirm_rtp(groups, c["ssrc"], c["seq"], c["ts"], c["valid"] & ~rtcp)
    assert not (conf & dns).any() and int(conf.sum()) == 18
    # TCP segments (TLS) whose first byte falls in 0x80..0xBF
    n_cand = n_conf = 0
    for b in iter_batches(CaptureFile(public_capture("ntop_nDPI/teams.pcap"))):
        idx = np.flatnonzero((b.proto == 6) & (b.payload_len > 0))
        cols = rtp_columns(b.buf, b.payload_off[idx], b.payload_len[idx])
        key = (b.sport[idx].astype(np.uint64) << np.uint64(16)) | b.dport[idx].astype(np.uint64)
        n_cand += int(cols.valid.sum())
        n_conf += int(confirm_rtp(key, cols.ssrc, cols.seq, cols.ts, cols.valid).sum())
    assert (n_cand, n_conf) == (32, 0)  # of 68 TCP payloads starting 0x80..0xBF, 32 pass the header checks


@pytest.mark.parametrize(("rel", "streams"), [("membraneframework_membrane_rtp_plugin/demo_rtp.pcap", 2),
                                              ("SIPp_sipp/g711a.pcap", 1)])
def test_confirm_real_streams_whole_and_streaming(rel, streams):
    frames, _, c, rtcp, groups = udp_rows(public_capture(rel))
    cand = c["valid"] & ~rtcp
    assert confirm_rtp(groups, c["ssrc"], c["seq"], c["ts"], cand).all()  # every packet, the first ones too
    # one packet per call: a stream's first 3 packets come before it can be confirmed, and only those
    rc = RtpConfirmer()
    got = np.concatenate([rc.update(groups[i : i + 1], c["ssrc"][i : i + 1], c["seq"][i : i + 1], cand[i : i + 1],
                                    ts=c["ts"][i : i + 1]) for i in range(len(frames))])
    first3 = sorted(int(np.flatnonzero(c["ssrc"] == s)[k]) for s in np.unique(c["ssrc"]) for k in range(3))
    assert np.flatnonzero(~got).tolist() == first3 and len(rc) == streams


def test_confirmer_state_is_bounded_and_sticky():
    rng = np.random.default_rng(7)
    rc = RtpConfirmer(max_streams=50)
    for _ in range(20):  # random garbage: one "stream" per packet
        n = 40
        out = rc.update(rng.integers(0, 2**63, n, dtype=np.uint64), rng.integers(0, 2**32, n, dtype=np.uint64),
                        rng.integers(0, 2**16, n), np.ones(n, bool))
        assert not out.any() and len(rc) <= 50
    seq = (np.arange(10) + 65530) % 65536  # wraps mod 2^16
    g, s = np.full(10, 5, np.uint64), np.full(10, 0xABCD, np.uint64)
    assert rc.update(g[:5], s[:5], seq[:5], np.ones(5, bool)).all()
    assert rc.update(g[5:6], s[5:6], np.array([9]), np.ones(1, bool)).all()  # a jump; stays confirmed


def test_confirm_rejects_synthetic_quic_and_random():
    # QUIC long headers with the fixed bit greased away (0x80..0xBF): version bytes give seq 0 every time
    n = 50
    rng = np.random.default_rng(3)
    pkts = [bytes([0x80 | (i % 0x30), 0, 0, 0, 1]) + rng.bytes(60) for i in range(n)]
    pkts += [bytes([0x80 + (i % 64)]) + rng.bytes(100) for i in range(n)]
    buf = np.frombuffer(b"".join(pkts), dtype=np.uint8)
    lens = np.array([len(p) for p in pkts])
    off = np.concatenate([[0], np.cumsum(lens)[:-1]])
    c = rtp_columns(buf, off, lens)
    assert int(c.valid.sum()) == 62  # the rest fail the CSRC/extension checks (P is not checked)
    assert not confirm_rtp(np.zeros(2 * n, np.uint64), c.ssrc, c.seq, c.ts, c.valid).any()


def rtp_packet(seq=1, ts=160, ssrc=0x11223344, pt=0, marker=False, csrcs=(), ext=None, payload=b"x" * 20, pad=0):
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext is not None else 0) | len(csrcs)
    out = struct.pack("!BBHII", b0, pt | (0x80 if marker else 0), seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        profile, data = ext
        out += struct.pack("!HH", profile, len(data) // 4) + data
    return out + payload + (bytes(pad - 1) + bytes([pad]) if pad else b"")


def test_parse_rtp_rfc_examples():
    one = bytes([0x10, 0xAA, 0x21, 0xBB, 0xCC, 0, 0, 0x33, 1, 2, 3, 4])  # id1 L=1, id2 L=2, pad, id3 L=4
    h = parse_rtp(rtp_packet(csrcs=(7, 8), marker=True, pt=111, ext=(0xBEDE, one), pad=3))
    assert h.valid and h.csrcs == (7, 8) and h.marker and h.pt == 111 and h.malformed is None
    assert h.ext_elements == ((1, 1), (2, 2), (3, 4)) and h.header_len == 12 + 8 + 4 + 12
    assert (h.padding_len, h.payload_len) == (3, 20)
    two = bytes([5, 0, 0, 6, 3, 1, 2, 3])  # id5 L=0, padding, id6 L=3
    h = parse_rtp(rtp_packet(ext=(0x1000, two)))
    assert h.ext_elements == ((5, 0), (6, 3)) and h.ext_profile == 0x1000
    assert parse_rtp(rtp_packet(ext=(0xBEDE, bytes([0x13, 1, 2, 3])))).malformed is not None  # L=4 overruns
    assert parse_rtp(b"\x80\x00").malformed == "shorter than the 12-byte RTP header"
    assert not parse_rtp(b"\x40" + bytes(15)).valid  # version 1
    assert not parse_rtp(rtp_packet(csrcs=(1,))[:15]).valid  # CSRC cut
    # P set with a last byte that cannot be a padding count (0, or past the header): SRTP's tag byte
    h = parse_rtp(rtp_packet(payload=b"", pad=1)[:-1] + b"\x00")
    assert h.valid and (h.padding, h.padding_len, h.payload_len) == (True, 0, 1)
    h = parse_rtp(rtp_packet(payload=b"ab", pad=1)[:-1] + b"\xff")
    assert h.valid and (h.padding_len, h.payload_len, h.malformed) == (0, 3, None)
    assert fb_name(205, 15) == "TCC" and fb_name(206, 1) == "PLI" and fb_name(206, 4) == "FIR"


packets = st.one_of(
    st.binary(max_size=80),
    st.builds(
        lambda b0, rest, ext, tail: bytes([b0]) + rest + ext + tail,
        st.sampled_from([0x80, 0x81, 0x90, 0x91, 0xA0, 0xB0, 0xB2, 0x40, 0x9F]),
        st.binary(min_size=11, max_size=11),
        st.one_of(st.just(b""), st.builds(lambda p, n, d: p + bytes([0, n]) + d,
                                          st.sampled_from([b"\xbe\xde", b"\x10\x00", b"\x12\x34"]),
                                          st.integers(0, 4), st.binary(max_size=20))),
        st.binary(max_size=30),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(packets, max_size=12), st.binary(max_size=8))
def test_columns_agree_with_parse_rtp(pkts, junk):
    buf = np.frombuffer(junk + b"".join(pkts) + junk, dtype=np.uint8)
    lens = np.array([len(p) for p in pkts], dtype=np.int64)
    off = len(junk) + np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if pkts else np.zeros(0, np.int64)
    c = rtp_columns(buf, off, lens)
    for i, p in enumerate(pkts):
        h = parse_rtp(p)
        assert tuple(getattr(c, f)[i].item() for f in c._fields) == tuple(getattr(h, f) for f in c._fields)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=10))
def test_columns_never_raise_on_random_offsets(data, spans):
    buf = np.frombuffer(data, dtype=np.uint8)
    off = np.array([min(o, len(data)) for o, _ in spans], dtype=np.int64)
    ln = np.array([min(n, len(data) - o) for o, (_, n) in zip(off, spans, strict=True)], dtype=np.int64)
    c = rtp_columns(buf, off, ln)
    m = rtcp_mask(buf, off, ln)
    for i in range(len(spans)):
        p = data[off[i] : off[i] + ln[i]]
        h = parse_rtp(p)
        assert tuple(getattr(c, f)[i].item() for f in c._fields) == tuple(getattr(h, f) for f in c._fields)
        assert m[i] == (len(p) >= 2 and 128 <= p[0] <= 191 and 192 <= p[1] <= 223)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_rtp_never_raises(data):
    h = parse_rtp(data)
    if h.valid:
        assert h.header_len + h.padding_len + h.payload_len == len(data) and h.version == 2
    else:
        assert h.malformed and h.header_len == h.payload_len == 0


def test_column_dtypes():
    c = rtp_columns(np.full(40, 0x80, np.uint8), np.array([0, 20, 39]), np.array([20, 19, 1]))
    assert [str(getattr(c, f).dtype) for f in c._fields] == [
        "bool", "uint8", "bool", "bool", "uint8", "bool", "uint8", "uint16", "uint32", "uint32", "int32", "uint16",
        "int32"]
    assert c.valid.tolist() == [True, True, False] and c.payload_len.tolist() == [8, 7, 0]
