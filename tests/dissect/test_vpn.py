"""VPN signatures against tshark's protocol column, and the vectorised classifier against the scalar one."""

from __future__ import annotations

import struct
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import CaptureFile, iter_batches
from analyzer.dissect.vpn import VPN_KINDS, classify_vpn, vpn_columns
from tests.conftest import public_capture, tshark_fields

WG = {"1": "wireguard-initiation", "2": "wireguard-response", "3": "wireguard-cookie", "4": "wireguard-data"}


def tshark_kind(protocols: str, wg_type: str) -> str | None:
    layers = protocols.split(":")
    if "wg" in layers:
        return WG[wg_type]
    if "esp" in layers:
        return "nat-t-esp" if "udpencap" in layers else "esp"
    for layer, kind in (("ah", "ah"), ("isakmp", "ike"), ("openvpn", "openvpn")):
        if layer in layers:
            return kind
    return None


def ours(path) -> dict[int, str | None]:
    out = {}
    for b in iter_batches(CaptureFile(path)):
        codes = vpn_columns(b.buf, b.payload_off, b.payload_len, b.proto, b.sport, b.dport)
        for i in range(len(b)):
            kind = VPN_KINDS[codes[i]]
            assert kind == classify_vpn(int(b.proto[i]), int(b.sport[i]), int(b.dport[i]), b.payload(i)), b.frame[i]
            out[int(b.frame[i])] = kind
    return out


# hard resets on non-default ports (UDP 443, 13680, 1234; TCP 443) that tshark leaves as data/TLS without decode-as
OPENVPN_RESETS = {1, 2, 220, 222, 312, 313, 395, 396, 397, 618, 620, 661, 662, 692, 693}
CASES = [
    ("ntop_nDPI/wireguard.pcap", {"wireguard-data": 48, "wireguard-initiation": 2, "wireguard-response": 2}, set()),
    ("ntop_nDPI/openvpn.pcap", {"openvpn": 266, None: 440}, OPENVPN_RESETS),
    ("ntop_nDPI/openvpn_nohmac.pcapng", {"openvpn": 944}, set()),
    ("the-tcpdump-group_tcpdump/espudp1.pcap", {"nat-t-esp": 8}, set()),
]


@pytest.mark.parametrize(("rel", "counts", "extra"), CASES)
def test_kinds_match_tshark_frame_by_frame(rel, counts, extra):
    path = public_capture(rel)
    rows = tshark_fields(path, ["frame.number", "frame.protocols", "wg.type"])
    got = ours(path)
    assert Counter(got.values()) == counts
    differ = {int(fr) for fr, protos, wg in rows if tshark_kind(protos, wg) != got[int(fr)]}
    assert differ == extra


def test_nondefault_port_resets_are_openvpn_for_tshark_with_decode_as():
    path = public_capture("ntop_nDPI/openvpn.pcap")
    extra = ["-d", "udp.port==443,openvpn", "-d", "udp.port==13680,openvpn", "-d", "udp.port==1234,openvpn",
             "-d", "tcp.port==443,openvpn"]
    rows = tshark_fields(path, ["frame.number", "openvpn.opcode"], extra=extra)
    opcode = {int(fr): op for fr, op in rows}
    assert {fr: opcode[fr] for fr in sorted(OPENVPN_RESETS)} == {
        fr: "0x07" if fr in (1, 220, 312, 395, 396, 618, 661, 692) else "0x08" for fr in sorted(OPENVPN_RESETS)}


def ovpn_reset(client=True, hmac=0, tls_crypt=False):
    sid = bytes.fromhex("0102030405060708")
    head = bytes([0x38 if client else 0x40]) + sid
    rest = b"\x00" + bytes(4) if client else b"\x01" + bytes(4) + bytes.fromhex("1112131415161718") + bytes(4)
    if tls_crypt:
        return head + struct.pack("!II", 1, 0x5F000000) + bytes(32) + bytes(len(rest))
    if hmac:
        return head + bytes(range(hmac)) + struct.pack("!II", 1, 0x5F000000) + rest
    return head + rest


