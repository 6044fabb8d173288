"""Packets inside tunnels and unusual link layers, checked frame by frame against tshark.

Each capture holds a STUN Binding request, a DTLS ClientHello and an RTP packet inside one
encapsulation (GTP-U, VXLAN, GRE, ERSPAN II/III, MPLS, QinQ, Linux cooked v2, NFLOG). Our frame,
inner 5-tuple and RFC 7983 class must equal what tshark decodes as the innermost IP/UDP layer."""

from __future__ import annotations

import struct

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from analyzer.capture import CaptureFile, addr_strs, iter_batches, summarize
from analyzer.capture.decode import CLASS_NAMES
from analyzer.capture.tunnels import ENC_ERSPAN, ENC_GRE, ENC_GTPU, ENC_MPLS, ENC_VXLAN
from analyzer.dissect.stun import parse_stun
from tests.capture.writers import epb, idb, pcap_bytes, shb
from tests.conftest import tshark_fields
from tests.dissect.stunbuild import attr, message, rtp
from tests.dissect.test_dtls import client_hello, hs, rec

T0 = 1_700_000_000_000_000_000
UE, SERVER = "10.45.0.7", "52.112.7.9"  # a handset's address inside the mobile core, a media relay
UE6, SERVER6 = "2001:db8:45::7", "2603:1063::9"


def inner_packets(v6: bool = False):
    """The three packets a call starts with: STUN check, DTLS ClientHello, RTP."""
    src, dst = (UE6, SERVER6) if v6 else (UE, SERVER)
    ip = (lambda: IPv6(src=src, dst=dst)) if v6 else (lambda: IP(src=src, dst=dst))
    return [
        ip() / UDP(sport=50000, dport=3478) / Raw(message("Binding", "request", [attr(6, b"ab:cd")], b"\1" * 12)),
        ip() / UDP(sport=50000, dport=3478) / Raw(rec(22, hs(1, client_hello()))),
        ip() / UDP(sport=50000, dport=3478) / Raw(rtp(1, 160, 0x1234)),
    ]


OUTER = IP(src="192.0.2.1", dst="192.0.2.2")


