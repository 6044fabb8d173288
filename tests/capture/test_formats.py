"""The capture layer on files written on purpose: every format variant, link type and kind of damage."""

from __future__ import annotations

import gzip
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from analyzer.capture import CaptureError, CaptureFile, addr_strs, iter_batches, summarize
from tests.capture.writers import epb, idb, pcap_bytes, shb, spb, unknown_block

T0 = 1_700_000_000_123_456_789  # ns
UDP4 = (
    IP(src="10.1.0.11", dst="52.112.1.2", ttl=61, tos=46 << 2)
    / UDP(sport=50000, dport=3478)
    / Raw(b"\x00\x01" + b"x" * 30)
)
UDP6 = IPv6(src="2001:db8::1", dst="2603:1063::7", hlim=9) / UDP(sport=50020, dport=3480) / Raw(b"\x80\x6f" + b"y" * 30)


def rows(path):
    """(frame, ts_ns, src, dst, sport, dport, proto, payload_len, ip_version, dscp, ttl, status, cls)."""
    out = []
    with CaptureFile(path) as cap:
        for b in iter_batches(cap):
            src, dst = addr_strs(b.src_hi, b.src_lo), addr_strs(b.dst_hi, b.dst_lo)
            for i in range(len(b)):
                out.append(
                    (
                        int(b.frame[i]),
                        int(b.ts_ns[i]),
                        src[i],
                        dst[i],
                        int(b.sport[i]),
                        int(b.dport[i]),
                        int(b.proto[i]),
                        int(b.payload_len[i]),
                        int(b.ip_version[i]),
                        int(b.dscp[i]),
                        int(b.ttl[i]),
                        int(b.status[i]),
                        int(b.cls[i]),
                    )
                )
    return out


def write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_pcap_byte_orders_and_resolutions(tmp_path, big, nano):
    pkts = [(T0 + k * 20_000_000, bytes(Ether() / UDP4)) for k in range(5)]
    p = write(tmp_path, "a.pcap", pcap_bytes(pkts, big=big, nano=nano))
    got = rows(p)
    assert [r[0] for r in got] == [1, 2, 3, 4, 5]
    expect_ts = T0 if nano else T0 - T0 % 1000
    assert got[0][1] == expect_ts and got[4][1] == expect_ts + 80_000_000
    assert got[0][2:8] == ("10.1.0.11", "52.112.1.2", 50000, 3478, 17, 32)
    assert got[0][8:11] == (4, 46, 61)
    s = summarize(p)
    assert (s.format, s.packets, s.link_types) == ("pcap", 5, {"Ethernet (1)": 5})
    assert s.classes["stun"] == 5


LINK_CASES = [
    (1, lambda ip: bytes(Ether() / Dot1Q(vlan=10) / ip)),
    (1, lambda ip: bytes(Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / ip)),
    (113, lambda ip: bytes(CookedLinux(pkttype=0, proto=0x86DD if ip.version == 6 else 0x0800) / ip)),
    (276, lambda ip: bytes(CookedLinuxV2(proto=0x86DD if ip.version == 6 else 0x0800) / ip)),
    (101, bytes),
    (12, bytes),
    (14, bytes),
    (0, lambda ip: struct.pack("<I", 30 if ip.version == 6 else 2) + bytes(ip)),
    (108, lambda ip: struct.pack(">I", 24 if ip.version == 6 else 2) + bytes(ip)),
]


@pytest.mark.parametrize(
    "linktype,frame", LINK_CASES, ids=["vlan", "qinq", "sll", "sll2", "raw101", "raw12", "raw14", "null", "loop"]
)
@pytest.mark.parametrize("ip", [UDP4, UDP6], ids=["v4", "v6"])
def test_link_types(tmp_path, linktype, frame, ip):
    p = write(tmp_path, "l.pcap", pcap_bytes([(T0, frame(ip))], linktype=linktype))
    (r,) = rows(p)
    if ip.version == 4:
        assert r[2:9] == ("10.1.0.11", "52.112.1.2", 50000, 3478, 17, 32, 4)
    else:
        assert r[2:9] == ("2001:db8::1", "2603:1063::7", 50020, 3480, 17, 32, 6)
        assert r[10] == 9  # hop limit
    assert r[11] == 0  # no damage


def test_raw_ip_228_229(tmp_path):
    (r4,) = rows(write(tmp_path, "a.pcap", pcap_bytes([(T0, bytes(UDP4))], linktype=228)))
    (r6,) = rows(write(tmp_path, "b.pcap", pcap_bytes([(T0, bytes(UDP6))], linktype=229)))
    assert r4[2] == "10.1.0.11" and r6[2] == "2001:db8::1"