@pytest.mark.parametrize(("proto", "sport", "dport", "payload", "kind"), [
    (50, 0, 0, b"", "esp"),
    (51, 0, 0, b"\x32\x04", "ah"),
    (17, 4500, 4500, b"\xff", "nat-t-keepalive"),
    (17, 4500, 33000, bytes(4) + bytes(16) + b"\x2e\x20\x22\x08" + bytes(4) + struct.pack("!I", 28), "ike"),
    (17, 500, 500, bytes(16) + b"\x21\x20\x22\x08" + bytes(4) + struct.pack("!I", 28), "ike"),
    (17, 500, 500, bytes(16) + b"\x21\x30\x22\x08" + bytes(8), None),  # IKE major version 3 does not exist
    (17, 4500, 4500, b"\xc0\x01\x02\x03" + bytes(12), "nat-t-esp"),
    (17, 40000, 41000, b"\x01\x00\x00\x00" + bytes(144), "wireguard-initiation"),
    (17, 40000, 41000, b"\x02\x00\x00\x00" + bytes(88), "wireguard-response"),
    (17, 40000, 41000, b"\x03\x00\x00\x00" + bytes(60), "wireguard-cookie"),
    (17, 40000, 41000, b"\x04\x00\x00\x00" + bytes(28), "wireguard-data"),
    (17, 40000, 41000, b"\x04\x00\x00\x00" + bytes(40), None),  # 44 bytes: not padded to 16
    (17, 40000, 41000, b"\x01\x00\x00\x00" + bytes(140), None),  # initiation has exactly 148 bytes
    (17, 443, 50000, b"\x17\x01\x00" + bytes(8) + b"\x00\x05" + bytes(5), "anyconnect-dtls"),
    (17, 443, 50000, b"\x17\xfe\xfd" + bytes(8) + b"\x00\x05" + bytes(5), None),  # standard DTLS 1.2
    (17, 5000, 6000, ovpn_reset(), "openvpn"),
    (17, 5000, 6000, ovpn_reset(client=False), "openvpn"),
    (17, 5000, 6000, ovpn_reset(hmac=32), "openvpn"),
    (17, 5000, 6000, ovpn_reset(client=False, hmac=16), "openvpn"),
    (17, 5000, 6000, ovpn_reset(tls_crypt=True), "openvpn"),
    (17, 5000, 6000, ovpn_reset()[:-1] + b"\x07", None),  # message id must be 0 in a plain reset
    (6, 5000, 443, struct.pack("!H", 14) + ovpn_reset(), "openvpn"),
    (6, 5000, 443, struct.pack("!H", 15) + ovpn_reset(), None),
    (6, 5000, 1194, struct.pack("!H", 100) + b"\x20" + bytes(20), "openvpn"),
    (17, 1194, 5000, b"\x48\x00\x00\x01" + bytes(20), "openvpn"),
    (17, 1194, 5000, b"\x00" + bytes(20), None),  # opcode 0 is unused
    (17, 5004, 5006, b"\x80\x00\x00\x01" + bytes(170), None),  # RTP
])
def test_synthetic_signatures(proto, sport, dport, payload, kind):
    assert classify_vpn(proto, sport, dport, payload) == kind
    buf = np.frombuffer(b"ab" + payload, dtype=np.uint8)
    code = vpn_columns(buf, np.array([2]), np.array([len(payload)]), np.array([proto]), np.array([sport]),
                       np.array([dport]))
    assert VPN_KINDS[code[0]] == kind


PORTS = st.sampled_from([500, 4500, 1194, 443, 51820, 5000, 13680])
FIRST = st.sampled_from([b"", b"\xff", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00", b"\x04\x00\x00\x00", b"\x38",
                         b"\x40", b"\x50", b"\x17\x01\x00", b"\x00\x0e\x38", b"\x48"])
PACKET = st.tuples(st.sampled_from([6, 17, 50, 51, 1]), PORTS, PORTS,
                   st.builds(lambda a, b: a + b, FIRST, st.binary(max_size=160)))


@settings(max_examples=300, deadline=None)
@given(st.lists(PACKET, max_size=10), st.binary(max_size=6))
def test_columns_agree_with_scalar(pkts, junk):
    data = junk + b"".join(p for *_, p in pkts)
    lens = np.array([len(p) for *_, p in pkts], dtype=np.int64)
    off = (len(junk) + np.concatenate([[0], np.cumsum(lens)[:-1]])).astype(np.int64) if pkts else np.zeros(0, int)
    cols = [np.array([p[k] for p in pkts], dtype=np.int64) for k in range(3)]
    codes = vpn_columns(np.frombuffer(data, dtype=np.uint8), off, lens, *cols)
    assert [VPN_KINDS[c] for c in codes] == [classify_vpn(*p) for p in pkts]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.integers(-5, 70000), st.integers(-5, 70000), st.binary(max_size=200))
def test_classify_never_raises(proto, sport, dport, payload):
    assert classify_vpn(proto, sport, dport, payload) in VPN_KINDS