def eth(**kw):
    """An Ethernet header with its addresses given (scapy would otherwise look for the MAC by ARP)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


def nflog(pkt) -> bytes:
    """NFLOG record (little-endian TLVs, as an x86 host writes them): a prefix TLV, then the payload."""
    data = bytes(pkt)
    fam = 10 if pkt.version == 6 else 2

    def tlv(t: int, v: bytes) -> bytes:
        return struct.pack("<HH", 4 + len(v), t) + v + b"\0" * (-len(v) % 4)

    return struct.pack("<BBH", fam, 0, 0) + tlv(10, b"call\0") + tlv(9, data)


CASES = {
    "gtpu": (
        1,
        lambda p: eth() / OUTER / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=7, gtp_type=255) / p,
        ENC_GTPU,
    ),
    "gtpu-ext": (
        1,
        lambda p: (
            eth()
            / OUTER
            / UDP(sport=2152, dport=2152)
            / GTP_U_Header(teid=7, gtp_type=255, E=1, next_ex=0x85)
            / GTPPDUSessionContainer(type=1, QFI=9)
            / p
        ),
        ENC_GTPU,
    ),
    "vxlan": (1, lambda p: eth() / OUTER / UDP(sport=40000, dport=4789) / VXLAN(vni=42) / eth() / p, ENC_VXLAN),
    "gre": (1, lambda p: eth() / OUTER / GRE(proto=0x86DD if p.version == 6 else 0x0800) / p, ENC_GRE),
    "gre-key-seq": (
        1,
        lambda p: (
            eth()
            / OUTER
            / GRE(key_present=1, key=5, seqnum_present=1, sequence_number=9, proto=0x86DD if p.version == 6 else 0x0800)
            / p
        ),
        ENC_GRE,
    ),
    "erspan2": (
        1,
        lambda p: (
            eth() / OUTER / GRE(seqnum_present=1, sequence_number=1, proto=0x88BE) / ERSPAN_II(session_id=3) / eth() / p
        ),
        ENC_GRE | ENC_ERSPAN,
    ),
    "erspan3": (
        1,
        lambda p: (
            eth()
            / OUTER
            / GRE(seqnum_present=1, sequence_number=1, proto=0x22EB)
            / ERSPAN_III(session_id=3)
            / eth()
            / p
        ),
        ENC_GRE | ENC_ERSPAN,
    ),
    "mpls": (1, lambda p: eth(type=0x8847) / MPLS(label=100, s=0) / MPLS(label=200, s=1) / p, ENC_MPLS),
    "gre-mpls": (1, lambda p: eth() / OUTER / GRE(proto=0x8847) / MPLS(label=16, s=1) / p, ENC_GRE | ENC_MPLS),
    "qinq": (1, lambda p: eth() / Dot1AD(vlan=100) / Dot1Q(vlan=10) / p, 0),
    "qinq-8100": (1, lambda p: eth() / Dot1Q(vlan=100) / Dot1Q(vlan=10) / p, 0),
    "sll2": (276, lambda p: CookedLinuxV2(proto=0x86DD if p.version == 6 else 0x0800) / p, 0),
    "nflog": (239, nflog, 0),
    "vxlan-in-gtpu": (
        1,
        lambda p: (
            eth()
            / OUTER
            / UDP(sport=2152, dport=2152)
            / GTP_U_Header(teid=1, gtp_type=255)
            / IP(src="198.51.100.1", dst="198.51.100.2")
            / UDP(sport=1, dport=4789)
            / VXLAN(vni=1)
            / eth()
            / p
        ),
        ENC_GTPU | ENC_VXLAN,
    ),
}


def _ours(path):
    out = {}
    with CaptureFile(path) as cap:
        for b in iter_batches(cap):
            src, dst = addr_strs(b.src_hi, b.src_lo), addr_strs(b.dst_hi, b.dst_lo)
            for i in range(len(b)):
                out[int(b.frame[i])] = (
                    src[i], int(b.sport[i]), dst[i], int(b.dport[i]), int(b.proto[i]),
                    CLASS_NAMES[int(b.cls[i])], int(b.encap[i]), int(b.status[i]), b.payload(i),
                )  # fmt: skip
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["v4", "v6"])
def every_case(request, tmp_path_factory):
    """One pcapng holding every case (one interface per link type), read once by tshark and by us."""
    v6 = request.param
    links = sorted({lt for lt, _, _ in CASES.values()})
    body, where = b"", {}
    for name, (lt, wrap, _) in CASES.items():
        for k, p in enumerate(inner_packets(v6)):
            body += epb(links.index(lt), T0 // 1000 + len(where), bytes(wrap(p)))
            where[len(where) + 1] = (name, k)
    path = tmp_path_factory.mktemp("encap") / f"every-{'v6' if v6 else 'v4'}.pcapng"
    path.write_bytes(shb() + b"".join(idb(lt) for lt in links) + body)
    ip = "ipv6" if v6 else "ip"
    fields = ["frame.number", f"{ip}.src", "udp.srcport", f"{ip}.dst", "udp.dstport", "frame.protocols"]
    theirs = tshark_fields(path, fields, extra=["-d", "udp.port==3478,stun", "-o", "rtp.heuristic_rtp:TRUE"])
    return v6, where, {int(r[0]): r for r in theirs}, _ours(path)


@pytest.mark.parametrize("name", list(CASES))
def test_inner_five_tuple_and_class_equal_tshark(every_case, name):
    v6, where, theirs, ours = every_case
    _, _, enc = CASES[name]
    inner = inner_packets(v6)
    frames = [f for f, (n, _) in where.items() if n == name]
    assert len(frames) == 3
    for frame, expect_cls in zip(frames, ("stun", "dtls", "rtp"), strict=True):
        _, t_src, t_sport, t_dst, t_dport, protocols = theirs[frame]
        src, sport, dst, dport, proto, cls, got_enc, status, payload = ours[frame]
        # tshark lists every layer's value, outermost first: the innermost is the call's packet
        assert (src, sport, dst, dport) == (
            t_src.split(",")[-1],
            int(t_sport.split(",")[-1]),
            t_dst.split(",")[-1],
            int(t_dport.split(",")[-1]),
        ), f"frame {frame}"
        assert (src, dst) == ((UE6, SERVER6) if v6 else (UE, SERVER))
        assert proto == 17 and status == 0
        assert cls == expect_cls and expect_cls in protocols.split(":"), (frame, protocols)
        assert got_enc == enc
        assert payload == bytes(inner[where[frame][1]][UDP].payload)
    assert parse_stun(ours[frames[0]][8]).method_name == "Binding"


def test_summary_counts_the_tunnelled_packets(tmp_path):
    _, wrap, _ = CASES["gtpu"]
    pkts = [(T0 + k, bytes(wrap(p))) for k, p in enumerate(inner_packets())]
    path = tmp_path / "g.pcap"
    path.write_bytes(pcap_bytes(pkts))
    s = summarize(path)
    assert s.encapsulations == {"GTP-U": 3}
    assert s.classes["stun"] == 1 and s.classes["dtls"] == 1 and s.classes["rtp"] == 1


def test_a_udp_2152_packet_that_is_no_g_pdu_keeps_its_own_ports(tmp_path):
    echo = eth() / OUTER / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=0, gtp_type=1) / Raw(b"\0" * 4)
    path = tmp_path / "echo.pcap"
    path.write_bytes(pcap_bytes([(T0, bytes(echo))]))
    (row,) = _ours(path).values()
    assert row[:4] == ("192.0.2.1", 2152, "192.0.2.2", 2152) and row[6] == 0


def _wrap_capture(src, dst, wrap):
    """Every packet of a shipped capture re-sent inside a tunnel, same times."""
    from scapy.utils import PcapReader

    out = []
    with PcapReader(str(src)) as r:
        for p in r:
            ip = p[IP] if IP in p else p[IPv6]
            out.append((int(p.time * 1_000_000) * 1000, bytes(wrap(ip))))
    dst.write_bytes(pcap_bytes(out))


@pytest.mark.parametrize("name", ["gtpu", "vxlan", "erspan3"])
def test_a_call_inside_a_tunnel_reads_as_the_same_call(tmp_path, name):
    """The shipped relayed call, carried in a tunnel: the same STUN, DTLS, streams and verdict."""
    from analyzer.api import analyze
    from tests.conftest import CAPTURES

    src = CAPTURES / "external-via-relay" / "client-a.pcap"
    if not src.exists():
        pytest.skip("shipped capture absent")
    wrapped = tmp_path / f"{name}.pcap"
    _wrap_capture(src, wrapped, CASES[name][1])
    plain, tun = analyze(src), analyze(wrapped)
    assert len(tun.dtls) == len(plain.dtls) > 0
    assert tun.stun[["frame", "src", "sport", "dst", "dport", "method", "cls"]].equals(
        plain.stun[["frame", "src", "sport", "dst", "dport", "method", "cls"]]
    )
    cols = ["ssrc", "src", "sport", "dst", "dport", "packets", "lost"]
    assert tun.streams[cols].equals(plain.streams[cols]) and len(tun.streams)
    assert tun.calls[["call", "topology", "path"]].equals(plain.calls[["call", "topology", "path"]])
    assert len(tun.calls) == 1
    assert tun.captures[0].encapsulations == ENC_COUNTS[name]


ENC_COUNTS = {"gtpu": {"GTP-U": 287}, "vxlan": {"VXLAN": 287}, "erspan3": {"GRE": 287, "ERSPAN": 287}}
