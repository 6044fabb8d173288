"""STUN / MS-TURN message dissection: RFC 5769 vectors, MS-TURN specifics, tshark as the oracle on
the public captures, and property tests (never raises)."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.capture import iter_payloads
from analyzer.dissect.stun import Address, ErrorCode, StunMessage, looks_like_stun, parse_stun
from analyzer.dissect.stun_tables import MsSequence, ServiceQuality
from tests.conftest import public_capture, tshark_fields

# RFC 5769 test vectors (sections 2.1-2.4); their MESSAGE-INTEGRITY and FINGERPRINT self-validate.
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
RESPONSE_V4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
RESPONSE_V6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c"
)
REQUEST_LONG_TERM = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b90000"
    "0015001c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f726700"
    "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666"
)
VECTORS = [REQUEST, RESPONSE_V4, RESPONSE_V6, REQUEST_LONG_TERM]


def test_rfc5769_sample_request() -> None:
    m = parse_stun(REQUEST)
    assert (m.msg_type, m.method, m.method_name, m.cls) == (0x0001, 1, "Binding", "request")
    assert (m.length, m.size, m.magic_cookie_ok, m.legacy_ms, m.malformed) == (88, 108, True, False, None)
    assert m.transaction_id == "b7e7a701bc34d686fa87dfae"
    assert [a.name for a in m.attributes] == [
        "SOFTWARE", "PRIORITY", "ICE-CONTROLLED", "USERNAME", "MESSAGE-INTEGRITY", "FINGERPRINT",
    ]
    assert m.software == "STUN test client"
    assert m.priority == 0x6E0001FF
    assert (m.ice_role, m.tie_breaker) == ("controlled", 0x932FF9B151263B36)
    assert (m.username, m.ufrags) == ("evtj:h6vY", ("evtj", "h6vY"))
    assert m.attr(0x0006) == m.attr("USERNAME") == "evtj:h6vY"
    assert m.attr("NONCE") is None and m.use_candidate is False
    assert (m.has_integrity, m.has_integrity_sha256, m.fingerprint_ok) == (True, False, True)


def test_rfc5769_ipv4_response() -> None:
    m = parse_stun(RESPONSE_V4)
    assert (m.method_name, m.cls, m.fingerprint_ok, m.malformed) == ("Binding", "success", True, None)
    assert m.software == "test vector"
    assert m.xor_mapped == Address("IPv4", "192.0.2.1", 32853)
    assert m.xor_relayed is None and m.xor_peer is None


def test_rfc5769_ipv6_response() -> None:
    m = parse_stun(RESPONSE_V6)
    assert m.xor_mapped == Address("IPv6", "2001:db8:1234:5678:11:2233:4455:6677", 32853)
    assert (m.fingerprint_ok, m.has_integrity, m.size) == (True, True, 92)


def test_rfc5769_long_term_request() -> None:
    m = parse_stun(REQUEST_LONG_TERM)
    assert m.transaction_id == "78ad3433c6ad72c029da412e"
    assert m.username == "マトリックス"
    assert m.attr("NONCE") == "f//499k954d6OL34oL9FSTvy64sA"
    assert m.attr("REALM") == "example.org"
    assert (m.has_integrity, m.fingerprint_ok, m.malformed) == (True, None, None)


@pytest.mark.parametrize("vector", [REQUEST, RESPONSE_V4, RESPONSE_V6])
def test_flipped_byte_breaks_fingerprint(vector: bytes) -> None:
    damaged = bytearray(vector)
    damaged[30] ^= 0x01  # inside SOFTWARE: still parses, the CRC no longer matches
    m = parse_stun(bytes(damaged))
    assert m.fingerprint_ok is False
    assert m.malformed is None


def test_trailing_bytes_are_ignored() -> None:
    m = parse_stun(RESPONSE_V4 + b"\x00" * 7)
    assert (m.size, m.malformed, m.fingerprint_ok) == (80, None, True)


def test_malformed_inputs() -> None:
    assert parse_stun(b"").malformed == "truncated: 0 bytes, a STUN header needs 20"
    assert parse_stun(REQUEST[:10]).malformed == "truncated: 10 bytes, a STUN header needs 20"
    assert parse_stun(b"\x80" + REQUEST[1:]).malformed == "first two bits are not 0: not a STUN message"
    cut = parse_stun(REQUEST[:60])
    assert cut.malformed is not None and cut.malformed.startswith("length 88 exceeds the 40 bytes")
    assert [a.name for a in cut.attributes] == ["SOFTWARE", "PRIORITY", "ICE-CONTROLLED"]
    # an XOR-MAPPED-ADDRESS with family 3: the attribute (and so the message) is malformed
    bad = bytearray(RESPONSE_V4)
    bad[41] = 3
    m = parse_stun(bytes(bad))
    xma = m.attributes[1]
    reason = "XOR-MAPPED-ADDRESS: unknown address family 3"
    assert (xma.name, xma.value, xma.malformed) == ("XOR-MAPPED-ADDRESS", None, reason)
    assert m.xor_mapped is None and m.malformed == reason


def test_unknown_attribute_kept_raw() -> None:
    body = struct.pack("!HH", 0xC0FE, 3) + b"abc\x00"
    msg = struct.pack("!HHI", 0x0001, len(body), 0x2112A442) + b"\x01" * 12 + body
    m = parse_stun(msg)
    assert m.attributes[0] == (0xC0FE, "unknown-0xC0FE", b"abc", b"abc", None)
    assert m.method_name == "Binding" and m.malformed is None


def test_method_and_class_table() -> None:
    cases = {
        0x0003: ("Allocate", "request"), 0x0113: ("Allocate", "error"), 0x0004: ("Refresh", "request"),
        0x0016: ("Send", "indication"), 0x0017: ("Data", "indication"), 0x0108: ("CreatePermission", "success"),
        0x0009: ("ChannelBind", "request"), 0x000A: ("Connect", "request"), 0x010B: ("ConnectionBind", "success"),
        0x001C: ("ConnectionAttempt", "indication"), 0x0035: ("unknown-0x015", "indication"),
    }
    for msg_type, expected in cases.items():
        m = parse_stun(struct.pack("!HHI", msg_type, 0, 0x2112A442) + b"\x00" * 12)
        assert (m.method_name, m.cls) == expected, hex(msg_type)


def test_looks_like_stun() -> None:
    assert all(looks_like_stun(v) for v in VECTORS)
    assert not looks_like_stun(REQUEST[:-1])  # incomplete
    assert not looks_like_stun(b"\x40" + REQUEST[1:])
    rng = random.Random(5769)
    hits = 0
    for _ in range(20000):
        data = bytes([rng.randrange(4)]) + rng.randbytes(rng.randrange(19, 200))
        hits += looks_like_stun(data)
    assert hits == 0


# ---------------------------------------------------------------------------------------------
# MS-TURN (ntop_nDPI/teams.pcap). Wireshark 4.0 pads MS-TURN attributes and swaps nothing unless
# told to, so the values below come from [MS-TURN] 2.2 and the bytes, not from tshark.


def _payloads(rel: str, classes: set[str] | None = None) -> dict[int, bytes]:
    return {p.frame: p.payload for p in iter_payloads(public_capture(rel), classes) if p.proto == 17}


def test_ms_turn_allocate_error_unpadded() -> None:
    m = parse_stun(_payloads("ntop_nDPI/teams.pcap")[1245])
    assert (m.legacy_ms, m.magic_cookie_ok, m.malformed) == (True, True, None)
    assert (m.method_name, m.cls) == ("Allocate", "error")
    assert [a.name for a in m.attributes] == [
        "MAGIC-COOKIE", "MS-VERSION", "ERROR-CODE", "MS-ALTERNATE-SERVER", "NONCE", "REALM", "MAPPED-ADDRESS",
        "MS-MULTIPLEXED-TURN-SESSION-ID", "MS-XOR-MAPPED-ADDRESS",
    ]
    assert m.length == 167 and m.size == 187  # odd length: attributes are not padded
    assert m.error == ErrorCode(401, "The request did not contain a Message-Integrity attribute")
    assert m.attr("MS-ALTERNATE-SERVER") == Address("IPv4", "52.114.250.141", 3478)
    assert m.attr("REALM") == '"rtcmedia"'  # 0x0015: REALM in MS-TURN (NONCE in RFC 5389)
    assert m.attr("NONCE") == "024ecbf8827a60d65306debfa77d87d14402dd5d"  # 0x0014, binary, shown as hex
    assert m.attr("MS-MULTIPLEXED-TURN-SESSION-ID") == "7f20c4dd4f848dfa"
    assert m.xor_mapped == Address("IPv4", "80.181.206.72", 57543)
    assert m.xor_relayed == Address("IPv4", "52.114.250.141", 3480)  # MS-TURN: MAPPED-ADDRESS
    assert m.ms_version == 6


def test_ms_turn_allocate_request_and_success() -> None:
    payloads = _payloads("ntop_nDPI/teams.pcap")
    req = parse_stun(payloads[1238])
    assert (req.method_name, req.cls, req.legacy_ms) == ("Allocate", "request", True)
    assert req.attr("BANDWIDTH") == 12000 and req.attr("MS-APP-ID") == 2
    assert req.service_quality == ServiceQuality(stream_type=2, service=2)
    ok = parse_stun(payloads[1275])
    assert (ok.method_name, ok.cls, ok.lifetime, ok.malformed) == ("Allocate", "success", 60, None)
    assert ok.software == "2.0.1.211"
    assert ok.xor_relayed == Address("IPv4", "52.114.250.141", 3480)
    assert ok.xor_mapped == Address("IPv4", "80.181.206.72", 57543)
    assert ok.ms_sequence == MsSequence("9b713c623ac1bfbbf6d5237583afa6d318e146b4", 0)
    assert [a.name for a in ok.attributes][-2:] == ["BANDWIDTH", "MESSAGE-INTEGRITY"]
    assert ok.has_integrity


def test_ms_turn_legacy_data_indication_without_cookie() -> None:
    # tshark 4.0 does not dissect these at all (no RFC cookie): MS-TURN Data indication 0x0115 with a
    # 16-byte transaction id, REMOTE-ADDRESS in the clear and the peer's STUN check in DATA.
    m = parse_stun(_payloads("ntop_nDPI/teams.pcap")[1416])
    assert (m.msg_type, m.method_name, m.cls) == (0x0115, "Data", "indication")
    assert (m.legacy_ms, m.magic_cookie_ok, m.malformed) == (True, False, None)
    assert m.transaction_id == "c2d6764f53f1d813305855947dbe126b"
    assert [a.name for a in m.attributes] == ["MAGIC-COOKIE", "REMOTE-ADDRESS", "DATA"]
    assert m.xor_peer == Address("IPv4", "93.71.110.205", 16332)
    inner = parse_stun(m.data)
    assert (inner.method_name, inner.cls, inner.fingerprint_ok) == ("Binding", "request", True)
    assert inner.ufrags == ("FY32", "o5/I")


def test_ms_turn_capture_has_no_unknown_messages() -> None:
    """Every STUN-looking UDP payload of teams.pcap (and every message relayed inside one) dissects
    cleanly with a known method. The only attributes no public document names are 0x8036 (value 1 in
    Teams connectivity checks) and 0x8033 (empty, in two checks); tshark 4.0 does not know them either."""
    unknown, methods = set(), set()
    for frame, payload in _payloads("ntop_nDPI/teams.pcap", {"stun"}).items():
        if not looks_like_stun(payload):
            continue
        outer = parse_stun(payload)
        for m in (outer, parse_stun(outer.data)) if outer.data else (outer,):
            assert m.malformed is None and not m.method_name.startswith("unknown"), frame
            methods.add((m.method_name, m.cls, m.legacy_ms))
            unknown |= {a.type for a in m.attributes if a.name.startswith("unknown-")}
    assert unknown == {0x8033, 0x8036}
    assert methods == {
        ("Allocate", "request", True), ("Allocate", "success", True), ("Allocate", "error", True),
        ("Send", "request", True), ("Data", "indication", True),
        ("Binding", "request", False), ("Binding", "success", False),
    }


# ---------------------------------------------------------------------------------------------
# tshark oracle, frame by frame over UDP

FIELDS = ["stun.type", "stun.id", "stun.att.type", "stun.att.ipv4", "stun.att.ipv6", "stun.att.port",
          "stun.att.channelnum", "stun.att.error.class", "stun.att.error", "stun.att.crc32.status",
          "stun.wrong_msglen"]


def tshark_stun(path) -> dict[int, dict[str, list[str]]]:
    rows = tshark_fields(path, ["frame.number", *FIELDS], display_filter="stun")
    return {int(r[0]): {f: (v.split(",") if v else []) for f, v in zip(FIELDS, r[1:], strict=False)} for r in rows}


def ours(m: StunMessage) -> dict[str, list[str]]:
    addrs = [a.value for a in m.attributes if isinstance(a.value, Address)]
    err = m.error
    return {
        "stun.type": [f"0x{m.msg_type:04x}"],
        "stun.id": [m.transaction_id],
        # tshark lists only attribute types it knows: leave out the ones nobody documents
        "stun.att.type": [f"0x{a.type:04x}" for a in m.attributes if not a.name.startswith("unknown-")],
        "stun.att.ipv4": [a.address for a in addrs if a.family == "IPv4"],
        "stun.att.ipv6": [a.address for a in addrs if a.family == "IPv6"],
        "stun.att.port": [str(a.port) for a in addrs],
        "stun.att.channelnum": [f"0x{m.channel:04x}"] if m.channel is not None else [],
        "stun.att.error.class": [str(err.code // 100)] if err else [],
        "stun.att.error": [str(err.code % 100)] if err else [],
        "stun.att.crc32.status": [] if m.fingerprint_ok is None else [str(int(m.fingerprint_ok))],
    }


UDP_CAPTURES = {
    # capture: (STUN messages over UDP tshark dissects, MS-TURN frames tshark 4.0 gets wrong or misses)
    "ntop_nDPI/stun.pcap": (121, ()),
    "zeek_zeek/webrtc-stun.pcap": (10, ()),
    "corelight_zeek-spicy-stun/stun-ice-testcall.pcap": (108, ()),
    "ntop_nDPI/stun_dtls_rtp.pcapng": (4, ()),
    "ntop_nDPI/teams.pcap": (55, (1416, 1417, 1431, 1432, 1437, 1439)),
}


@pytest.mark.parametrize("rel", sorted(UDP_CAPTURES))
def test_udp_messages_match_tshark(rel: str) -> None:
    path = public_capture(rel)
    expected_count, legacy_frames = UDP_CAPTURES[rel]
    theirs = tshark_stun(path)
    compared, legacy = 0, []
    for p in iter_payloads(path, None):
        if p.proto != 17 or not p.payload or p.payload[0] > 3:
            continue
        t = theirs.get(p.frame)
        if t is None or not t["stun.type"]:
            if looks_like_stun(p.payload):  # tshark saw no STUN message here: neither should we...
                legacy.append(p.frame)  # ...unless it is MS-TURN without the RFC cookie
                m = parse_stun(p.payload)
                assert m.legacy_ms and not m.magic_cookie_ok and m.malformed is None, p.frame
                assert not m.method_name.startswith("unknown"), p.frame
            continue
        m = parse_stun(p.payload)
        mine = ours(m)
        compared += 1
        assert not m.method_name.startswith("unknown"), p.frame
        assert mine["stun.type"] == t["stun.type"] and mine["stun.id"] == t["stun.id"], p.frame
        if t["stun.wrong_msglen"] and m.legacy_ms:
            # tshark pads MS-TURN attributes (RFC 5389 rules) and loses track after the first odd one:
            # what it did decode is a prefix of ours, and ours walks exactly to the message end.
            assert m.malformed is None, p.frame
            for f in ("stun.att.type", "stun.att.ipv4", "stun.att.port"):
                assert mine[f][: len(t[f])] == t[f], (p.frame, f)
            continue
        assert m.malformed is None, (p.frame, m.malformed)
        for f in FIELDS[2:-1]:
            assert mine[f] == t[f], (p.frame, f, mine[f], t[f])
    assert compared == expected_count
    assert tuple(legacy) == legacy_frames


# ---------------------------------------------------------------------------------------------
# Properties: any input gives a value, never an exception


def _with_fingerprint(msg: bytes) -> bytes:
    """msg with a FINGERPRINT appended: the CRC covers the message before the attribute, with the
    header length already counting it."""
    head = struct.pack("!HH", struct.unpack_from("!H", msg)[0], len(msg) - 20 + 8) + msg[4:20]
    crc = zlib.crc32(head + msg[20:]) ^ 0x5354554E
    return head + msg[20:] + struct.pack("!HHI", 0x8028, 4, crc)


def test_fingerprint_helper_roundtrip() -> None:
    m = parse_stun(_with_fingerprint(REQUEST_LONG_TERM))
    assert (m.fingerprint_ok, m.malformed, m.attributes[-1].name) == (True, None, "FINGERPRINT")


def _check(m: StunMessage, data: bytes) -> None:
    assert isinstance(m, StunMessage)
    assert 0 <= m.size <= len(data)
    assert m.cls in ("request", "success", "error", "indication")
    assert m.malformed is None or isinstance(m.malformed, str)
    for a in m.attributes:
        assert (a.value is None) == (a.malformed is not None)
    # accessors never raise either
    _ = (m.ufrags, m.xor_mapped, m.xor_relayed, m.xor_peer, m.error, m.ice_role, m.tie_breaker, m.service_quality)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    m = parse_stun(data)
    _check(m, data)
    if len(data) < 20:
        assert m.malformed is not None
    looks_like_stun(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VECTORS), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 130))
def test_mutated_vectors_never_raise(vector: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(vector)
    for pos, val in edits:
        if pos < len(data):
            data[pos] = val
    data = bytes(data[: max(cut, 0) or len(data)])
    m = parse_stun(data)
    _check(m, data)
    if len(data) < len(vector) and len(data) >= 20 and not data[0] & 0xC0:
        declared = struct.unpack_from("!H", data, 2)[0]
        if 20 + declared > len(data):
            assert m.malformed is not None
