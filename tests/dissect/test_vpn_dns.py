"""WireGuard's first four bytes (type, three zero reserved bytes) are also a DNS query's whose ID is
0x0100-0x04FF and whose flags are 0: the DNS header on a DNS port says which it is, and a cookie
reply (64 bytes, type 3) needs a handshake on its flow."""

from __future__ import annotations

import os
import struct

import numpy as np
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from analyzer import analyze
from analyzer.dissect.vpn import classify_vpn, credible_kinds, vpn_columns
from tests.capture.writers import pcap_bytes

T0 = 1_700_000_000_000_000_000


def dns_query(qid: int, name: str) -> bytes:
    """A DNS query with flags 0 (no RD bit), padded with an EDNS-less name to the length asked."""
    return bytes(DNS(id=qid, rd=0, qd=DNSQR(qname=name)))


def cookie_sized_query() -> bytes:
    q = dns_query(0x0300, "a" * 34 + ".example.com")
    assert len(q) == 64 and q[:4] == b"\x03\x00\x00\x00"  # type 3, reserved zero: a cookie reply's shape
    return q


def test_dns_query_with_id_0x0300_is_not_a_wireguard_cookie():
    q = cookie_sized_query()
    assert classify_vpn(17, 40000, 53, q) is None
    assert classify_vpn(17, 53, 40000, q) is None
    buf = np.frombuffer(q * 2, dtype=np.uint8)
    codes = vpn_columns(
        buf, np.array([0, 64]), np.array([64, 64]), np.array([17, 17]), np.array([40000, 53]), np.array([53, 40000])
    )
    assert codes.tolist() == [0, 0]


def test_dns_query_with_id_0x0400_is_not_wireguard_data():
    q = dns_query(0x0400, "b" * 18 + ".example.com")
    assert len(q) % 16 == 0 and q[:4] == b"\x04\x00\x00\x00"
    assert classify_vpn(17, 40000, 53, q) is None


def test_wireguard_on_port_53_is_still_wireguard():
    init = b"\x01\x00\x00\x00" + bytes.fromhex("9a3c51e7") + os.urandom(140)
    assert classify_vpn(17, 40000, 53, init) == "wireguard-initiation"
    cookie = b"\x03\x00\x00\x00" + bytes.fromhex("9a3c51e7") + os.urandom(56)
    assert classify_vpn(17, 53, 40000, cookie) == "wireguard-cookie"


def test_a_cookie_reply_needs_a_handshake_on_its_flow():
    assert credible_kinds({"wireguard-cookie": 3}) == {}
    kinds = {"wireguard-initiation": 1, "wireguard-cookie": 1}
    assert credible_kinds(kinds) == kinds


def _write(tmp_path, frames) -> str:
    p = tmp_path / "c.pcap"
    p.write_bytes(pcap_bytes([(T0 + i * 10_000_000, bytes(f)) for i, f in enumerate(frames)]))
    return str(p)


def test_dns_queries_make_no_tunnel_and_no_vpn_user(tmp_path):
    q = cookie_sized_query()
    pkt = Ether() / IP(src="10.1.0.11", dst="10.1.0.1") / UDP(sport=40000, dport=53) / q
    a = analyze(_write(tmp_path, [pkt, pkt, pkt]))
    (f,) = a.flows.itertuples()
    assert f.protocols == "dns" and not isinstance(f.vpn, str)
    assert "keeps a VPN tunnel" not in f.src_rule


def test_cookie_shaped_packets_without_a_handshake_make_no_tunnel(tmp_path):
    """Off the DNS ports: 64-byte type-3 datagrams alone are no WireGuard flow; after an initiation they are."""
    idx = struct.pack("<I", 0x51E79A3C)
    cookie = b"\x03\x00\x00\x00" + idx + bytes(range(56))
    init = b"\x01\x00\x00\x00" + idx + bytes(range(140))
    lone = [Ether() / IP(src="10.1.0.11", dst="198.51.100.3") / UDP(sport=41000, dport=51820) / cookie] * 3
    a = analyze(_write(tmp_path, lone))
    assert not a.flows.vpn.notna().any()
    hs = [
        Ether() / IP(src="10.1.0.11", dst="198.51.100.3") / UDP(sport=41000, dport=51820) / init,
        Ether() / IP(src="198.51.100.3", dst="10.1.0.11") / UDP(sport=51820, dport=41000) / cookie,
    ]
    b = analyze(_write(tmp_path, hs))
    assert set(b.flows.iloc[0].vpn.split(",")) == {"wireguard-initiation", "wireguard-cookie"}