def test_unknown_link_type_is_counted_not_fatal(tmp_path):
    p = write(tmp_path, "u.pcap", pcap_bytes([(T0, b"\x01" * 40)] * 3, linktype=147))
    s = summarize(p)
    assert s.packets == 3
    assert s.link_types == {"unsupported (147)": 3}
    assert s.damaged == {"unsupported link type": 3}


def test_ipv6_extension_headers_and_fragment_header(tmp_path):
    ext = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=[])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=1234, dport=3478)
        / Raw(b"\x00\x01abcd")
    )
    frag = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(m=1, offset=0, id=7)
        / UDP(sport=9, dport=10)
        / Raw(b"q" * 16)
    )
    got = rows(write(tmp_path, "e.pcap", pcap_bytes([(T0, bytes(ext)), (T0 + 1, bytes(frag))], linktype=101)))
    assert got[0][4:8] == (1234, 3478, 17, 6)
    assert got[0][11] == 0
    assert got[1][11] & 4  # ST_FRAGMENT
    assert summarize(tmp_path / "e.pcap").damaged == {"IP fragment (not reassembled)": 1}


def test_ipv4_options_fragments_tcp_icmp_esp(tmp_path):
    opts = (
        IP(src="10.0.0.1", dst="10.0.0.2", options=[b"\x94\x04\x00\x00"])
        / UDP(sport=5, dport=6)
        / Raw(b"\x16" + b"z" * 9)
    )
    fr1 = IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", frag=0, id=9, proto=17) / Raw(
        bytes(UDP(sport=5, dport=6, len=40)) + b"a" * 16
    )
    fr2 = IP(src="10.0.0.1", dst="10.0.0.2", flags=0, frag=3, id=9, proto=17) / Raw(b"b" * 8)
    tcp = (
        IP(src="10.0.0.1", dst="52.112.0.9")
        / TCP(sport=40000, dport=443, seq=1000, flags="PA")
        / Raw(b"\x17\x03\x03\x00\x05hello")
    )
    icmp = (
        IP(src="10.0.0.9", dst="10.0.0.1")
        / ICMP(type=3, code=3)
        / bytes(IP(src="10.0.0.1", dst="10.0.0.9") / UDP(sport=5, dport=6))
    )
    esp = IP(src="10.0.0.1", dst="198.51.100.2", proto=50) / Raw(b"\x00\x00\x01\x02" + b"e" * 40)
    natt = IP(src="10.0.0.1", dst="198.51.100.2") / UDP(sport=4500, dport=4500) / Raw(b"\x00\x00\x01\x02" + b"e" * 40)
    pkts = [(T0 + i, bytes(Ether() / x)) for i, x in enumerate([opts, fr1, fr2, tcp, icmp, esp, natt])]
    p = write(tmp_path, "v4.pcap", pcap_bytes(pkts))
    got = rows(p)
    assert got[0][4:8] == (5, 6, 17, 10) and got[0][12] == 3  # options skipped; dtls first-byte class
    assert got[1][11] & 4 and got[2][11] & 4
    assert got[3][4:8] == (40000, 443, 6, 10)
    assert got[4][6] == 1 and got[4][4:6] == (0, 0)
    s = summarize(p)
    assert s.ip == {"ipv4": 7, "udp": 4, "tcp": 1, "icmp": 1, "esp": 1}  # both fragments say protocol 17
    assert s.vpn_candidates == 2  # ESP and NAT-T
    assert (s.udp_flows, s.tcp_flows) == (2, 1)


def test_rfc7983_classes(tmp_path):
    firsts = {
        b"\x01\x01": "stun",
        b"\x10\x00": "zrtp",
        b"\x17\xfe": "dtls",
        b"\x40\x00": "turn-channel",
        b"\x80\x00": "rtp",
        b"\x80\xc8": "rtcp",
        b"\x81\xdf": "rtcp",
        b"\x80\xe0": "rtp",
        b"\x55\x00": "other",
        b"\xc0\x00": "other",
        b"\x04\x00": "other",
    }
    pkts = [
        (T0 + i, bytes(Ether() / IP() / UDP(sport=1000 + i, dport=2000) / Raw(k + b"\0" * 10)))
        for i, k in enumerate(firsts)
    ]
    s = summarize(write(tmp_path, "c.pcap", pcap_bytes(pkts)))
    assert s.classes == {"stun": 1, "zrtp": 1, "dtls": 1, "turn-channel": 1, "rtp": 2, "rtcp": 2, "other": 3}


