"""DTLS records, handshake messages and reassembly: tshark as the oracle on the shared captures, RFC layouts on
crafted datagrams, and property tests that nothing raises."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.capture import iter_payloads
from analyzer.dissect import dtls_tables as T
from analyzer.dissect.dtls import (
    Certificate,
    ClientHello,
    HandshakeFragment,
    HandshakeReassembler,
    HelloVerifyRequest,
    OtherHandshake,
    ServerHello,
    looks_like_dtls,
    parse_dtls,
    parse_handshake,
)
from tests.conftest import public_capture, tshark_fields

# capture, tshark options needed to see all of its DTLS, frames tshark shows as DTLS
ORACLE = [
    ("pion_dtls/chrome-123-dtls.pcap", [], 5),
    ("ntop_nDPI/dtls_certificate_fragments.pcap", [], 26),
    ("ntop_nDPI/stun_dtls_rtp.pcapng", [], 23),
    ("zeek_zeek/dtls13-cid.pcap", ["-d", "udp.port==11111,dtls"], 43),  # unified headers: no heuristic hit
    ("zeek_zeek/webrtc-stun.pcap", [], 4),
    ("ntop_nDPI/stun.pcap", [], 15),
]
CERTIFICATE_FRAMES = {rel: n for rel, n in zip([o[0] for o in ORACLE], [2, 3, 3, 0, 2, 2], strict=True)}
RECORD_FIELDS = [
    "frame.number", "dtls.record.content_type", "dtls.record.version", "dtls.record.epoch",
    "dtls.record.sequence_number", "dtls.record.length", "dtls.handshake.type", "dtls.handshake.message_seq",
    "dtls.handshake.fragment_offset", "dtls.handshake.fragment_length",
]


def _udp(rel: str):
    return [p for p in iter_payloads(public_capture(rel), {"dtls"}) if p.proto == 17]


def _ints(cell: str, base: int = 10) -> list[int]:
    return [int(x, base) for x in cell.split(",")] if cell else []


def _messages(payloads):
    """frame -> handshake messages readable in that frame, the way tshark shows them: whole messages where they
    stand (retransmissions included), fragmented ones in the frame that completes them."""
    out: dict[int, list] = {}
    reasm: dict[tuple[str, int], HandshakeReassembler] = {}
    for p in payloads:
        for rec in parse_dtls(p.payload).records:
            for h in rec.handshakes:
                if h.fragment_offset == 0 and h.fragment_length == h.length:
                    out.setdefault(p.frame, []).append(parse_handshake(h.msg_type, h.body))
                    continue
                for frame, kind, body in reasm.setdefault((p.src, p.sport), HandshakeReassembler()).add(h, p.frame):
                    out.setdefault(frame, []).append(parse_handshake(kind, body))
    return out


# ------------------------------------------------------------------ oracle: tshark on the shared captures

@pytest.mark.parametrize(("rel", "extra", "count"), ORACLE)
def test_recognised_frames_match_tshark(rel, extra, count):
    ours = {p.frame for p in _udp(rel) if looks_like_dtls(p.payload)}
    theirs = {int(r[0]) for r in tshark_fields(public_capture(rel), ["frame.number"], display_filter="dtls",
                                               extra=extra)}
    assert len(theirs) == count
    assert ours == theirs


@pytest.mark.parametrize(("rel", "extra", "count"), ORACLE)
def test_records_match_tshark(rel, extra, count):
    ours = {p.frame: parse_dtls(p.payload) for p in _udp(rel) if looks_like_dtls(p.payload)}
    rows = tshark_fields(public_capture(rel), RECORD_FIELDS, display_filter="dtls", extra=extra)
    unified_frames = 0
    for row in rows:
        frame, cts, vers, epochs, seqs, lens, types, mseqs, offs, flens = row
        d = ours[int(frame)]
        assert d.malformed is None
        if not cts:  # tshark 4.0 does not parse DTLS 1.3 unified headers ("Continuation Data")
            assert all(r.unified for r in d.records)
            unified_frames += 1
            continue
        assert [r.content_type for r in d.records] == _ints(cts)
        assert [r.version for r in d.records] == _ints(vers, 16)
        assert [r.epoch for r in d.records] == _ints(epochs)
        assert [r.sequence for r in d.records] == _ints(seqs)
        assert [r.length for r in d.records] == _ints(lens)
        frags = [h for r in d.records for h in r.handshakes]
        assert [h.msg_type for h in frags] == _ints(types)
        assert [h.message_seq for h in frags] == _ints(mseqs)
        assert [h.fragment_offset for h in frags] == _ints(offs)
        assert [h.fragment_length for h in frags] == _ints(flens)
        assert all(r.encrypted == (r.epoch > 0) for r in d.records)
    assert unified_frames == (25 if "dtls13" in rel else 0)


@pytest.mark.parametrize(("rel", "extra", "count"), ORACLE)
def test_hellos_match_tshark(rel, extra, count):
    msgs = _messages(_udp(rel))
    fields = ["frame.number", "dtls.handshake.ciphersuite", "dtls.use_srtp.protection_profile",
              "dtls.handshake.extension.type", "dtls.handshake.random", "dtls.handshake.cookie"]
    rows = tshark_fields(public_capture(rel), fields, display_filter="dtls", extra=extra)
    for frame, suites, profiles, exts, randoms, cookies in rows:
        hellos = [m for m in msgs.get(int(frame), []) if isinstance(m, ClientHello | ServerHello)]
        our_suites, our_profiles, our_exts = [], [], []
        for m in hellos:
            assert m.malformed is None
            if isinstance(m, ClientHello):
                our_suites += m.cipher_suites
                our_profiles += m.srtp_profiles
            else:
                our_suites.append(m.cipher_suite)
                our_profiles += [] if m.srtp_profile is None else [m.srtp_profile]
            our_exts += m.extensions
        assert our_suites == _ints(suites, 16)
        assert our_profiles == _ints(profiles, 16)
        assert our_exts == _ints(exts)
        assert [m.random_hex for m in hellos] == (randoms.split(",") if randoms else [])
        our_cookies = [m.cookie_hex for m in msgs.get(int(frame), []) if isinstance(m, HelloVerifyRequest)]
        our_cookies += [m.cookie_hex for m in hellos if isinstance(m, ClientHello) and m.cookie_hex]
        assert sorted(our_cookies) == sorted(cookies.split(",") if cookies else [])


@pytest.mark.parametrize(("rel", "extra", "count"), ORACLE)
def test_certificate_fingerprints_match_tshark(rel, extra, count):
    msgs = _messages(_udp(rel))
    rows = tshark_fields(public_capture(rel), ["frame.number", "dtls.handshake.certificate"],
                         display_filter="dtls.handshake.certificate", extra=extra)
    assert len(rows) == CERTIFICATE_FRAMES[rel]
    for frame, certs in rows:
        want = [":".join(f"{b:02X}" for b in hashlib.sha256(bytes.fromhex(c)).digest()) for c in certs.split(",")]
        got = [fp for m in msgs[int(frame)] if isinstance(m, Certificate) for fp in m.fingerprints_sha256]
        assert got == want


def test_certificate_reassembled_from_fragments():
    """Frames 23-24 carry the server certificate in eight fragments (231-byte pieces of a 1712-byte message);
    tshark reassembles it in frame 24."""
    msgs = _messages(_udp("ntop_nDPI/dtls_certificate_fragments.pcap"))
    certs = [m for m in msgs[24] if isinstance(m, Certificate)]
    assert len(certs) == 1
    assert certs[0].fingerprints_sha256 == (
        "4A:79:94:16:44:3F:BD:05:41:5A:C7:20:F3:12:54:70:00:73:5D:33:00:2D:2C:80:9B:39:E1:9F:2D:A7:49:87",)
    assert certs[0].first_subject_hint == "*.discord.gg"
    assert not [m for m in msgs.get(23, []) if isinstance(m, Certificate)]
    server_hello = next(m for m in msgs[23] if isinstance(m, ServerHello))
    assert (server_hello.cipher_name, server_hello.srtp_profile) == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 1)
    hvr = next(m for m in msgs[2] if isinstance(m, HelloVerifyRequest))
    assert hvr == HelloVerifyRequest(0xFEFF, "66acf8c1472146e4e7c30876eb9ce1408a10f943", None)


def test_dtls13_unified_headers_with_connection_ids():
    """RFC 9147 4: 0b001CSLEE. tshark 4.0 shows these as 'Continuation Data', so the values are checked by hand:
    frame 8 is 0x3e (C, S, L set, epoch 2), cid 'I am a client CID' (17 bytes, the client's connection_id
    extension), sequence 0x18fd, length 31: 1 + 17 + 2 + 2 + 31 = 53 bytes of UDP payload."""
    frames = {p.frame: p.payload for p in _udp("zeek_zeek/dtls13-cid.pcap")}
    rec = parse_dtls(frames[8]).records[0]
    assert (rec.unified, rec.epoch, rec.cid, rec.sequence, rec.length) == (True, 2, b"I am a client CID", 0x18FD, 31)
    assert (rec.content_type, rec.version_name, rec.encrypted) == (23, "DTLS 1.3", True)
    assert parse_dtls(frames[8], cid_len=17).records[0] == rec
    assert parse_dtls(frames[14]).records[0].cid == b"fancy server CID"
    assert parse_dtls(frames[18]).records[0][4:7] == (3, 0x6CEA, 0x53)
    assert parse_dtls(frames[30]).records[0][4:7] == (2, 0xBC35, 31)
    assert parse_dtls(frames[30]).records[0].cid == b""
    assert parse_dtls(frames[8], cid_len=5).records[0].malformed.startswith("record length")
    msgs = _messages(_udp("zeek_zeek/dtls13-cid.pcap"))
    hrr, sh = msgs[5][0], msgs[7][0]
    assert (hrr.hello_retry_request, hrr.selected_version, hrr.extensions) == (True, 0xFEFC, (43, 44))
    assert (sh.hello_retry_request, sh.cipher_name, sh.connection_id) == (False, "TLS_AES_128_GCM_SHA256",
                                                                         b"fancy server CID")
    assert msgs[4][0].supported_versions == (0xFEFC,)
    assert msgs[4][0].connection_id == b"I am a client CID"


def test_malformed_frame_not_dtls_for_tshark_either():
    """stun.pcap frame 196: a record claiming 78 bytes followed by bytes that are no record; tshark's heuristic
    rejects it too (frame 198, the real ClientHello, is accepted)."""
    frames = {p.frame: p.payload for p in _udp("ntop_nDPI/stun.pcap")}
    assert not looks_like_dtls(frames[196])
    assert looks_like_dtls(frames[198])
    assert parse_dtls(frames[196]).malformed is not None


# ------------------------------------------------------------------ false positives

@pytest.mark.parametrize(("rel", "rejected"), [("ntop_nDPI/openvpn_nohmac.pcapng", 400),
                                               ("ntop_nDPI/openvpn.pcap", 352)])
def test_openvpn_is_not_dtls(rel, rejected):
    """OpenVPN opcodes 4-7 (control, ack, data v1, hard reset) put 0x20-0x3f in the first byte: the DTLS 1.3
    unified-header range. None may pass; tshark sees none of them as DTLS."""
    payloads = _udp(rel)
    assert len(payloads) == rejected
    assert not [p.frame for p in payloads if looks_like_dtls(p.payload)]
    rows = tshark_fields(public_capture(rel), ["frame.number", "openvpn.opcode", "dtls.record.content_type"])
    assert not [r for r in rows if r[2]]
    if "nohmac" in rel:  # port 1194: tshark decodes them as OpenVPN
        opcodes = {int(r[0]): r[1] for r in rows}
        assert sorted({opcodes[p.frame] for p in payloads}) == ["0x04", "0x05", "0x06", "0x07"]
        assert {p.payload[0] for p in payloads} == {0x20, 0x28, 0x30, 0x38}


def test_sip_and_dns_payloads_are_not_dtls():
    path = public_capture("ntop_nDPI/sip.pcap")
    udp = [p for p in iter_payloads(path) if p.proto == 17]
    assert len(udp) == 112
    assert not [p.frame for p in udp if looks_like_dtls(p.payload)]
    assert not tshark_fields(path, ["frame.number"], display_filter="dtls")
    dns = _udp("ntop_nDPI/teams.pcap")
    assert len(dns) == 6 and not [p for p in dns if looks_like_dtls(p.payload)]


# ------------------------------------------------------------------ crafted datagrams (RFC layouts)

def rec(ct: int, payload: bytes, epoch: int = 0, seq: int = 0, version: int = 0xFEFD) -> bytes:
    return bytes([ct]) + version.to_bytes(2, "big") + epoch.to_bytes(2, "big") + seq.to_bytes(6, "big") + \
        len(payload).to_bytes(2, "big") + payload


def hs(kind: int, body: bytes, seq: int = 0, off: int = 0, total: int | None = None) -> bytes:
    total = len(body) if total is None else total
    return bytes([kind]) + total.to_bytes(3, "big") + seq.to_bytes(2, "big") + off.to_bytes(3, "big") + \
        len(body).to_bytes(3, "big") + body


def ext(code: int, data: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def client_hello(random: bytes = bytes(32), cid: bytes | None = None) -> bytes:
    exts = ext(14, b"\x00\x04\x00\x01\x00\x07\x00") + ext(0, b"\x00\x0c\x00\x00\x09localhost") + ext(0x0A0A, b"")
    if cid is not None:
        exts += ext(54, bytes([len(cid)]) + cid)
    return b"\xfe\xfd" + random + b"\x00\x00" + b"\x00\x06\xc0\x2b\xcc\xa9\x3a\x3a" + b"\x01\x00" + \
        len(exts).to_bytes(2, "big") + exts


def server_hello(suite: int = 0xC02B, profile: int = 1, cid: bytes | None = None) -> bytes:
    exts = ext(14, b"\x00\x02" + profile.to_bytes(2, "big") + b"\x00")
    if cid is not None:
        exts += ext(54, bytes([len(cid)]) + cid)
    return b"\xfe\xfd" + bytes(range(32)) + b"\x00" + suite.to_bytes(2, "big") + b"\x00" + \
        len(exts).to_bytes(2, "big") + exts


def test_client_and_server_hello_fields():
    ch = parse_handshake(1, client_hello(cid=b"\x01\x02"))
    assert ch == ClientHello(0xFEFD, "00" * 32, "", "", (0xC02B, 0xCCA9, 0x3A3A), (14, 0, 0x0A0A, 54), (1, 7), (),
                             "localhost", None, b"\x01\x02")
    assert [T.cipher_name(c) for c in ch.cipher_suites] == [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "GREASE"]
    sh = parse_handshake(2, server_hello(0x0018, 8))
    assert (sh.cipher_name, T.srtp_profile_name(sh.srtp_profile), sh.malformed) == (
        "TLS_DH_anon_WITH_RC4_128_MD5", "SRTP_AEAD_AES_256_GCM", None)
    truncated = parse_handshake(1, client_hello()[:40])
    assert truncated.random_hex == "00" * 32 and truncated.malformed.startswith("truncated")
    assert parse_handshake(14, b"") == OtherHandshake(14, "server_hello_done", 0)
    assert parse_handshake(11, b"\x00\x00\x05\x00\x00\x09").malformed is not None


def test_records_alerts_and_versions():
    dgram = rec(22, hs(1, client_hello()), version=0xFEFF) + rec(21, b"\x02\x28") + rec(21, bytes(26), epoch=1)
    assert looks_like_dtls(dgram)
    d = parse_dtls(dgram)
    assert [(r.content_name, r.version_name, r.encrypted) for r in d.records] == [
        ("handshake", "DTLS 1.0", False), ("alert", "DTLS 1.2", False), ("alert", "DTLS 1.2", True)]
    assert d.records[1].alert == (2, 40) and T.alert_text(2, 40) == "fatal/handshake_failure"
    assert d.records[2].alert is None
    anyconnect = rec(23, bytes(40), epoch=1, version=0x0100)
    assert looks_like_dtls(anyconnect) and parse_dtls(anyconnect).records[0].version_name.startswith("DTLS 1.0")
    assert not looks_like_dtls(rec(23, bytes(40), version=0x0303))  # TLS version
    assert not looks_like_dtls(rec(30, bytes(40)))  # unknown content type
    assert not looks_like_dtls(rec(23, bytes(40)) + b"\x00")  # does not tile
    assert not looks_like_dtls(rec(22, hs(1, b"abc", total=2)))  # fragment past message end


def test_truncated_record_is_malformed_not_raised():
    full = rec(22, hs(2, server_hello()))
    d = parse_dtls(full[:-10])
    assert d.records[0].malformed.startswith("record length") and d.malformed == d.records[0].malformed
    assert not looks_like_dtls(full[:-10])
    assert parse_dtls(full[:7]) == parse_dtls(full[:7])._replace(records=())
    assert parse_dtls(full[:7]).malformed.startswith("truncated record header")


def test_unified_header_rules():
    body = bytes(range(20))
    no_len = b"\x2a" + b"\x00\x07" + body  # C=0 S=1 L=0 epoch 2
    assert not looks_like_dtls(no_len)  # OpenVPN-shaped without a known flow
    assert looks_like_dtls(no_len, established=True)
    r = parse_dtls(no_len).records[0]
    assert (r.unified, r.epoch, r.sequence, r.length) == (True, 2, 7, 20)
    with_cid = b"\x3f" + b"\xaa\xbb\xcc" + b"\x00\x09" + len(body).to_bytes(2, "big") + body
    two = with_cid + with_cid
    assert looks_like_dtls(two) and [x.cid for x in parse_dtls(two).records] == [b"\xaa\xbb\xcc"] * 2
    assert parse_dtls(two, cid_len=3).records == parse_dtls(two).records
    assert not looks_like_dtls(b"\x2c\x00\x01\x00\x04" + bytes(4))  # shorter than 16 bytes of ciphertext
    cid12 = bytes([25]) + b"\xfe\xfd\x00\x01" + bytes(6) + b"\x11\x22" + b"\x00\x20" + bytes(32)  # RFC 9146
    assert looks_like_dtls(cid12) and parse_dtls(cid12).records[0].cid == b"\x11\x22"


def test_reassembler_out_of_order_overlapping_and_retransmitted():
    msg = bytes(range(256)) * 4
    pieces = [(600, 424), (0, 300), (250, 400), (0, 300)]  # out of order, overlapping, a repeated piece
    r = HandshakeReassembler()
    got = []
    for i, (off, n) in enumerate(pieces):
        got += r.add(HandshakeFragment(11, len(msg), 3, off, n, msg[off:off + n]), frame=10 + i)
    assert got == [(12, 11, msg)]
    assert r.add(HandshakeFragment(11, len(msg), 3, 0, 300, msg[:300]), frame=20) == []  # retransmission
    other = bytes(len(msg))  # a new handshake reusing message_seq 3 with other content
    assert r.add(HandshakeFragment(11, len(other), 3, 0, len(other), other), frame=21) == [(21, 11, other)]
    assert r.add(HandshakeFragment(14, 0, 4, 0, 0, b""), frame=22) == [(22, 14, b"")]
    assert r.add(HandshakeFragment(11, 1 << 20, 5, 0, 4, b"abcd"), frame=23) == []  # over MAX_MESSAGE


def test_reassembler_memory_is_bounded():
    r = HandshakeReassembler()
    for seq in range(1000):
        r.add(HandshakeFragment(11, 5000, seq, 0, 10, bytes(10)), frame=seq)
    assert len(r._pending) <= HandshakeReassembler.MAX_PENDING
    for off in range(0, 4000, 2):
        r.add(HandshakeFragment(12, 5000, 2000, off, 1, b"x"), frame=1)
    assert all(len(p[3]) <= HandshakeReassembler.MAX_HOLES for p in r._pending.values())
    for seq in range(100):
        r.add(HandshakeFragment(4, 3, 3000 + seq, 0, 3, b"abc"), frame=seq)
    assert len(r._done) <= HandshakeReassembler.DONE_MEMORY


# ------------------------------------------------------------------ property tests: never raise

SEEDS = [
    rec(22, hs(1, client_hello(cid=b"\x01"))),
    rec(22, hs(2, server_hello(cid=b"\x09\x09"))) + rec(22, hs(11, b"\x00\x00\x06\x00\x00\x03\x30\x01\x00", seq=1)),
    rec(22, hs(11, bytes(50), seq=1, off=100, total=400)) + rec(20, b"\x01") + rec(22, bytes(40), epoch=1),
    rec(22, hs(3, b"\xfe\xff\x04abcd")) + rec(21, b"\x01\x00"),
    b"\x3e" + b"0123456789" + b"\x00\x01\x00\x10" + bytes(16),
    b"\x2c\x00\x01\x00\x12" + bytes(18) + b"\x20\x05" + bytes(20),
    bytes([25]) + b"\xfe\xfd\x00\x01" + bytes(6) + b"\x11\x22\x00\x10" + bytes(16),
]
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def datagrams(draw):
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 2))
        if op == 0 and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == 1:
            data = data[:draw(st.integers(0, len(data)))]
        else:
            data += draw(st.binary(max_size=30))
    return bytes(data)


@PROPS
@given(datagrams(), st.none() | st.integers(0, 40))
def test_parse_dtls_and_looks_like_dtls_never_raise(data, cid_len):
    d = parse_dtls(data, cid_len=cid_len)
    assert isinstance(d.records, tuple)
    ok = looks_like_dtls(data, cid_len=cid_len, established=bool(cid_len))
    if ok:
        assert parse_dtls(data, cid_len=cid_len).malformed is None


MESSAGES = [(1, client_hello(os.urandom(32), cid=b"\x05")), (2, server_hello(cid=b"")), (3, b"\xfe\xff\x02ab"),
            (11, b"\x00\x00\x06\x00\x00\x03\x30\x01\x00")]


@st.composite
def bodies(draw):
    kind, body = draw(st.sampled_from(MESSAGES))
    data = bytearray(body)
    for _ in range(draw(st.integers(0, 4))):
        if data and draw(st.booleans()):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        else:
            data = data[:draw(st.integers(0, len(data)))]
    return kind, bytes(data)


@PROPS
@given(st.integers(0, 255), datagrams(), bodies())
def test_parse_handshake_never_raises(kind, random_body, mutated):
    for k, body in ((kind, random_body), mutated):
        m = parse_handshake(k, body)
        assert isinstance(m, ClientHello | ServerHello | HelloVerifyRequest | Certificate | OtherHandshake)


@PROPS
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 300), st.integers(0, 300), st.integers(0, 600),
                          st.binary(max_size=80)), max_size=30))
def test_reassembler_never_raises(frags):
    r = HandshakeReassembler()
    for i, (seq, off, flen, length, body) in enumerate(frags):
        for frame, kind, full in r.add(HandshakeFragment(11, length, seq, off, flen, body), i):
            assert (frame, kind, len(full)) == (i, 11, length)