@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
def test_pcapng_interfaces_resolutions_blocks(tmp_path, big):
    eth = bytes(Ether() / UDP4)
    data = (
        shb(big)
        + idb(1, big=big)  # default: microseconds
        + idb(101, big=big, tsresol=9)  # nanoseconds
        + idb(1, big=big, tsresol=0x80 | 10, tsoffset=100)  # 2^-10 s units, +100 s offset
        + epb(0, T0 // 1000, eth, big=big)
        + unknown_block(big=big)
        + epb(1, T0, bytes(UDP6), big=big)
        + spb(eth, big=big)  # simple packet: interface 0, no timestamp
        + epb(2, 5 * 1024 + 512, eth, big=big)  # 5.5 s after the epoch, + 100 s
    )
    p = write(tmp_path, "n.pcapng", data)
    got = rows(p)
    assert [r[0] for r in got] == [1, 2, 3, 4]
    assert got[0][1] == T0 - T0 % 1000
    assert got[1][1] == T0 and got[1][2] == "2001:db8::1"
    assert got[3][1] == 105_500_000_000
    assert got[2][2] == "10.1.0.11"
    s = summarize(p)
    assert s.format == "pcapng" and s.packets == 4
    assert s.link_types == {"Ethernet (1)": 3, "raw IP (101)": 1}


def test_pcapng_two_sections_of_different_byte_order(tmp_path):
    eth = bytes(Ether() / UDP4)
    data = (
        shb(False)
        + idb(1)
        + epb(0, T0 // 1000, eth)
        + shb(True)
        + idb(101, big=True, tsresol=9)
        + epb(0, T0 + 5, bytes(UDP6), big=True)
    )
    got = rows(write(tmp_path, "two.pcapng", data))
    assert [(r[0], r[2]) for r in got] == [(1, "10.1.0.11"), (2, "2001:db8::1")]
    assert got[1][1] == T0 + 5


def test_gzip(tmp_path):
    raw = pcap_bytes([(T0 + i, bytes(Ether() / UDP4)) for i in range(100)])
    p = tmp_path / "g.pcap.gz"
    p.write_bytes(gzip.compress(raw))
    s = summarize(p)
    assert (s.packets, s.compressed, s.format) == (100, True, "pcap")


# ---------------------------------------------------------------- damage


def test_snaplen_cut_and_zero_length_records(tmp_path):
    full = bytes(Ether() / UDP4)
    pkts = [(T0, full[:40]), (T0 + 1, b""), (T0 + 2, full)]
    p = write(tmp_path, "d.pcap", pcap_bytes(pkts, origlens={0: len(full)}))
    s = summarize(p)
    assert s.packets == 3
    assert s.damaged["snaplen cut"] == 1
    assert s.damaged["zero-length record"] == 1
    got = rows(p)
    assert got[0][2] == "10.1.0.11"  # the IP header survived the cut
    assert got[2][4:6] == (50000, 3478)


def test_truncated_last_record(tmp_path):
    raw = pcap_bytes([(T0 + i, bytes(Ether() / UDP4)) for i in range(3)])
    p = write(tmp_path, "t.pcap", raw[:-10])
    s = summarize(p)
    assert s.packets == 2
    assert s.damaged == {"truncated record": 1}
    assert any("at byte" in n for n in s.damage_notes)


def test_pcapng_block_whose_length_lies(tmp_path):
    eth = bytes(Ether() / UDP4)
    good = epb(0, T0 // 1000, eth)
    liar = bytearray(epb(0, T0 // 1000 + 1, eth))
    struct.pack_into("<I", liar, 4, 1_000_000_000)  # claims a gigabyte
    p = write(tmp_path, "lie.pcapng", shb() + idb(1) + good + bytes(liar) + good)
    s = summarize(p)
    assert s.packets == 1
    assert sum(s.damaged.values()) >= 1
    assert s.damage_notes


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty file"),
        (b"hello world, not a capture", "not a pcap or pcapng capture"),
        (b"\xd4\xc3\xb2", "not a pcap or pcapng capture"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap file header cut short"),
    ],
)
def test_unreadable_files_raise_capture_error(tmp_path, content, needle):
    p = write(tmp_path, "bad.pcap", content)
    with pytest.raises(CaptureError) as e:
        summarize(p)
    assert needle in str(e.value) and "bad.pcap" in str(e.value)
